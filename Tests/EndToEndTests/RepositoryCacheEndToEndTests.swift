import Foundation
import GitHubSimulator
import Testing
import TestSupport

/// The repository cache (issue 23) as tasks use it: commands on GitHub, checkouts from the worker's mirror.
@Suite(.serialized, .timeLimit(.minutes(10))) struct RepositoryCacheEndToEndTests {
    /// Sessions of `git-upload-pack` the simulator served (clones and fetches).
    func fetches(_ e2e: EndToEnd) -> Int {
        e2e.sim.requests.filter { $0.isGit && $0.method == "GET" && $0.path.hasSuffix("/info/refs") && ($0.query ?? "").contains("git-upload-pack") }.count
    }

    @Test func twoTasksOnOneRepositoryAtOnceFetchOnce() async throws {
        try await EndToEnd.with { e2e in
            // The first fetch is held, so the second task arrives while it is in flight.
            e2e.sim.injectDelay(.seconds(2), method: "GET", path: "/acme/widgets.git/info/refs")
            let (first, second) = (e2e.issue("One"), e2e.issue("Two"))
            let tasks = [try await e2e.comment("/asynccode fix the readme", on: first), try await e2e.comment("/asynccode fix it too", on: second)]
            for task in tasks { try await e2e.waitFor(task: task, status: "completed") }
            #expect(fetches(e2e) == 1)
            let pulls = e2e.sim.pullRequests(repositoryID: e2e.repositoryID)
            #expect(pulls.count == 2)
            for pull in pulls { #expect(try await e2e.file("README.md", on: pull.head) == "# Widgets\nedited by the agent\n") }
            let metrics = try await e2e.metrics()
            #expect(e2e.sample("asynccode_repo_cache_misses_total", in: metrics) == 1)
            #expect(e2e.sample("asynccode_repo_cache_hits_total", in: metrics) == 1)
            #expect((e2e.sample("asynccode_repo_cache_fetched_bytes_total", in: metrics) ?? 0) > 0)

            // A later task fetches again (the branch may have moved), once.
            let thirdIssue = e2e.issue("Three")
            let third = try await e2e.comment("/asynccode fix the readme again", on: thirdIssue)
            try await e2e.waitFor(task: third, status: "completed")
            #expect(fetches(e2e) == 2)
            // It found its checkout ready (made from the mirror after the first two), not one they had used. (The
            // second of the two may have found one too, made once the first had its checkout.)
            let later = try await e2e.metrics()
            let used = e2e.sample("asynccode_repo_cache_ready_checkouts_used_total", in: later) ?? 0
            #expect(used >= 1 && used <= 2, "\(used)")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first { $0.head.hasPrefix("asynccode/\(thirdIssue)-") })
            #expect(try await e2e.file("README.md", on: pull.head) == "# Widgets\nedited by the agent\n")
        }
    }

    @Test func aForcePushedBaseAndACorruptedMirrorAreFollowed() async throws {
        try await EndToEnd.with { e2e in
            let first = try await e2e.comment("/asynccode fix the readme", on: e2e.issue("One"))
            try await e2e.waitFor(task: first, status: "completed")

            // main is rewritten (a force-push): the next task starts from the new history.
            let folder = e2e.stateDirectory + "/rewrite"
            #expect(try await TestSupport.run(["git", "clone", "-q", e2e.setup.repository.gitDirectory, folder]).status == 0)
            try "# Widgets, rewritten\n".write(toFile: folder + "/README.md", atomically: true, encoding: .utf8)
            #expect(try await TestSupport.run(["git", "-C", folder, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "rewrite", "--amend"]).status == 0)
            #expect(try await TestSupport.run(["git", "-C", folder, "push", "-q", "--force", "origin", "main"]).status == 0)
            let rewritten = try await e2e.head(of: "main")
            let issue = e2e.issue("Two")
            let second = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: second, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first { $0.head.hasPrefix("asynccode/\(issue)-") })
            #expect(try await e2e.file("README.md", on: pull.head) == "# Widgets, rewritten\nedited by the agent\n")
            #expect(try await e2e.parents(of: pull.head) == [rewritten])

            // Every object file of the mirror damaged: the next task rebuilds it and goes on.
            let objects = "\(e2e.workspaceDirectory)/repo-cache/\(e2e.repositoryID)/mirror.git/objects"
            for folder in try FileManager.default.contentsOfDirectory(atPath: objects) where folder != "info" {
                for file in try FileManager.default.contentsOfDirectory(atPath: "\(objects)/\(folder)") {
                    try FileManager.default.removeItem(atPath: "\(objects)/\(folder)/\(file)")
                    try Data("garbage".utf8).write(to: URL(fileURLWithPath: "\(objects)/\(folder)/\(file)"))
                }
            }
            let third = try await e2e.comment("/asynccode fix the readme", on: e2e.issue("Three"))
            try await e2e.waitFor(task: third, status: "completed")
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).count == 3)
            #expect(e2e.logs.lines.contains { $0.contains("repository cache") && $0.contains("rebuilding it once") || $0.contains("checking the cache") })
            #expect(e2e.sample("asynccode_repo_cache_misses_total", in: try await e2e.metrics()) == 2)
        }
    }

    @Test func anAgentThatPoisonsItsRepositoryReachesNoLaterTask() async throws {
        try await EndToEnd.with { e2e in
            let first = try await e2e.comment("/asynccode --agent gitpoison fix the readme", on: e2e.issue("One"))
            try await e2e.waitFor(task: first, status: "completed")
            // The next task takes the checkout made ready from the mirror while the first agent ran.
            let issue = e2e.issue("Two")
            let second = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: second, status: "completed")
            let metrics = try await e2e.metrics()
            #expect(e2e.sample("asynccode_repo_cache_ready_checkouts_used_total", in: metrics) == 1)
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first { $0.head.hasPrefix("asynccode/\(issue)-") })
            #expect(try await e2e.file("README.md", on: pull.head) == "# Widgets\nedited by the agent\n")
            let mirror = "\(e2e.workspaceDirectory)/repo-cache/\(e2e.repositoryID)/mirror.git"
            let check = try await TestSupport.run(["git", "--git-dir=\(mirror)", "fsck", "--no-progress", "--no-dangling"])
            #expect(check.status == 0, "\(check.output)")
        }
    }
}
