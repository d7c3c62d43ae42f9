import GitHub
import Logging

/// Warns once per installation and permission when GitHub refuses a call for a permission the installation
/// has not granted (`checks`, `actions`: added to the App after many installed it). The task goes on without
/// that call; the log says once what to accept.
actor PermissionWarnings {
    private var warned: Set<String> = []

    /// Returns whether `error` is GitHub saying the installation lacks a permission: 403 on the call, or 422
    /// when the token asking for it is minted.
    static func isMissingPermission(_ error: any Error) -> Bool {
        guard let error = error as? GitHubError, let status = error.status else { return false }
        return status == 403 || (status == 422 && (error.route ?? "").contains("access_tokens"))
    }

    /// Logs `error` as a warning: once per installation and permission when it is a missing permission,
    /// every time otherwise.
    func report(_ error: any Error, permission: String, doing what: String, installationID: Int64, logger: Logger) {
        guard Self.isMissingPermission(error) else {
            logger.warning("cannot \(what)", metadata: ["error": "\(error)"])
            return
        }
        guard warned.insert("\(installationID)/\(permission)").inserted else { return }
        logger.warning("""
            cannot \(what): the installation has not granted `\(permission)`; accept the App's new permissions in the \
            installation's settings on GitHub (warned once per installation)
            """, metadata: [
                "github.installation": "\(installationID)", "error": "\(error)",
            ])
    }
}
