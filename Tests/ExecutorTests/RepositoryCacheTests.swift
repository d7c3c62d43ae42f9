@testable import Executor
import Foundation
import Logging
import Testing
import TestSupport

/// The repository cache (issue 23) on local repositories (`file://`, as the fetch would go to GitHub).
@Suite(.timeLimit(.minutes(10))) struct RepositoryCacheTests {
    /// A folder with source repositories, the cache and task workspaces; removed after `body`.
    struct Scene {
        let folder: String
        var cacheRoot: String { folder + "/cache" }

        /// Makes a repository `name` whose `main` holds `files`; returns its URL.
        func repository(_ name: String, files: [String: String]) async throws -> String {
            let path = "\(folder)/sources/\(name)"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            #expect(try await TestSupport.run(["git", "init", "-q", "-b", "main", path]).status == 0)
            try await commit(name, files: files, message: "first")
            return "file://\(path)"
        }

        /// Commits `files` on `main` of repository `name` (`amend`: replacing the last commit, as a force-push would).
        func commit(_ name: String, files: [String: String], message: String, amend: Bool = false) async throws {
            let path = "\(folder)/sources/\(name)"
            for (file, content) in files { try content.write(toFile: "\(path)/\(file)", atomically: true, encoding: .utf8) }
            #expect(try await TestSupport.run(["git", "-C", path, "add", "-A"]).status == 0)
            let arguments = ["git", "-C", path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message] + (amend ? ["--amend"] : [])
            #expect(try await TestSupport.run(arguments).status == 0)
        }

        func head(_ name: String) async throws -> String {
            try await TestSupport.run(["git", "-C", "\(folder)/sources/\(name)", "rev-parse", "HEAD"]).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func cache(maxBytes: Int64 = 1 << 30) async -> RepositoryCache {
            var logger = Logger(label: "cache")
            logger.logLevel = .critical
            let cache = RepositoryCache(root: cacheRoot, maxBytes: maxBytes, logger: logger)
            await cache.allowLocalSources()
            return cache
        }

        func workspace(_ task: Int64) throws -> GitWorkspace {
            try GitWorkspace.create(in: folder + "/workspaces", taskID: task)
        }

        /// Every object in the workspace's repository.
        func objects(in workspace: GitWorkspace) async throws -> Set<String> {
            let output = try await workspace.git(["cat-file", "--batch-all-objects", "--batch-check=%(objectname)"], name: "cat-file")
            return Set(output.split(separator: "\n").map(String.init))
        }
    }

    func withScene(_ body: (Scene) async throws -> Void) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("repo-cache-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try await body(Scene(folder: folder))
    }

    @Test func aTaskGetsItsBranchFromTheMirrorAndTwoAtOnceFetchOnce() async throws {
        try await withScene { scene in
            let url = try await scene.repository("widgets", files: ["README.md": "# Widgets\n"])
            let cache = await scene.cache()
            let (first, second) = (try scene.workspace(1), try scene.workspace(2))
            async let one = cache.prepare(first, repositoryID: 7, url: url, branch: "main", token: "test-token-0123456789")
            async let two = cache.prepare(second, repositoryID: 7, url: url, branch: "main", token: "test-token-0123456789")
            let uses = try await [one, two]
            #expect(uses.filter(\.fetched).count == 1, "\(uses)")
            #expect(uses.filter(\.hit).count == 1)
            for workspace in [first, second] {
                #expect(try String(contentsOfFile: workspace.checkout + "/README.md", encoding: .utf8) == "# Widgets\n")
                #expect(try await workspace.resolve("HEAD") == (try await scene.head("widgets")))
                #expect(try await workspace.git(["status", "--porcelain"], name: "status").isEmpty)
                // The bot's repository commits and branches as a cloned one does.
                try await workspace.createBranch("asynccode/1-fix")
                try "edited\n".write(toFile: workspace.checkout + "/README.md", atomically: true, encoding: .utf8)
                #expect(try await workspace.stageAll().map(\.path) == ["README.md"])
                _ = try await workspace.commit(message: "Edit", authorName: "bot", authorEmail: "bot@example.com")
            }
            // A later task fetches what is new, and only that.
            try await scene.commit("widgets", files: ["NEW.md": "new\n"], message: "second")
            let third = try scene.workspace(3)
            let use = try await cache.prepare(third, repositoryID: 7, url: url, branch: "main", token: "test-token-0123456789")
            #expect(use.hit && use.fetched && !use.rebuilt)
            #expect(FileManager.default.fileExists(atPath: third.checkout + "/NEW.md"))
            // The mirror's objects are shared by hard links, never copied into each task.
            let objects = third.gitDirectory + "/objects"
            let folder = try #require(try FileManager.default.contentsOfDirectory(atPath: objects).first { $0.count == 2 || $0 == "pack" })
            let file = try #require(try FileManager.default.contentsOfDirectory(atPath: "\(objects)/\(folder)").first)
            let links = try FileManager.default.attributesOfItem(atPath: "\(objects)/\(folder)/\(file)")[.referenceCount] as? Int
            #expect((links ?? 0) >= 2)
        }
    }

    @Test func aForcePushedBranchIsFollowed() async throws {
        try await withScene { scene in
            let url = try await scene.repository("widgets", files: ["README.md": "before\n"])
            let cache = await scene.cache()
            try await cache.prepare(try scene.workspace(1), repositoryID: 7, url: url, branch: "main", token: "test-token-0123456789")
            try await scene.commit("widgets", files: ["README.md": "rewritten\n"], message: "rewritten", amend: true)
            let workspace = try scene.workspace(2)
            try await cache.prepare(workspace, repositoryID: 7, url: url, branch: "main", token: "test-token-0123456789")
            #expect(try String(contentsOfFile: workspace.checkout + "/README.md", encoding: .utf8) == "rewritten\n")
            #expect(try await workspace.resolve("HEAD") == (try await scene.head("widgets")))
        }
    }

    @Test func aCorruptedMirrorIsRebuiltOnce() async throws {
        try await withScene { scene in
            var files: [String: String] = [:]
            for index in 0..<200 { files["f\(index).txt"] = String(repeating: "line \(index)\n", count: 20) }
            let url = try await scene.repository("widgets", files: files)
            let used = await scene.cache()
            try await used.prepare(try scene.workspace(1), repositoryID: 7, url: url, branch: "main", token: "test-token-0123456789")
            // Damage every object file of the mirror (as a full disk or a crash might), for a worker that has used
            // it before (the fetch or the checkout fails) and for one started since (fsck on its first use).
            for cache in [used, await scene.cache()] {
                let objects = scene.cacheRoot + "/7/mirror.git/objects"
                for folder in try FileManager.default.contentsOfDirectory(atPath: objects) where folder != "info" {
                    for file in try FileManager.default.contentsOfDirectory(atPath: "\(objects)/\(folder)") {
                        let path = "\(objects)/\(folder)/\(file)"
                        try FileManager.default.removeItem(atPath: path)
                        try Data("garbage".utf8).write(to: URL(fileURLWithPath: path))
                    }
                }
                let workspace = try scene.workspace(2)
                let use = try await cache.prepare(workspace, repositoryID: 7, url: url, branch: "main", token: "test-token-0123456789")
                #expect(use.rebuilt && !use.hit)
                #expect(try String(contentsOfFile: workspace.checkout + "/f3.txt", encoding: .utf8) == files["f3.txt"])
            }
            // A branch that does not exist is the remote's answer, not the mirror's fault: no rebuild, an error.
            let cache = await scene.cache()
            try await cache.prepare(try scene.workspace(3), repositoryID: 7, url: url, branch: "main", token: "test-token-0123456789")
            await #expect(throws: GitError.self) {
                try await cache.prepare(try scene.workspace(4), repositoryID: 7, url: url, branch: "nosuch", token: "test-token-0123456789")
            }
            #expect(FileManager.default.fileExists(atPath: scene.cacheRoot + "/7/mirror.git/HEAD"))
        }
    }

    @Test func onlyTheMirrorsOwnFailuresRebuildIt() {
        func fault(_ message: String) -> Bool { RepositoryCache.isMirrorsFault(GitError(command: "fetch", message: message)) }
        // An object id or pack name may hold "403": it is still the mirror's fault.
        #expect(fault("error: index file /c/7/mirror.git/objects/pack/pack-cdc0575b9f89a3271635538f2fc80eda94031981.idx is too small"))
        #expect(fault("fatal: bad object 2c81de6f911330d2c536294fccf587127c45d149"))
        #expect(!fault("fatal: unable to access 'https://github.com/acme/widgets.git/': The requested URL returned error: 403"))
        #expect(!fault("fatal: couldn't find remote ref refs/heads/nosuch"))
        #expect(!fault("fatal: Authentication failed for 'https://github.com/acme/widgets.git/'"))
        #expect(!fault("stopped"))
    }

    @Test func overItsBoundTheLeastRecentlyUsedRepositoryGoesAndNothingCrossesRepositories() async throws {
        try await withScene { scene in
            var urls: [Int64: String] = [:]
            for (id, name) in [(1 as Int64, "alpha"), (2, "beta"), (3, "gamma")] {
                var files: [String: String] = [:]
                for index in 0..<50 { files["\(name)-\(index).txt"] = "\(name) \(index) " + UUID().uuidString + "\n" }
                urls[id] = try await scene.repository(name, files: files)
            }
            let big = await scene.cache()
            var workspaces: [Int64: GitWorkspace] = [:]
            for id: Int64 in [1, 2] {
                workspaces[id] = try scene.workspace(id)
                try await big.prepare(workspaces[id]!, repositoryID: id, url: urls[id]!, branch: "main", token: "test-token-0123456789")
            }
            // Each task's repository holds its own repository's objects only.
            let alpha = try await scene.objects(in: workspaces[1]!)
            let beta = try await scene.objects(in: workspaces[2]!)
            #expect(!alpha.isEmpty && !beta.isEmpty && alpha.isDisjoint(with: beta))
            let mirrorOfBeta = GitWorkspace(root: scene.cacheRoot + "/2")
            let betaMirrorObjects = try await mirrorOfBeta.git(
                ["--git-dir=\(scene.cacheRoot)/2/mirror.git", "cat-file", "--batch-all-objects", "--batch-check=%(objectname)"],
                repository: false, name: "cat-file")
            #expect(beta == Set(betaMirrorObjects.split(separator: "\n").map(String.init)))

            // Room for about two: the third evicts the one used least recently (alpha, then used again: beta goes).
            let sizes = await big.mirrors().reduce(0) { $0 + $1.bytes }
            try await big.prepare(try scene.workspace(4), repositoryID: 1, url: urls[1]!, branch: "main", token: "test-token-0123456789")
            let bounded = await scene.cache(maxBytes: sizes + sizes / 4)
            try await bounded.prepare(try scene.workspace(5), repositoryID: 3, url: urls[3]!, branch: "main", token: "test-token-0123456789")
            let left = Set(await bounded.mirrors().map(\.id))
            #expect(left == [1, 3], "\(left)")

            // Repositories the App no longer has lose their mirrors.
            #expect(await bounded.prune(keeping: [3]) == 1)
            #expect(Set(await bounded.mirrors().map(\.id)) == [3])
        }
    }
}
