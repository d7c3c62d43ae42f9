import GitHub
import Logging

/// The App's bot account as commit author: `<slug>[bot]` with `<id>+<slug>[bot]@users.noreply.github.com`, the
/// address GitHub links to the App (its avatar and page). Read from GitHub once (`GET /app`, then
/// `GET /users/{slug}[bot]`) and kept; until it can be read, the configured name and address stand in.
actor BotIdentity {
    private var account: GitHubUser?

    /// Returns the commit author for tasks of `repo`'s installation.
    func author<API: GitHubAPI>(api: API, repo: RepositoryRef, settings: ExecutorSettings, logger: Logger) async -> CommitIdentity {
        if account == nil {
            do {
                account = try await api.botAccount(in: repo)
            } catch {
                logger.warning("cannot read the App's bot account; commits use the configured author", metadata: ["error": "\(error)"])
            }
        }
        guard let account else { return CommitIdentity(name: settings.botName, email: settings.botEmail) }
        return Self.identity(account)
    }

    /// Returns the author GitHub shows as the bot account.
    static func identity(_ account: GitHubUser) -> CommitIdentity {
        CommitIdentity(name: account.login, email: "\(account.id)+\(account.login)@users.noreply.github.com")
    }
}
