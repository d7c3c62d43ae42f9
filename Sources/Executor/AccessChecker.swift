import GitHub
import Logging
import Queue

/// Answers whether a requester may start work: GitHub's collaborator-permission endpoint (never the
/// payload's `author_association`), cached in `user_repository_access`.
public struct AccessChecker<API: GitHubAPI>: Sendable {
    let api: API
    let store: TaskStore
    let cacheDuration: Duration
    let logger: Logger

    /// Levels that may start and steer work.
    public static var writeLevels: Set<String> { ["admin", "maintain", "write"] }

    public init(api: API, store: TaskStore, cacheDuration: Duration = .seconds(600), logger: Logger) {
        self.api = api
        self.store = store
        self.cacheDuration = cacheDuration
        self.logger = logger
    }

    /// Returns the requester's access level, from the cache when it is fresh.
    public func accessLevel(accountID: Int64, login: String, repositoryID: Int64, repo: RepositoryRef) async throws -> String {
        if let cached = try? await store.cachedAccess(accountID: accountID, repositoryID: repositoryID, maxAge: cacheDuration) {
            return cached
        }
        let level = try await api.accessLevel(of: login, in: repo)
        do {
            try await store.saveAccess(accountID: accountID, repositoryID: repositoryID, level: level)
        } catch {
            logger.debug("cannot cache an access level", metadata: ["error": "\(error)"])
        }
        return level
    }
}
