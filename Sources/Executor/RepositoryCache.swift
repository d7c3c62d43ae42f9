#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Metrics

/// A warm copy of each repository on this worker (issue 23): a bare, shallow mirror per repository under
/// `ASYNCCODE_REPO_CACHE_DIR`, so a task fetches only what changed since the last task on that repository.
///
/// - The mirror is updated with the task's own narrowed token (a `--depth 1` fetch of the branch the task needs),
///   one fetch at a time per repository: a file lock (`flock`) for every process of the machine; within a process,
///   a task that waited while another fetched that branch (a fetch that ended after it asked) does not fetch again.
/// - The task's repository is made from it by hard links to its (immutable) object files and a copy of its branch
///   heads, under the lock; the files are checked out after it. The bot's git directory holds only this
///   repository's objects; the agent gets a copy of it, never the mirror, which nothing outside this type writes.
/// - A mirror is checked with `git fsck --connectivity-only` the first time a process uses it; one that fails it,
///   or whose fetch or copy fails for a reason of its own, is removed and rebuilt once (not again in that task).
/// - Past `maxBytes`, the least recently used mirrors are removed (never one in use); ``prune(keeping:)`` removes
///   the mirrors of repositories the App no longer has.
/// - With `keepsReadyCheckouts`, a checkout of the repository is kept ready for its next task (made from the mirror
///   off the task's path by ``ReadyCheckoutService``, see `RepositoryCache+Ready.swift`): the next task takes it and
///   git rewrites only the files that changed since.
public actor RepositoryCache {
    public nonisolated let root: String
    public nonisolated let maxBytes: Int64
    let caBundlePath: String?
    let metrics: any MetricsFactory
    let logger: Logger
    /// When this process last finished fetching each repository's branches.
    private var fetchFinished: [Int64: [String: ContinuousClock.Instant]] = [:]
    /// Mirrors this process checked with fsck.
    private var verified: Set<Int64> = []
    /// The mirrors' sizes as last measured (each walked once per process, then again only after it changes).
    private var sizes: [Int64: Int64] = [:]
    /// Tests fetch from `file://` repositories; the bot only from http(s).
    var allowsLocalSources = false
    /// Whether a checkout of each repository is kept ready for its next task.
    public nonisolated let keepsReadyCheckouts: Bool
    /// Ready checkouts asked for, made one at a time by ``makeReadyCheckouts()``.
    nonisolated let readyRequests: AsyncStream<ReadyRequest>
    let readyRequester: AsyncStream<ReadyRequest>.Continuation
    /// Repositories whose ready checkout is being made, with the tasks waiting for it.
    var readyMaking: [Int64: [CheckedContinuation<Void, Never>]] = [:]
    /// The ready checkouts' own bytes (their object files are the mirror's), as measured when made.
    var readyBytes: [Int64: Int64] = [:]
    /// Set when a ready checkout could not be moved into a workspace (another file system): none are made again.
    var readyUnsupported = false

    func allowLocalSources() { allowsLocalSources = true }

    /// What one preparation did.
    public struct Use: Sendable, Hashable {
        /// The mirror existed and was sound.
        public var hit = true
        /// The checkout came from a ready checkout (only the files changed since were written).
        public var ready = false
        public var fetched = false
        public var fetchedBytes: Int64 = 0
        public var rebuilt = false
    }

    public init(root: String, maxBytes: Int64, caBundlePath: String? = nil, keepsReadyCheckouts: Bool = true,
                metrics: any MetricsFactory = NOOPMetricsHandler.instance, logger: Logger) {
        self.root = root
        self.keepsReadyCheckouts = keepsReadyCheckouts
        (readyRequests, readyRequester) = AsyncStream.makeStream(of: ReadyRequest.self, bufferingPolicy: .bufferingNewest(64))
        self.maxBytes = maxBytes
        self.caBundlePath = caBundlePath
        self.metrics = metrics
        self.logger = logger
    }

    nonisolated func directory(_ repositoryID: Int64) -> String { "\(root)/\(repositoryID)" }
    nonisolated func mirror(_ repositoryID: Int64) -> String { directory(repositoryID) + "/mirror.git" }

    /// Makes `workspace`'s repository and checkout of `branch` from the mirror of `repositoryID`, fetching the
    /// branch from `url` with `token` first (unless another task of this process just did).
    ///
    /// - Throws: ``GitError`` when the branch cannot be fetched or the checkout made, even from a rebuilt mirror.
    @discardableResult
    public func prepare(_ workspace: GitWorkspace, repositoryID: Int64, url: String, branch: String, token: String) async throws -> Use {
        let asked = ContinuousClock.now
        var use = Use()
        var checkoutRetried = false
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        // Private repositories' files: the bot's user only, as for the workspaces.
        chmod(root, 0o700)
        // A ready checkout being made is nearer done than a new one would be.
        await waitForReadyCheckout(repositoryID)
        while true {
            let current = use
            use = try await locked(repositoryID) {
                try await fill(workspace, repositoryID: repositoryID, url: url, branch: branch, token: token, asked: asked, use: current)
            }
            // The files are written outside the lock: other tasks of the repository need not wait for them.
            let failure: GitError?
            do {
                try await workspace.checkOutHead()
                failure = nil
            } catch {
                failure = error
            }
            guard let failure else { break }
            guard !checkoutRetried, Self.isMirrorsFault(failure) else { throw failure }
            use.ready = false
            // Objects the mirror lacks: check it again (fsck; rebuilt if it fails) before a second try.
            checkoutRetried = true
            verified.remove(repositoryID)
            await workspace.removeRepository()
            logger.warning("a checkout from the repository cache failed; checking the cache", metadata: [
                "repo.id": "\(repositoryID)", "error": "\(failure)",
            ])
        }
        Counter(label: use.hit ? "asynccode_repo_cache_hits_total" : "asynccode_repo_cache_misses_total", factory: metrics).increment()
        if use.ready { Counter(label: "asynccode_repo_cache_ready_checkouts_used_total", factory: metrics).increment() }
        // The next task of the repository finds a checkout ready.
        askForReadyCheckout(repositoryID, branch: branch)
        await evict(keeping: repositoryID)
        return use
    }

    /// Updates the mirror and makes the workspace's repository from it (the caller holds the lock), rebuilding the
    /// mirror once when it fails for a reason of its own.
    private func fill(
        _ workspace: GitWorkspace, repositoryID: Int64, url: String, branch: String, token: String, asked: ContinuousClock.Instant,
        use start: Use
    ) async throws -> Use {
        var use = start
        while true {
            do {
                use = try await update(repositoryID, url: url, branch: branch, token: token, asked: asked, use: use)
                // A ready checkout when there is one (not after a rebuild or a failed checkout: made from the old mirror).
                if !use.rebuilt, use.hit, adoptReadyCheckout(repositoryID, into: workspace) {
                    use.ready = true
                    try await workspace.refreshRepository(from: mirror(repositoryID), branch: branch)
                } else {
                    try await workspace.linkRepository(from: mirror(repositoryID), branch: branch)
                }
                break
            } catch let error as GitError where !use.rebuilt && Self.isMirrorsFault(error) {
                logger.warning("the repository cache failed; rebuilding it once", metadata: [
                    "repo.id": "\(repositoryID)", "error": "\(error)",
                ])
                use.rebuilt = true
                use.hit = false
                use.ready = false
                await discard(repositoryID)
                await workspace.removeRepository()
            }
        }
        touch(repositoryID)
        return use
    }

    /// Fetches into the mirror (creating it first), unless a fetch of the branch started after `asked`.
    private func update(_ id: Int64, url: String, branch: String, token: String, asked: ContinuousClock.Instant, use start: Use) async throws -> Use {
        var use = start
        let mirror = mirror(id)
        let git = GitWorkspace(root: directory(id), caBundlePath: caBundlePath)
        if !FileManager.default.fileExists(atPath: mirror + "/HEAD") {
            use.hit = false
            fetchFinished[id] = nil
            try FileManager.default.createDirectory(atPath: directory(id), withIntermediateDirectories: true)
            try await git.git(["init", "--quiet", "--bare", "--template=", mirror], repository: false, name: "init")
            verified.insert(id)
        } else if !verified.contains(id) {
            try await git.git(["--git-dir=\(mirror)", "fsck", "--connectivity-only", "--no-dangling", "--no-progress"],
                              repository: false, name: "fsck")
            verified.insert(id)
        }
        // A fetch that ended after this task asked (one it waited for) is as fresh as its own would be.
        if let finished = fetchFinished[id]?[branch], finished >= asked { return use }
        if !allowsLocalSources { try git.checkURL(url) }
        let before = sizes[id] ?? Self.size(of: mirror)
        let started = ContinuousClock.now
        try await git.git(["--git-dir=\(mirror)", "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--depth", "1", "--", url,
                           "+refs/heads/\(branch):refs/heads/\(branch)"], repository: false, token: token, name: "fetch",
                          environment: allowsLocalSources ? ["GIT_ALLOW_PROTOCOL": "file"] : [:])
        fetchFinished[id, default: [:]][branch] = ContinuousClock.now
        var after = Self.size(of: mirror)
        use.fetched = true
        use.fetchedBytes = max(0, after - before)
        Timer(label: "asynccode_repo_cache_fetch_seconds", factory: metrics).record(duration: ContinuousClock.now - started)
        Counter(label: "asynccode_repo_cache_fetched_bytes_total", factory: metrics).increment(by: use.fetchedBytes)
        // Every fetch adds a pack, or loose objects when it brings fewer than 100: many of either slow every later read.
        let packs = (try? FileManager.default.contentsOfDirectory(atPath: mirror + "/objects/pack"))?.filter { $0.hasSuffix(".pack") }.count ?? 0
        let counted = try await git.git(["--git-dir=\(mirror)", "count-objects"], repository: false, name: "count-objects")
        let loose = Int(counted.split(separator: " ").first ?? "") ?? 0
        if packs > 32 || loose > 2_000 {
            try await git.git(["--git-dir=\(mirror)", "repack", "-a", "-d", "-q"], repository: false, name: "repack")
            after = Self.size(of: mirror)
        }
        sizes[id] = after
        return use
    }

    /// Whether a failure may be the mirror's (worth rebuilding it once), not the remote's answer.
    static func isMirrorsFault(_ error: GitError) -> Bool {
        let message = error.message.lowercased()
        // Whole phrases only: a bare "403" also stands in object ids and pack names.
        let remote = ["couldn't find remote ref", "authentication failed", "returned error: 401", "returned error: 403",
                      "returned error: 404", "repository not found", "could not resolve host", "connection refused",
                      "took longer than", "could not run git"]
        return message != "stopped" && !remote.contains { message.contains($0) }
    }

    /// Removes the mirror (the caller holds its lock).
    private func discard(_ id: Int64) async {
        fetchFinished[id] = nil
        readyBytes[id] = nil
        verified.remove(id)
        sizes[id] = nil
        let directory = directory(id)
        await BlockingPool.run { try? FileTree.remove(directory) }
    }

    private nonisolated func touch(_ id: Int64) {
        let stamp = directory(id) + "/last-used"
        if !FileManager.default.createFile(atPath: stamp, contents: nil) {
            logger.debug("cannot mark the mirror used", metadata: ["repo.id": "\(id)"])
        }
    }

    // MARK: - Locks

    /// Runs `body` holding the repository's lock (a `flock` on `<root>/<id>.lock`, shared by every process).
    func locked<T: Sendable>(_ id: Int64, _ body: () async throws -> T) async throws -> T {
        let descriptor = openLock(id)
        guard descriptor >= 0 else { throw GitError(command: "cache", message: "cannot open the repository cache's lock in \(root)") }
        defer { close(descriptor) }
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            guard !Task.isCancelled else { throw GitError(command: "cache", message: "stopped") }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return try await body()
    }

    /// Opens the repository's lock file (creating it); a negative descriptor when it cannot.
    private nonisolated func openLock(_ id: Int64) -> Int32 {
        open("\(root)/\(id).lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
    }

    /// Runs `body` if the repository's lock is free now; returns whether it ran.
    func ifUnlocked(_ id: Int64, _ body: () async -> Void) async -> Bool {
        let descriptor = openLock(id)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else { return false }
        await body()
        return true
    }

    // MARK: - Bounds

    /// The mirrors present: repository id, size in bytes (the mirror and its ready checkout, each walked only when
    /// not measured yet), last use.
    func mirrors() async -> [(id: Int64, bytes: Int64, used: Date)] {
        let root = root
        let ids = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap { Int64($0) }
        let (knownMirrors, knownReady) = (sizes, readyBytes)
        let found = await BlockingPool.run {
            ids.map { id -> (id: Int64, mirror: Int64, ready: Int64, used: Date) in
                let used = (try? FileManager.default.attributesOfItem(atPath: "\(root)/\(id)/last-used"))?[.modificationDate] as? Date
                let mirror = knownMirrors[id] ?? Self.size(of: "\(root)/\(id)/mirror.git")
                let ready = knownReady[id] ?? Self.size(of: "\(root)/\(id)/ready", skippingLinked: true)
                return (id, mirror, ready, used ?? .distantPast)
            }
        }
        for entry in found {
            if sizes[entry.id] == nil { sizes[entry.id] = entry.mirror }
            // Made or taken meanwhile: the newer figure stands.
            if knownReady[entry.id] == nil, readyBytes[entry.id] == nil { readyBytes[entry.id] = entry.ready }
        }
        return found.map { ($0.id, $0.mirror + $0.ready, $0.used) }
    }

    /// Removes the least recently used mirrors (never `current`, never one in use) until they fit in `maxBytes`.
    func evict(keeping current: Int64) async {
        var present = await mirrors()
        var total = present.reduce(0) { $0 + $1.bytes }
        present.sort { $0.used < $1.used }
        for entry in present where total > maxBytes && entry.id != current {
            if await ifUnlocked(entry.id, { await discard(entry.id) }) {
                total -= entry.bytes
                Counter(label: "asynccode_repo_cache_evictions_total", factory: metrics).increment()
                logger.info("evicted a repository from the cache", metadata: ["repo.id": "\(entry.id)", "cache.bytes": "\(entry.bytes)"])
            }
        }
    }

    /// Removes the mirrors of repositories not in `keeping` (the App's active repositories); returns how many.
    @discardableResult
    public func prune(keeping: Set<Int64>) async -> Int {
        var removed = 0
        for entry in await mirrors() where !keeping.contains(entry.id) {
            if await ifUnlocked(entry.id, { await discard(entry.id) }) {
                removed += 1
                try? FileManager.default.removeItem(atPath: "\(root)/\(entry.id).lock")
            }
        }
        return removed
    }

    /// Bytes of the files under `path` (links not followed; a file hard-linked twice counted once), without the
    /// files also linked elsewhere when `skippingLinked` (a ready checkout's objects, which are the mirror's).
    public static func size(of path: String, skippingLinked: Bool = false) -> Int64 {
        var total: Int64 = 0
        var seen: Set<UInt64> = []
        try? FileTree.walk(path) { _, _, _, info in
            guard (info.st_mode & S_IFMT) == S_IFREG else { return .descend }
            if info.st_nlink > 1 {
                guard !skippingLinked, seen.insert(UInt64(info.st_ino)).inserted else { return .descend }
            }
            total += Int64(info.st_size)
            return .descend
        }
        return total
    }
}
