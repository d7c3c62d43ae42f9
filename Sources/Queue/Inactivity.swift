/// Why an installation or a repository takes no work: the App was uninstalled or suspended there, or the
/// repository was removed from its installation. GitHub refuses the bot's calls for it then, so nothing is
/// started and nothing is said there.
public enum Inactivity: String, Sendable, Hashable {
    /// The App was uninstalled (`installation` `deleted`).
    case uninstalled
    /// The installation is suspended (`installation` `suspend`) until `unsuspend`.
    case suspended
    /// The repository was removed from the installation (`installation_repositories` `removed`).
    case removed

    /// Says why, for logs, `tasks.error` and the answer to a delivery.
    public var reason: String {
        switch self {
        case .uninstalled: "the App was uninstalled from this account"
        case .suspended: "the App's installation is suspended"
        case .removed: "the repository was removed from the App's installation"
        }
    }

    /// The SQL expression that gives the inactivity's raw value (NULL: active) of the installation and
    /// repository rows aliased `i` and `r` in the query.
    public static func sql(installation i: String, repository r: String) -> String {
        """
        CASE WHEN \(i).deleted_at IS NOT NULL THEN 'uninstalled' WHEN \(i).suspended_at IS NOT NULL THEN 'suspended' \
        WHEN NOT \(r).is_active THEN 'removed' END
        """
    }
}
