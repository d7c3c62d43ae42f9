import Foundation
import GitHubSimulator
import Testing
import TestSupport

/// Check runs and automatic fixes of failed CI (issue 19): the `asynccode` check run on each pushed commit, and a
/// failed `check_suite` or `workflow_run` on the bot's own pull request starting one follow-up per head commit,
/// at most `maxAutomaticFixes` per pull request, never for the bot's own check run or a closed pull request.
@Suite(.serialized, .timeLimit(.minutes(10))) struct CIFixEndToEndTests {
    static let failingLog = "##[group]Run swift test\n--- FAIL: TestWidgets\n    widgets_test.go:12: expected 3 got 4\n##[error]Process completed with exit code 1.\n"

    @Test func aFailedCIRunOnTheBotsPullRequestStartsOneFixUpToTheLimit() async throws {
        let config = "defaultAgent: cifix\nfixFailingCI: true\nmaxAutomaticFixes: 1\n"
        try await EndToEnd.with(repositoryFiles: [".github/asynccode.yml": config]) { e2e in
            let issue = e2e.issue()
            let first = try await e2e.comment("/asynccode --agent edit fix the readme", on: issue)
            try await e2e.waitFor(task: first, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            let head = try #require(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: pull.head))
            let commitsBefore = try await e2e.commitCount(on: pull.head)
            let job = e2e.sim.addActionsJob(repositoryID: e2e.repositoryID, headSHA: head, name: "test (ubuntu)", conclusion: "failure",
                                            log: String(repeating: "noise line\n", count: 5000) + Self.failingLog)

            // One failing commit told three times: a suite, a workflow run, and the suite again under a new GUID.
            let deliveries = [
                try await e2e.deliverCI("check_suite", head: head, pull: pull.number, branch: pull.head),
                try await e2e.deliverCI("workflow_run", head: head, pull: pull.number, branch: pull.head),
                try await e2e.deliverCI("check_suite", head: head, pull: pull.number, branch: pull.head),
            ]
            #expect(deliveries.map(\.statusCode) == [202, 202, 202])
            let fix = try await e2e.ciTask(head: head)
            try await e2e.waitFor(task: fix, status: "completed")
            #expect(try await e2e.string("SELECT count(*)::text FROM tasks WHERE ci_head_sha = '\(head)'") == "1")
            var outcomes: [String] = []
            for delivery in deliveries {
                outcomes.append(try await e2e.string("SELECT outcome FROM webhook_deliveries WHERE delivery_guid = '\(delivery.guid)'") ?? "")
            }
            #expect(outcomes == ["queued", "duplicate", "duplicate"])
            // On behalf of whoever asked for the pull request, on its branch.
            #expect(try await e2e.string("SELECT a.login FROM tasks t JOIN accounts a ON a.id = t.requested_by WHERE t.id = \(fix)") == "alice")
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).count == 1)
            #expect(try await e2e.commitCount(on: pull.head) == commitsBefore + 1)
            #expect(try await e2e.file("CI.md", on: pull.head) == "expected 3 got 4\n")
            let progress = try #require(e2e.botComments(on: pull.number).first { $0.body.contains("task \(fix) ") })
            #expect(progress.body.contains("CI failed on \(head.prefix(7)): `test (ubuntu)` (failure) · automatic fix 1 of 1"))
            #expect(progress.body.contains("✅ **Completed**"))
            // The log came through GitHub's redirect, and the token did not follow it to the log's host.
            #expect(e2e.sim.requests.contains { $0.method == "GET" && $0.path == "/repos/acme/widgets/actions/jobs/\(job)/logs" && $0.status == 302 })
            #expect(e2e.sim.requests.contains { $0.path.hasPrefix("/_simulator/job-logs/") && $0.status == 200 })
            #expect(e2e.sim.logDownloadsWithAuthorization == 0)

            // CI fails on the fix's commit too: the limit (1) is reached, so one comment and no task runs.
            let second = try #require(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: pull.head))
            e2e.sim.addActionsJob(repositoryID: e2e.repositoryID, headSHA: second, name: "test (ubuntu)", conclusion: "failure", log: Self.failingLog)
            _ = try await e2e.deliverCI("check_suite", head: second, pull: pull.number, branch: pull.head)
            let refused = try await e2e.ciTask(head: second)
            try await e2e.waitFor(task: refused, status: "cancelled")
            #expect(try await e2e.string("SELECT error FROM tasks WHERE id = \(refused)")?.contains("`maxAutomaticFixes`") == true)
            #expect(try await e2e.string("SELECT progress_comment_id::text FROM tasks WHERE id = \(refused)") == nil)
            // And again on a commit someone pushes: still the one comment.
            let third = try await e2e.sim.addCommit(repositoryID: e2e.repositoryID, branch: pull.head, files: ["x.txt": "x\n"])
            e2e.sim.addActionsJob(repositoryID: e2e.repositoryID, headSHA: third, name: "test (ubuntu)", conclusion: "failure", log: Self.failingLog)
            _ = try await e2e.deliverCI("workflow_run", head: third, pull: pull.number, branch: pull.head)
            try await e2e.waitFor(task: try await e2e.ciTask(head: third), status: "cancelled")
            let limitComments = e2e.botComments(on: pull.number).filter { $0.body.contains("has had its 1 automatic fix") }
            #expect(limitComments.count == 1)
            #expect(limitComments.first?.body.contains("/asynccode fix the failing tests") == true)
            #expect(try await e2e.commitCount(on: pull.head) == commitsBefore + 2)
        }
    }

    @Test func withoutFixFailingCINothingIsSaid() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let first = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: first, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            let head = try #require(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: pull.head))
            let commentsBefore = e2e.sim.comments(repositoryID: e2e.repositoryID, issueNumber: pull.number).count
            _ = try await e2e.deliverCI("check_suite", head: head, pull: pull.number, branch: pull.head)
            let fix = try await e2e.ciTask(head: head)
            try await e2e.waitFor(task: fix, status: "cancelled")
            #expect(try await e2e.string("SELECT error FROM tasks WHERE id = \(fix)")?.contains("`fixFailingCI` is not on") == true)
            #expect(e2e.sim.comments(repositoryID: e2e.repositoryID, issueNumber: pull.number).count == commentsBefore)
            #expect(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: pull.head) == head)
            #expect(!e2e.sim.requests.contains { $0.method == "POST" && $0.path.hasSuffix("/reactions") && $0.path.contains("/issues/\(pull.number)/") })
        }
    }

    @Test func theBotsOwnCheckRunAndClosedPullRequestsStartNothing() async throws {
        let config = """
            checks:
              - name: tests
                run: 'echo "tests: 3 failed"; exit 1'
            fixRounds: 0
            fixFailingCI: true
            """
        try await EndToEnd.with(repositoryFiles: [".github/asynccode.yml": config]) { e2e in
            let issue = e2e.issue()
            let first = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: first, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            #expect(pull.draft)
            let head = try #require(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: pull.head))
            // The checks' result is the check run `asynccode` on the pushed commit.
            let runs = e2e.sim.checkRuns(repositoryID: e2e.repositoryID)
            try #require(runs.count == 1)
            #expect(runs[0].name == "asynccode")
            #expect(runs[0].headSHA == head)
            #expect(runs[0].conclusion == "failure")
            #expect(runs[0].appID == e2e.setup.app.id)
            #expect(runs[0].title == "1 of 1 check fail")
            #expect(runs[0].summary?.contains("| `tests` | ❌ exit status 1 |") == true)
            #expect(runs[0].text?.contains("tests: 3 failed") == true)

            // The App's own suite is not CI to fix.
            let own = try await e2e.deliverCI("check_suite", head: head, pull: pull.number, branch: pull.head, appID: e2e.setup.app.id)
            #expect(try await e2e.string("SELECT outcome FROM webhook_deliveries WHERE delivery_guid = '\(own.guid)'") == "ignored")
            #expect(try await e2e.string("SELECT count(*)::text FROM tasks WHERE ci_head_sha IS NOT NULL") == "0")
            // Another App's failed suite, when only asynccode's own check run fails on the commit: nothing to fix.
            _ = try await e2e.deliverCI("check_suite", head: head, pull: pull.number, branch: pull.head)
            let fix = try await e2e.ciTask(head: head)
            try await e2e.waitFor(task: fix, status: "cancelled")
            #expect(try await e2e.string("SELECT error FROM tasks WHERE id = \(fix)")?.contains("fails any more, asynccode's own aside") == true)
            // A closed pull request: the delivery is ignored.
            _ = try await e2e.db.scalar("UPDATE pull_requests SET status = 'closed' RETURNING id", as: Int64.self)
            let closed = try await e2e.deliverCI("workflow_run", head: String(repeating: "b", count: 40), pull: pull.number, branch: pull.head,
                                                 pullHead: String(repeating: "b", count: 40))
            #expect(try await e2e.string("SELECT outcome FROM webhook_deliveries WHERE delivery_guid = '\(closed.guid)'") == "ignored")
            #expect(try await e2e.string("SELECT count(*)::text FROM tasks WHERE ci_head_sha IS NOT NULL") == "1")
            #expect(e2e.botComments(on: pull.number).isEmpty)
        }
    }

    @Test func aCheckRunWithoutTheChecksPermissionOnlyWarnsOnce() async throws {
        let config = "checks:\n  - name: readme\n    run: test -s README.md\n"
        try await EndToEnd.with(repositoryFiles: [".github/asynccode.yml": config]) { e2e in
            // An installation made before `checks` was asked for.
            e2e.sim.setInstallationPermissions(["contents": "write", "issues": "write", "pull_requests": "write", "metadata": "read"],
                                               installationID: e2e.setup.installationID)
            for title in ["README needs a line", "README needs another line"] {
                let issue = e2e.issue(title)
                let taskID = try await e2e.comment("/asynccode fix the readme", on: issue)
                try await e2e.waitFor(task: taskID, status: "completed")
                #expect(e2e.botComments(on: issue).first?.body.contains("Checks: readme ✅") == true)
            }
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).count == 2)
            #expect(e2e.sim.checkRuns(repositoryID: e2e.repositoryID).isEmpty)
            #expect(e2e.logs.lines.filter { $0.contains("has not granted `checks`") }.count == 1)
        }
    }
}

