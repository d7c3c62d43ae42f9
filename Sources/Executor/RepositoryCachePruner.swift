import Database
import Queue
import Logging
import ServiceLifecycle

/// The repositories the App still has (active, in an installation not deleted); ``TaskStore`` answers.
public protocol ActiveRepositories: Sendable {
    /// GitHub's ids of the repositories tasks may still run on.
    func activeRepositoryIDs() async throws -> Set<Int64>
}

/// Removes the cache's mirrors of repositories removed from the App or whose installation was deleted, when the
/// worker starts and then every `interval`.
public struct RepositoryCachePruner: Service, CustomStringConvertible {
    let cache: RepositoryCache
    let repositories: any ActiveRepositories
    let interval: Duration
    let logger: Logger

    public init(cache: RepositoryCache, repositories: any ActiveRepositories, interval: Duration = .seconds(3600), logger: Logger) {
        self.cache = cache
        self.repositories = repositories
        self.interval = interval
        self.logger = logger
    }

    public var description: String { "RepositoryCachePruner(every \(interval))" }

    /// Removes the mirrors of repositories not active now; returns how many.
    @discardableResult
    public func pruneOnce() async throws -> Int {
        let removed = await cache.prune(keeping: try await repositories.activeRepositoryIDs())
        if removed > 0 { logger.info("removed cached repositories the App no longer has", metadata: ["cache.removed": "\(removed)"]) }
        return removed
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            do {
                try await pruneOnce()
            } catch {
                logger.error("cannot prune the repository cache", metadata: ["error": "\(error)"])
            }
            await repeatEvery(interval, logger: logger, failure: "cannot prune the repository cache") {
                try await pruneOnce()
            }
        }
    }
}

extension TaskStore: ActiveRepositories {}
