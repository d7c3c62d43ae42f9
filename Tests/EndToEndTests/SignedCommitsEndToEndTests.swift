import Foundation
import GitHubSimulator
import Testing
import TestSupport

/// Commits GitHub shows as the App's own and marks Verified (issue 24): with `signedCommits` the bot makes its
/// commits through the Git Data API; a repository that requires signed commits refuses anything else.
@Suite(.serialized, .timeLimit(.minutes(10))) struct SignedCommitsEndToEndTests {
    static let files = [".github/asynccode.yml": "signedCommits: true\n", "OLD.md": "old\n", "tool.sh": "echo tool\n"]

    @Test func signedCommitsAreVerifiedByTheBotAndKeepBinaryDeletionsAndModes() async throws {
        try await EndToEnd.with(repositoryFiles: Self.files) { e2e in
            try await e2e.sim.requireSignedCommits(repositoryID: e2e.repositoryID)
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent mixed tidy up", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            let head = try #require(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: pull.head))
            #expect(e2e.sim.isVerified(repositoryID: e2e.repositoryID, sha: head))
            let botID = try #require(e2e.sim.botUserID(appID: e2e.setup.app.id))
            let bot = e2e.setup.app.botLogin
            #expect(try await e2e.gitLog(head, format: "%an|%ae") == "\(bot)|\(botID)+\(bot)@users.noreply.github.com")
            #expect(try await e2e.gitLog(head, format: "%B").contains("Co-authored-by: alice <"))
            // The change set survived the API: a binary file byte for byte, a deletion, an executable bit.
            let tree = try await e2e.repoGit(["ls-tree", head])
            #expect(tree.contains("100755 blob") && tree.contains("\ttool.sh"))
            #expect(!tree.contains("OLD.md"))
            #expect(try await e2e.repoGit(["cat-file", "-s", "\(head):data.bin"]) == "10")
            let bytes = try await TestSupport.run(["sh", "-c", "git --git-dir '\(e2e.setup.repository.gitDirectory)' cat-file blob \(head):data.bin | od -An -tx1"])
            #expect(bytes.output.split(whereSeparator: \.isWhitespace).joined(separator: " ") == "00 01 02 62 69 6e 61 72 79 ff")
            #expect(try await e2e.file("README.md", on: pull.head) == "# Widgets\nchanged\n")
            #expect(try await e2e.string("SELECT commit_hash FROM tasks WHERE id = \(taskID)") == head)
            // No git push of the branch: the API made the commit and the ref.
            #expect(!e2e.sim.requests.contains { $0.method == "POST" && $0.path.hasSuffix("/git-receive-pack") })
            #expect(e2e.sim.requests.contains { $0.method == "POST" && $0.path == "/repos/acme/widgets/git/refs" && $0.status == 201 })

            // A follow-up lands on top, verified too.
            let followUp = try await e2e.comment("/asynccode --agent followup add notes", on: pull.number)
            try await e2e.waitFor(task: followUp, status: "completed")
            let next = try #require(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: pull.head))
            #expect(next != head)
            #expect(try await e2e.repoGit(["rev-parse", "\(next)^"]) == head)
            #expect(e2e.sim.isVerified(repositoryID: e2e.repositoryID, sha: next))
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).count == 1)
        }
    }

    @Test func aBranchThatMovedIsBuiltOnOnceAndNotOverwritten() async throws {
        try await EndToEnd.with(repositoryFiles: Self.files) { e2e in
            let issue = e2e.issue()
            let first = try await e2e.comment("/asynccode --agent edit fix the readme", on: issue)
            try await e2e.waitFor(task: first, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            let followUp = try await e2e.comment("/asynccode --agent waiter wait for it", on: pull.number)
            try await eventually("the waiter runs") {
                try await e2e.string("SELECT count(*)::text FROM task_events WHERE task_id = \(followUp) AND step LIKE 'Running agent%'") == "1"
            }
            // Someone pushes to the pull request's branch while the agent works.
            let theirs = try await e2e.sim.addCommit(repositoryID: e2e.repositoryID, branch: pull.head, files: ["THEIRS.md": "theirs\n"])
            try Data().write(to: URL(fileURLWithPath: e2e.stateDirectory + "/release-waiter"))
            try await e2e.waitFor(task: followUp, status: "completed")
            let head = try #require(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: pull.head))
            #expect(try await e2e.repoGit(["rev-parse", "\(head)^"]) == theirs)
            #expect(try await e2e.file("THEIRS.md", on: pull.head) == "theirs\n")
            #expect(try await e2e.file("README.md", on: pull.head)?.hasSuffix("waited\n") == true)
            #expect(e2e.sim.isVerified(repositoryID: e2e.repositoryID, sha: head))
            let refused = e2e.sim.requests.filter { $0.method == "PATCH" && $0.path.contains("/git/refs/") && $0.status == 422 }
            #expect(refused.count == 1)
        }
    }

    @Test func withoutTheSettingTheBotPushesAndAProtectedBranchRefusesIt() async throws {
        try await EndToEnd.with(repositoryFiles: ["OLD.md": "old\n"]) { e2e in
            let issue = e2e.issue()
            let pushed = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: pushed, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            let head = try #require(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: pull.head))
            #expect(!e2e.sim.isVerified(repositoryID: e2e.repositoryID, sha: head))
            let botID = try #require(e2e.sim.botUserID(appID: e2e.setup.app.id))
            #expect(try await e2e.gitLog(head, format: "%ae") == "\(botID)+\(e2e.setup.app.botLogin)@users.noreply.github.com")
            // Branch protection that requires signed commits refuses the same push.
            try await e2e.sim.requireSignedCommits(repositoryID: e2e.repositoryID)
            let other = e2e.issue("Another line")
            let refused = try await e2e.comment("/asynccode fix the readme again", on: other)
            try await e2e.waitFor(task: refused, status: "failed")
            let reason = try await e2e.string("SELECT error FROM tasks WHERE id = \(refused)") ?? ""
            #expect(reason.contains("requires signed commits") && reason.contains("signedCommits: true"), "\(reason)")
            #expect(try await e2e.string("SELECT attempts::text FROM tasks WHERE id = \(refused)") == "1")
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).count == 1)
        }
    }

    @Test func aChangeSetTooLargeForTheAPIFailsNamingTheLimitWhereSigningIsRequired() async throws {
        try await EndToEnd.with(repositoryFiles: Self.files) { e2e in
            try await e2e.sim.requireSignedCommits(repositoryID: e2e.repositoryID)
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent many write many files", on: issue)
            try await e2e.waitFor(task: taskID, status: "failed")
            let error = try #require(try await e2e.string("SELECT error FROM tasks WHERE id = \(taskID)"))
            #expect(error.contains("(1001 files) is over what asynccode commits through GitHub's API (1000 files or 100 MB)"))
            #expect(!e2e.sim.requests.contains { $0.path.hasSuffix("/git/blobs") })
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).isEmpty)
        }
    }
}

extension EndToEnd {
    /// Runs git on the simulator's repository; returns its trimmed output.
    func repoGit(_ arguments: [String]) async throws -> String {
        try await git(arguments).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Returns `git log -1 --format=<format>` of `commit`.
    func gitLog(_ commit: String, format: String) async throws -> String {
        try await repoGit(["log", "-1", "--format=\(format)", commit])
    }
}
