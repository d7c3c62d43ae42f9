import Foundation
import GitHubSimulator
import Testing
import TestSupport

/// The verify loop (issue 19): the repository's `setup` and `checks` in the jail, failing checks back to the
/// agent for `fixRounds` more rounds, and what happens when they never pass.
@Suite(.serialized, .timeLimit(.minutes(10))) struct VerifyLoopEndToEndTests {
    static let statusCheck = """
        checks:
          - name: status
            run: cat STATUS.md && grep -q fixed STATUS.md
        """

    @Test func aCheckFixedInTheSecondRoundOpensAPullRequest() async throws {
        try await EndToEnd.with(repositoryFiles: [".github/asynccode.yml": Self.statusCheck]) { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent fixer make the status pass", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            let pulls = e2e.sim.pullRequests(repositoryID: e2e.repositoryID)
            try #require(pulls.count == 1)
            #expect(!pulls[0].draft)
            #expect(pulls[0].body?.contains("The agent ran 2 rounds") == true)
            #expect(try await e2e.file("STATUS.md", on: pulls[0].head) == "fixed\n")
            let body = try #require(e2e.botComments(on: issue).first?.body)
            #expect(body.contains("✅ **Completed**"))
            #expect(body.contains("Checks: status ❌"))
            #expect(body.contains("· round 1 of 3"))
            #expect(body.contains("Checks: status ✅"))
            #expect(body.contains("· round 2 of 3"))
            #expect(!body.contains("round 3 of 3"))
            #expect(body.contains("The agent ran 2 rounds"))
            // The checks' result on GitHub: the check run `asynccode` on the pushed commit, passed.
            let head = await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: pulls[0].head)
            let runs = e2e.sim.checkRuns(repositoryID: e2e.repositoryID)
            try #require(runs.count == 1)
            #expect(runs[0].name == "asynccode" && runs[0].headSHA == head && runs[0].conclusion == "success")
            #expect(runs[0].title == "1 check pass")
            #expect(runs[0].summary?.contains("after 2 agent rounds") == true)
            #expect(runs[0].text == nil)
        }
    }

    static func failingCheck(_ onFailing: String, rounds: Int) -> String {
        """
        checks:
          - name: tests
            run: 'echo "tests: 3 failed"; exit 1'
            timeout: 60
        fixRounds: \(rounds)
        onChecksFailing: \(onFailing)
        """
    }

    @Test func checksThatNeverPassOpenADraftListingThem() async throws {
        try await EndToEnd.with(repositoryFiles: [".github/asynccode.yml": Self.failingCheck("draft", rounds: 1)]) { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            let pulls = e2e.sim.pullRequests(repositoryID: e2e.repositoryID)
            try #require(pulls.count == 1)
            #expect(pulls[0].draft)
            #expect(pulls[0].body?.contains("Checks still failing") == true)
            #expect(pulls[0].body?.contains("tests: 3 failed") == true)
            let body = try #require(e2e.botComments(on: issue).first?.body)
            #expect(body.contains("round 2 of 2"))
            #expect(body.contains("tests: 3 failed"))
        }
    }

    @Test func checksThatNeverPassWithFailPushNothing() async throws {
        try await EndToEnd.with(repositoryFiles: [".github/asynccode.yml": Self.failingCheck("fail", rounds: 0)]) { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: taskID, status: "failed")
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).isEmpty)
            #expect(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: "asynccode/\(issue)-fix-the-readme") == nil)
            let body = try #require(e2e.botComments(on: issue).first?.body)
            #expect(body.contains("❌ **Failed**: the checks still fail after 1 agent round"))
            #expect(body.contains("round 1 of 1"))
            #expect(body.contains("tests: 3 failed"))
            #expect(e2e.sim.checkRuns(repositoryID: e2e.repositoryID).isEmpty)
        }
    }

    @Test func aFailingSetupEndsTheTaskBeforeTheAgent() async throws {
        let config = "setup:\n  - echo preparing the dependencies; exit 7\n"
        try await EndToEnd.with(repositoryFiles: [".github/asynccode.yml": config]) { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: taskID, status: "failed")
            let comment = try #require(e2e.botComments(on: issue).first)
            #expect(comment.body.contains("`echo preparing the dependencies; exit 7`"))
            #expect(comment.body.contains("exit status 7"))
            #expect(comment.body.contains("preparing the dependencies"))
            #expect(!comment.history.contains { $0.contains("Running agent") })
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).isEmpty)
        }
    }

    @Test func aHostileCheckReadsNoSecret() async throws {
        let config = """
            checks:
              - name: snoop
                run: cat /tmp/e2e-*/private/app.pem /tmp/e2e-*/private/.env; grep -a -h -o -e 'DATABASE_URL=[^ ]*' -e 'GITHUB_[A-Z_]*=[^ ]*' /proc/*/environ; env; echo snooped; exit 1
            fixRounds: 0
            onChecksFailing: fail
            """
        try await EndToEnd.with(repositoryFiles: [".github/asynccode.yml": config]) { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: taskID, status: "failed")
            let comment = try #require(e2e.botComments(on: issue).first)
            #expect(comment.body.contains("snooped"))
            #expect(comment.body.contains("ASYNCCODE_TASK_ID"))
            for text in comment.history + [comment.body] {
                #expect(!text.contains("not-a-real-key"))
                #expect(!text.contains("asynccode:secret"))
                #expect(!text.contains("DATABASE_URL=postgres"))
                for token in e2e.sim.issuedTokens.map(\.token) { #expect(!text.contains(token)) }
            }
            #expect(try await e2e.string("SELECT status FROM tasks WHERE id = \(taskID)") == "failed")
        }
    }
}