extension EndToEnd {
    /// Delivers octokit's example `check_suite` or `workflow_run` (`completed`), edited: failed on `head`, for the
    /// pull request `pull` whose head is `pullHead` (default `head`), from the repository of the test (and from
    /// the App `appID`, for a check suite).
    func deliverCI(
        _ event: String, head: String, pull: Int, branch: String, pullHead: String? = nil, appID: Int64? = nil
    ) async throws -> SimulatedDelivery {
        let file = event == "check_suite" ? "check_suite/completed.payload.json" : "workflow_run/completed.with-pull-requests.payload.json"
        var payload = try #require(try JSONSerialization.jsonObject(with: Data(TestEnvironment.fixture("webhooks/" + file))) as? [String: Any])
        let repository = try #require(sim.repositoryPayload(repositoryID: repositoryID))
        payload["repository"] = repository
        payload["organization"] = nil
        let repo: [String: Any] = ["id": repositoryID, "url": repository["url"] ?? "", "name": repository["name"] ?? ""]
        let pullRequest: [String: Any] = [
            "url": "\(sim.apiURL)/repos/acme/widgets/pulls/\(pull)", "id": pull, "number": pull,
            "head": ["ref": branch, "sha": pullHead ?? head, "repo": repo], "base": ["ref": "main", "sha": head, "repo": repo],
        ]
        var run = try #require(payload[event] as? [String: Any])
        run["head_sha"] = head
        run["head_branch"] = branch
        run["conclusion"] = "failure"
        run["pull_requests"] = [pullRequest]
        if event == "check_suite", let appID {
            var app = try #require(run["app"] as? [String: Any])
            app["id"] = appID
            run["app"] = app
        }
        if event == "workflow_run" { run["name"] = "CI" }
        payload[event] = run
        return try await sim.deliverWebhook(event: event, payload: payload, installationID: setup.installationID, repositoryID: repositoryID)
    }

    /// Returns the automatic fix queued for `head`, waiting for it to appear.
    func ciTask(head: String) async throws -> Int64 {
        var id: Int64?
        try await eventually("a fix is queued for \(head.prefix(7))") {
            id = try await db.scalar("SELECT max(id) FROM tasks WHERE ci_head_sha = '\(head)'", as: Int64?.self) ?? nil
            return id != nil
        }
        return id!
    }
}
