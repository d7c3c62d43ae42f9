#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import ServiceLifecycle

/// Ready checkouts: the part of a task's preparation that does not depend on the task, done before it comes.
///
/// Writing a checkout's files is most of a warm task's preparation on a slow disk (10,000 files: 2.6 s of the
/// 3.1 s before the agent started, on this project's test machine). So after each task the cache makes the next
/// one's checkout from the mirror — the bot's git directory (links to the mirror's objects), the files, and the
/// agent's copy of the repository — in `<id>/ready`, outside any jail, and the next task of the repository moves
/// it into its workspace (a rename, under the repository's lock), brings its refs and objects up to date with
/// the mirror it just fetched into, and lets `git reset --hard` write the files that changed since.
///
/// Nothing an agent touched is ever reused: a ready checkout is made by the bot and taken by one task, whose
/// workspace is removed with it at the end as always.
extension RepositoryCache {
    /// A ready checkout asked for: the repository and the branch its last task used.
    struct ReadyRequest: Sendable {
        let repositoryID: Int64
        let branch: String
    }

    nonisolated func readyCheckout(_ repositoryID: Int64) -> GitWorkspace {
        GitWorkspace(root: directory(repositoryID) + "/ready", caBundlePath: caBundlePath)
    }

    /// Asks ``makeReadyCheckouts()`` for a ready checkout of `branch` (nothing when one is there or being made).
    func askForReadyCheckout(_ repositoryID: Int64, branch: String) {
        guard keepsReadyCheckouts, !readyUnsupported, readyMaking[repositoryID] == nil else { return }
        readyRequester.yield(ReadyRequest(repositoryID: repositoryID, branch: branch))
    }

    /// Makes the ready checkouts asked for, one at a time, until cancelled (``ReadyCheckoutService`` runs it).
    public func makeReadyCheckouts() async {
        for await request in readyRequests {
            guard !Task.isCancelled else { return }
            await makeReadyCheckout(request.repositoryID, branch: request.branch)
        }
    }

    /// Makes the ready checkout of `branch` of `repositoryID` from its mirror as it is; returns whether one is there.
    @discardableResult
    func makeReadyCheckout(_ repositoryID: Int64, branch: String) async -> Bool {
        let ready = readyCheckout(repositoryID)
        guard keepsReadyCheckouts, !readyUnsupported, readyMaking[repositoryID] == nil else { return false }
        guard !FileManager.default.fileExists(atPath: ready.checkout) || !FileManager.default.fileExists(atPath: ready.gitDirectory) else { return true }
        readyMaking[repositoryID] = []
        defer {
            for waiting in readyMaking.removeValue(forKey: repositoryID) ?? [] { waiting.resume() }
        }
        // Made beside the mirror under a name of its own (processes in other containers may share the folder and a
        // process id), then renamed into place.
        let making = {
            let name = "making-\(getpid())-\(UUID().uuidString.prefix(8))"
            var making = GitWorkspace(root: directory(repositoryID) + "/" + name, caBundlePath: caBundlePath)
            making.background = true
            return making
        }()
        let started = ContinuousClock.now
        do {
            let directory = directory(repositoryID)
            let made = await BlockingPool.run { [root = making.root, home = making.gitHome] in
                try? FileTree.remove(root)
                return (try? FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)) != nil
            }
            guard made else { throw GitError(command: "cache", message: "cannot create \(making.root)") }
            let mirror = mirror(repositoryID)
            let linked = try await locked(repositoryID) { () async throws -> Bool in
                guard FileManager.default.fileExists(atPath: mirror + "/HEAD") else { return false }
                Self.removeAbandonedMakings(in: directory)
                try await making.linkRepository(from: mirror, branch: branch)
                return true
            }
            guard linked else {
                await BlockingPool.run { try? FileTree.remove(making.root) }
                return false
            }
            try await making.checkOutHead()
            try await making.giveAgentItsRepository()
            let placed = try await locked(repositoryID) { () -> Bool in
                // The mirror may have been evicted or rebuilt meanwhile: then this checkout goes too.
                guard FileManager.default.fileExists(atPath: mirror + "/HEAD") else { return false }
                if FileManager.default.fileExists(atPath: ready.root) {
                    // Another process's, whole; or what a process that stopped while taking one left.
                    if FileManager.default.fileExists(atPath: ready.checkout), FileManager.default.fileExists(atPath: ready.gitDirectory) { return false }
                    try? FileTree.remove(ready.root)
                }
                return rename(making.root, ready.root) == 0
            }
            guard placed else {
                await BlockingPool.run { try? FileTree.remove(making.root) }
                return FileManager.default.fileExists(atPath: ready.checkout)
            }
            let bytes = await BlockingPool.run { Self.size(of: ready.root, skippingLinked: true) }
            readyBytes[repositoryID] = bytes
            logger.debug("made a ready checkout", metadata: [
                "repo.id": "\(repositoryID)", "cache.bytes": "\(bytes)", "cache.seconds": "\(ContinuousClock.now - started)",
            ])
            return true
        } catch {
            logger.warning("cannot make a ready checkout; the next task makes its own", metadata: [
                "repo.id": "\(repositoryID)", "error": "\(error)",
            ])
            await BlockingPool.run { try? FileTree.remove(making.root) }
            return false
        }
    }

    /// Removes what worker processes that ended left while making a ready checkout: folders of a process not running
    /// here, untouched for 10 minutes (in another container, a process of the same id may still be making one).
    nonisolated static func removeAbandonedMakings(in directory: String) {
        let now = Date()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix("making-") {
            let path = directory + "/" + name
            guard let pid = Int32(name.dropFirst("making-".count).prefix { $0 != "-" }), pid != getpid() else { continue }
            guard kill(pid, 0) != 0, errno == ESRCH else { continue }
            let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date ?? now
            if now.timeIntervalSince(modified) > 600 { try? FileTree.remove(path) }
        }
    }

    /// Waits while a ready checkout of the repository is being made by this process.
    func waitForReadyCheckout(_ repositoryID: Int64) async {
        guard readyMaking[repositoryID] != nil else { return }
        await withCheckedContinuation { readyMaking[repositoryID]?.append($0) ?? $0.resume() }
    }

    /// Moves the repository's ready checkout into `workspace` (the caller holds the lock); whether there was one.
    func adoptReadyCheckout(_ repositoryID: Int64, into workspace: GitWorkspace) -> Bool {
        guard keepsReadyCheckouts, !readyUnsupported else { return false }
        let ready = readyCheckout(repositoryID)
        guard FileManager.default.fileExists(atPath: ready.checkout) else { return false }
        readyBytes[repositoryID] = nil
        guard workspace.adoptRepository(of: ready) else {
            // Another file system than the workspaces': renaming cannot work, so none are made again.
            readyUnsupported = errno == EXDEV
            logger.warning("cannot move a ready checkout into the workspace; put the cache on the workspaces' file system",
                           metadata: ["repo.id": "\(repositoryID)", "error": "errno \(errno)"])
            try? FileTree.remove(ready.root)
            return false
        }
        try? FileTree.remove(ready.root)
        return true
    }
}

/// Makes the repository cache's ready checkouts (``RepositoryCache/makeReadyCheckouts()``) until the worker stops.
public struct ReadyCheckoutService: Service, CustomStringConvertible {
    let cache: RepositoryCache

    public init(cache: RepositoryCache) {
        self.cache = cache
    }

    public var description: String { "ReadyCheckoutService" }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await cache.makeReadyCheckouts()
        }
    }
}
