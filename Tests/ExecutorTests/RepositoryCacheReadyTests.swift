@testable import Executor
import Foundation
import Testing
import TestSupport

/// Ready checkouts of the repository cache: made from the mirror before a task comes, taken by one task, brought up
/// to date with what the task fetched, and never made from anything a task (its agent) touched.
@Suite(.timeLimit(.minutes(10))) struct RepositoryCacheReadyTests {
    typealias Scene = RepositoryCacheTests.Scene
    let token = "test-token-0123456789abcdef"

    func withScene(_ body: (Scene) async throws -> Void) async throws {
        try await RepositoryCacheTests().withScene(body)
    }

    /// The files of the checkout (without `.git`), path → content.
    func files(in workspace: GitWorkspace) throws -> [String: String] {
        var found: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: workspace.checkout)
        while let path = enumerator?.nextObject() as? String {
            if path == ".git" || path.hasPrefix(".git/") { enumerator?.skipDescendants(); continue }
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: workspace.checkout + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
                found[path] = try String(contentsOfFile: workspace.checkout + "/" + path, encoding: .utf8)
            }
        }
        return found
    }

    /// Runs git as the agent would in its checkout (its own `.git`).
    func agentGit(_ workspace: GitWorkspace, _ arguments: [String]) async throws -> String {
        let result = try await TestSupport.run(["git", "-C", workspace.checkout] + arguments)
        #expect(result.status == 0, "\(arguments): \(result.output)")
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func mirrorObjects(_ cache: RepositoryCache, _ id: Int64) async throws -> Set<String> {
        let output = try await TestSupport.run(["git", "--git-dir=\(cache.mirror(id))", "cat-file", "--batch-all-objects", "--batch-check=%(objectname)"]).output
        return Set(output.split(separator: "\n").map(String.init))
    }

    @Test func theNextTaskTakesTheReadyCheckoutAndGetsTheFilesChangedSince() async throws {
        try await withScene { scene in
            let url = try await scene.repository("widgets", files: ["README.md": "# Widgets\n", "a.txt": "a1\n", "b.txt": "b1\n"])
            let cache = await scene.cache()
            let first = try scene.workspace(1)
            #expect(try await cache.prepare(first, repositoryID: 7, url: url, branch: "main", token: token).ready == false)
            #expect(await cache.makeReadyCheckout(7, branch: "main"))
            let ready = cache.readyCheckout(7)
            #expect(FileManager.default.fileExists(atPath: ready.checkout + "/a.txt"))
            #expect(try await ready.git(["status", "--porcelain"], name: "status").isEmpty)
            // Private repositories' files: the bot's user only.
            var folder = stat()
            #expect(stat(scene.cacheRoot, &folder) == 0 && folder.st_mode & 0o777 == 0o700)

            // main moves on: a file changed, one removed, one added.
            try await TestSupport.run(["git", "-C", "\(scene.folder)/sources/widgets", "rm", "-q", "b.txt"])
            try await scene.commit("widgets", files: ["a.txt": "a2\n", "c.txt": "c1\n"], message: "second")
            let second = try scene.workspace(2)
            let use = try await cache.prepare(second, repositoryID: 7, url: url, branch: "main", token: token)
            #expect(use.ready && use.hit && use.fetched, "\(use)")
            #expect(!FileManager.default.fileExists(atPath: ready.root), "a ready checkout is taken, not shared")
            #expect(try files(in: second) == ["README.md": "# Widgets\n", "a.txt": "a2\n", "c.txt": "c1\n"])
            #expect(try await second.resolve("HEAD") == (try await scene.head("widgets")))
            #expect(try await second.git(["status", "--porcelain"], name: "status").isEmpty)
            // Exactly the mirror's objects, as for a checkout made afresh.
            #expect(try await scene.objects(in: second) == (try await mirrorObjects(cache, 7)))

            // The agent's copy is brought up to date too: the work branch at the new head, nothing to commit.
            try await second.createBranch("asynccode/2-fix")
            try await second.giveAgentItsRepository(refreshing: true)
            #expect(try await agentGit(second, ["rev-parse", "HEAD"]) == (try await scene.head("widgets")))
            #expect(try await agentGit(second, ["symbolic-ref", "HEAD"]) == "refs/heads/asynccode/2-fix")
            #expect(try await agentGit(second, ["status", "--porcelain"]).isEmpty)
            #expect(try await agentGit(second, ["fsck", "--connectivity-only", "--no-dangling", "--no-progress"]).isEmpty)
            // A copy, not links: nothing the agent writes there reaches the bot's directory or the mirror.
            var info = stat()
            for pack in try FileManager.default.contentsOfDirectory(atPath: second.checkout + "/.git/objects/pack") {
                #expect(lstat(second.checkout + "/.git/objects/pack/" + pack, &info) == 0 && info.st_nlink == 1, "\(pack)")
            }
            // And the bot's own git commits from it as from any checkout.
            try "edited\n".write(toFile: second.checkout + "/a.txt", atomically: true, encoding: .utf8)
            _ = try await second.discardAgentRepositories()
            #expect(try await second.stageAll().map(\.path) == ["a.txt"])
        }
    }

    @Test func nothingATaskWroteReachesALaterTask() async throws {
        try await withScene { scene in
            let url = try await scene.repository("widgets", files: ["README.md": "# Widgets\n"])
            let cache = await scene.cache()
            try await cache.prepare(try scene.workspace(1), repositoryID: 7, url: url, branch: "main", token: token)
            #expect(await cache.makeReadyCheckout(7, branch: "main"))
            let second = try scene.workspace(2)
            #expect(try await cache.prepare(second, repositoryID: 7, url: url, branch: "main", token: token).ready)
            try await second.giveAgentItsRepository(refreshing: true)

            // A hostile agent: rewrites the files, every object file of its copy (in place), its config and hooks.
            try "poisoned\n".write(toFile: second.checkout + "/README.md", atomically: true, encoding: .utf8)
            let copy = second.checkout + "/.git"
            for folder in try FileManager.default.contentsOfDirectory(atPath: copy + "/objects") where folder != "info" {
                for file in try FileManager.default.contentsOfDirectory(atPath: "\(copy)/objects/\(folder)") {
                    let path = "\(copy)/objects/\(folder)/\(file)"
                    chmod(path, 0o644)
                    let handle = try #require(FileHandle(forWritingAtPath: path))
                    try handle.write(contentsOf: Data(repeating: 0x41, count: 64))
                    try handle.close()
                }
            }
            try "[core]\n\thooksPath = /tmp/evil\n".write(toFile: copy + "/config", atomically: true, encoding: .utf8)

            // The next ready checkout is made from the mirror, never from that workspace.
            #expect(await cache.makeReadyCheckout(7, branch: "main"))
            let third = try scene.workspace(3)
            #expect(try await cache.prepare(third, repositoryID: 7, url: url, branch: "main", token: token).ready)
            try await third.giveAgentItsRepository(refreshing: true)
            #expect(try files(in: third) == ["README.md": "# Widgets\n"])
            #expect(try await agentGit(third, ["fsck", "--no-progress"]).isEmpty)
            #expect(!(try String(contentsOfFile: third.checkout + "/.git/config", encoding: .utf8)).contains("evil"))
            let mirrorCheck = try await TestSupport.run(["git", "--git-dir=\(cache.mirror(7))", "fsck", "--no-progress"])
            #expect(mirrorCheck.status == 0, "\(mirrorCheck.output)")
        }
    }

    @Test func aTaskWaitsForTheReadyCheckoutBeingMadeAndAnotherBranchIsCheckedOutFromIt() async throws {
        try await withScene { scene in
            let url = try await scene.repository("widgets", files: ["README.md": "# Widgets\n", "only-main.txt": "main\n"])
            let source = "\(scene.folder)/sources/widgets"
            try await TestSupport.run(["git", "-C", source, "checkout", "-q", "-b", "feature"])
            try await TestSupport.run(["git", "-C", source, "rm", "-q", "only-main.txt"])
            try await scene.commit("widgets", files: ["feature.txt": "feature\n"], message: "feature")
            let featureHead = try await scene.head("widgets")
            try await TestSupport.run(["git", "-C", source, "checkout", "-q", "main"])
            let cache = await scene.cache()
            try await cache.prepare(try scene.workspace(1), repositoryID: 7, url: url, branch: "main", token: token)

            let second = try scene.workspace(2)
            func until(_ what: String, _ condition: () async -> Bool) async throws {
                let deadline = ContinuousClock.now + .seconds(20)
                while await !condition() {
                    guard ContinuousClock.now < deadline else {
                        Issue.record("timed out waiting until \(what)")
                        throw CancellationError()
                    }
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            // The repository's lock held here, so the ready checkout stays in the making until it is let go.
            let lock = open(scene.cacheRoot + "/7.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
            #expect(lock >= 0 && flock(lock, LOCK_EX) == 0)
            let use = try await withThrowingTaskGroup(of: RepositoryCache.Use?.self) { group in
                group.addTask {
                    await cache.makeReadyCheckout(7, branch: "main")
                    return nil
                }
                try await until("the ready checkout is being made") { await cache.readyMaking[7] != nil }
                // A task of the repository waits for it rather than writing a checkout of its own.
                group.addTask { try await cache.prepare(second, repositoryID: 7, url: url, branch: "feature", token: self.token) }
                try await until("the task waits for it") { await cache.readyMaking[7]?.count == 1 }
                close(lock)
                var use: RepositoryCache.Use?
                for try await result in group where result != nil { use = result }
                return try #require(use)
            }
            #expect(use.ready)
            #expect(try files(in: second) == ["README.md": "# Widgets\n", "feature.txt": "feature\n"])
            #expect(try await second.resolve("HEAD") == featureHead)
            #expect(try await second.git(["status", "--porcelain"], name: "status").isEmpty)
        }
    }

    @Test func readyCheckoutsCountTowardTheBoundAndCanBeTurnedOff() async throws {
        try await withScene { scene in
            let url = try await scene.repository("widgets", files: ["README.md": String(repeating: "w", count: 200_000)])
            let cache = await scene.cache()
            try await cache.prepare(try scene.workspace(1), repositoryID: 7, url: url, branch: "main", token: token)
            let before = try #require(await cache.mirrors().first { $0.id == 7 }).bytes
            #expect(await cache.makeReadyCheckout(7, branch: "main"))
            let after = try #require(await cache.mirrors().first { $0.id == 7 }).bytes
            // The ready checkout's files and its agent copy count; its object files (the mirror's, linked) do not twice.
            #expect(after >= before + 200_000, "\(before) → \(after)")
            #expect(after < before + 200_000 + 32_768, "\(before) → \(after)")
            // Evicted with its mirror.
            await cache.evict(keeping: 8)
            let small = RepositoryCache(root: scene.cacheRoot, maxBytes: 1, logger: .init(label: "test"))
            await small.evict(keeping: 8)
            #expect(!FileManager.default.fileExists(atPath: cache.directory(7)))

            let off = RepositoryCache(root: scene.folder + "/off", maxBytes: 1 << 30, keepsReadyCheckouts: false, logger: .init(label: "test"))
            await off.allowLocalSources()
            try await off.prepare(try scene.workspace(2), repositoryID: 7, url: url, branch: "main", token: token)
            #expect(await off.makeReadyCheckout(7, branch: "main") == false)
            #expect(!FileManager.default.fileExists(atPath: off.readyCheckout(7).root))
        }
    }

    @Test func whatAStoppedProcessLeftIsReplaced() async throws {
        try await withScene { scene in
            let url = try await scene.repository("widgets", files: ["README.md": "# Widgets\n"])
            let cache = await scene.cache()
            try await cache.prepare(try scene.workspace(1), repositoryID: 7, url: url, branch: "main", token: token)
            // A process stopped halfway through taking one (its git directory gone, its files left) and another while
            // making one (a process id that is not running).
            let ready = cache.readyCheckout(7)
            try FileManager.default.createDirectory(atPath: ready.checkout, withIntermediateDirectories: true)
            try "stale\n".write(toFile: ready.checkout + "/README.md", atomically: true, encoding: .utf8)
            let leftover = cache.directory(7) + "/making-999999999-0badc0de"
            let recent = cache.directory(7) + "/making-999999998-0badc0de"
            for folder in [leftover, recent] { try FileManager.default.createDirectory(atPath: folder + "/repo", withIntermediateDirectories: true) }
            try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -3600)], ofItemAtPath: leftover)
            #expect(await cache.makeReadyCheckout(7, branch: "main"))
            #expect(!FileManager.default.fileExists(atPath: leftover))
            // Another container's process of that id may be making one now: left until it has been idle 10 minutes.
            #expect(FileManager.default.fileExists(atPath: recent))
            #expect(FileManager.default.fileExists(atPath: ready.gitDirectory))
            let third = try scene.workspace(3)
            #expect(try await cache.prepare(third, repositoryID: 7, url: url, branch: "main", token: token).ready)
            #expect(try files(in: third) == ["README.md": "# Widgets\n"])
        }
    }

    /// Whether `/dev/shm` and the temporary folder are different file systems (a rename between them fails).
    static let twoFileSystems: Bool = {
        var (shm, temporary) = (stat(), stat())
        return stat("/dev/shm", &shm) == 0 && stat(FileManager.default.temporaryDirectory.path, &temporary) == 0 && shm.st_dev != temporary.st_dev
    }()

    @Test(.enabled(if: twoFileSystems, "needs /dev/shm on another file system than the temporary folder"))
    func aCacheOnAnotherFileSystemThanTheWorkspacesStopsMakingThem() async throws {
        try await withScene { scene in
            let url = try await scene.repository("widgets", files: ["README.md": "# Widgets\n"])
            let root = "/dev/shm/asynccode-test-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: root) }
            let cache = RepositoryCache(root: root, maxBytes: 1 << 30, logger: .init(label: "test"))
            await cache.allowLocalSources()
            try await cache.prepare(try scene.workspace(1), repositoryID: 7, url: url, branch: "main", token: token)
            #expect(await cache.makeReadyCheckout(7, branch: "main"))
            // It cannot be moved into a workspace on the other file system: the task makes its own (objects copied).
            let second = try scene.workspace(2)
            #expect(try await cache.prepare(second, repositoryID: 7, url: url, branch: "main", token: token).ready == false)
            #expect(try files(in: second) == ["README.md": "# Widgets\n"])
            #expect(try await second.git(["status", "--porcelain"], name: "status").isEmpty)
            #expect(!FileManager.default.fileExists(atPath: cache.readyCheckout(7).root))
            #expect(await cache.readyUnsupported)
            #expect(await cache.makeReadyCheckout(7, branch: "main") == false)
        }
    }
}
