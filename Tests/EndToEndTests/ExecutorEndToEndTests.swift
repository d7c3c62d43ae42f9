import Foundation
import GitHubSimulator
import Testing
import TestSupport

/// The executor as GitHub users see it: webhooks from the simulator into the real application, tasks in
/// PostgreSQL, git over HTTP with token auth, scripted agents; assertions on the simulator's recorded state
/// and on the database.
/// Returns whether a `sleeper` agent (`sleep 3141`) is running anywhere on the machine.
func sleeperIsRunning() async throws -> Bool {
    try await TestSupport.run(["pgrep", "-f", "sleep 3141"]).status == 0
}

@Suite(.serialized, .timeLimit(.minutes(10))) struct ExecutorEndToEndTests {
    @Test func commentBecomesAPullRequestThatClosesTheIssue() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")

            // One pull request from the task's branch, closing the issue, review requested from the requester.
            let pulls = e2e.sim.pullRequests(repositoryID: e2e.repositoryID)
            try #require(pulls.count == 1)
            let pull = pulls[0]
            #expect(pull.head == "asynccode/\(issue)-fix-the-readme")
            #expect(pull.base == "main")
            #expect(pull.title == "Fix the readme")
            #expect(pull.body?.contains("Closes #\(issue)") == true)
            #expect(pull.body?.contains("Appended a line to the README.") == true)
            #expect(pull.body?.contains("README.md") == true)
            #expect(pull.requestedReviewers == ["alice"])
            #expect(pull.author == e2e.setup.app.botLogin)
            // The branch holds the agent's edit, committed by the bot with the requester as co-author.
            #expect(try await e2e.file("README.md", on: pull.head) == "# Widgets\nedited by the agent\n")
            let log = try await TestSupport.run(["git", "--git-dir", e2e.setup.repository.gitDirectory, "log", "-1", "--format=%an%n%ae%n%B", pull.head])
            #expect(log.output.hasPrefix("\(e2e.setup.app.botLogin)\n\(e2e.setup.app.botEmail)\nFix the readme"))
            #expect(log.output.contains("Co-authored-by: alice <"))

            // One progress comment, edited through several states, ending with the pull request's link.
            let comments = e2e.botComments(on: issue)
            try #require(comments.count == 1)
            let progress = comments[0]
            #expect(progress.history.count >= 5)
            #expect(progress.history.first?.contains("Queued") == true || progress.history.first?.contains("Working") == true)
            #expect(progress.history.contains { $0.contains("Running agent `edit`") })
            #expect(progress.body.contains("✅ **Completed**"))
            #expect(progress.body.contains("/pull/\(pull.number)"))
            #expect(progress.body.contains("+1 −0"))
            // The eyes reaction on the command.
            #expect(e2e.sim.reactions.contains { $0.content == "eyes" && $0.user == e2e.setup.app.botLogin })

            // The database: completed with the pull request and the diff.
            #expect(try await e2e.db.scalar("SELECT pr_number FROM tasks WHERE id = \(taskID)", as: Int64.self) == Int64(pull.number))
            #expect(try await e2e.string("SELECT git_diff FROM tasks WHERE id = \(taskID)")?.contains("README.md") == true)
            #expect(try await e2e.string("SELECT git_patch FROM tasks WHERE id = \(taskID)")?.contains("+edited by the agent") == true)
            #expect(try await e2e.string("SELECT commit_hash FROM tasks WHERE id = \(taskID)") == (await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: pull.head)))
            #expect(try await e2e.string("SELECT changed_files::text FROM tasks WHERE id = \(taskID)")?.contains("\"README.md\"") == true)
            #expect(try await e2e.db.count("pull_requests WHERE task_id = \(taskID)") == 1)
            #expect(try await e2e.db.count("task_events WHERE task_id = \(taskID)") >= 6)
            // What the operator's Prometheus sees of it.
            let metrics = try await e2e.metrics()
            #expect(e2e.sample(#"asynccode_webhook_deliveries_total{event="issue_comment",outcome="queued"}"#, in: metrics) == 1)
            #expect(e2e.sample(#"asynccode_tasks_total{status="completed",kind="code",agent="#, in: metrics) == 1)
            #expect(e2e.sample(#"asynccode_agent_exits_total{agent="edit",code="0"}"#, in: metrics) == 1)
            #expect(e2e.sample(#"asynccode_github_requests_total{route="POST /repos/{owner}/{repo}/pulls",status="201"}"#, in: metrics) == 1)
            #expect(e2e.sample(#"asynccode_queue_wait_seconds_count{kind="code"}"#, in: metrics) == 1)
            #expect(e2e.sample(#"asynccode_task_duration_seconds_count{agent="#, in: metrics) == 1)
            #expect(e2e.sample(#"asynccode_webhook_duration_seconds_count{status="202"}"#, in: metrics) ?? 0 >= 1)
            #expect(e2e.sample(#"asynccode_tasks{status="pending"}"#, in: metrics) == 0)
            #expect(e2e.sample("asynccode_database_up", in: metrics) == 1)
            // The token is revoked after the task.
            try await eventually("every token is revoked") { e2e.sim.issuedTokens.allSatisfy(\.revoked) }
            #expect(!e2e.sim.issuedTokens.isEmpty)
        }
    }

    @Test func labelBecomesAPullRequest() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue("Add a README line", body: "The README should say more.")
            try await e2e.sim.postLabel(repositoryID: e2e.repositoryID, issueNumber: issue, label: "asynccode", sender: "alice")
            let taskID = try await e2e.latestTask(on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            let pulls = e2e.sim.pullRequests(repositoryID: e2e.repositoryID)
            try #require(pulls.count == 1)
            #expect(pulls[0].body?.contains("Closes #\(issue)") == true)
            // A label has no comment: the eyes go on the issue.
            #expect(e2e.sim.reactions.contains { $0.content == "eyes" })
            #expect(e2e.botComments(on: issue).count == 1)
        }
    }

    @Test func followUpsOnTheBotsPullRequestPushToTheSameBranch() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let first = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: first, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            #expect(try await e2e.commitCount(on: pull.head) == 2)

            // A command on the pull request: a follow-up on the same branch.
            let second = try await e2e.comment("/asynccode --agent followup also add notes", on: pull.number)
            try await e2e.waitFor(task: second, status: "completed")
            #expect(try await e2e.commitCount(on: pull.head) == 3)
            #expect(try await e2e.file("NOTES.md", on: pull.head)?.contains("follow-up") == true)

            // A review requesting changes, without a command: another follow-up.
            try await e2e.sim.postReview(repositoryID: e2e.repositoryID, pullNumber: pull.number, state: "changes_requested",
                                         body: "Please mention the license too.", author: "alice")
            let third = try await e2e.latestTask(on: pull.number)
            #expect(third != second)
            #expect(try await e2e.string("SELECT source FROM tasks WHERE id = \(third)") == "pull_request_review")
            // The review names no agent: the default one edits the README again.
            try await e2e.waitFor(task: third, status: "completed")
            #expect(try await e2e.commitCount(on: pull.head) == 4)

            // Still one pull request; the follow-ups answered on it and know the conversation.
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).count == 1)
            let replies = e2e.botComments(on: pull.number)
            #expect(replies.count == 2)
            #expect(replies.allSatisfy { $0.body.contains("✅ **Completed**") && $0.body.contains("Pushed") })
            #expect(try await e2e.db.scalar("SELECT pr_number FROM tasks WHERE id = \(second)", as: Int64.self) == Int64(pull.number))
            let chat = try await e2e.string("SELECT chat_messages::text FROM tasks WHERE id = \(second)") ?? ""
            #expect(chat.contains("assistant"))
        }
    }

    @Test func reviewPostsTheAgentsOutputAsAPullRequestReview() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let first = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: first, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            let head = await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: pull.head)
            let review = try await e2e.comment("/asynccode review --agent ask", on: pull.number)
            try await e2e.waitFor(task: review, status: "completed")
            let posted = e2e.sim.reviews.filter { $0.pullNumber == pull.number && $0.author == e2e.setup.app.botLogin }
            #expect(posted.count == 1)
            #expect(posted.first?.state == "COMMENTED")
            #expect(posted.first?.body?.contains("The answer is 42 (task \(review), kind review).") == true)
            // A review pushes nothing.
            #expect(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: pull.head) == head)
            #expect(e2e.botComments(on: pull.number).first?.body.contains("Posted the review") == true)
        }
    }

    @Test func askAnswersInTheCommentAndPushesNothing() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let headBefore = await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: "main")
            let taskID = try await e2e.comment("/asynccode ask --agent ask what is the answer?", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            let progress = try #require(e2e.botComments(on: issue).first)
            #expect(progress.body.contains("**Answer**"))
            #expect(progress.body.contains("The answer is 42 (task \(taskID), kind ask)."))
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).isEmpty)
            #expect(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: "main") == headBefore)
            #expect(!e2e.sim.requests.contains { $0.isGit && $0.path.hasSuffix("git-receive-pack") })
        }
    }

    @Test func readOnlyCommenterIsRefusedPolitelyAndNothingIsCloned() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode fix the readme", on: issue, by: "rita")
            try await e2e.waitFor(task: taskID, status: "failed")
            let progress = try #require(e2e.botComments(on: issue).first)
            #expect(progress.body.contains("Not permitted"))
            #expect(progress.body.contains("@rita"))
            let cloned = e2e.sim.requests.contains { $0.isGit }
            #expect(!cloned)
            #expect(e2e.sim.requests.contains { $0.path.hasSuffix("/collaborators/rita/permission") })
            #expect(try await e2e.string("SELECT error FROM tasks WHERE id = \(taskID)")?.contains("not permitted") == true)
            #expect(try await e2e.string("SELECT access_level::text FROM user_repository_access") == "read")
            #expect(try await e2e.db.scalar("SELECT attempts FROM tasks WHERE id = \(taskID)", as: Int32.self) == 1)
        }
    }

    @Test func failingAgentEndsFailedWithTheReasonAndOutput() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent fail fix it", on: issue)
            try await e2e.waitFor(task: taskID, status: "failed")
            let progress = try #require(e2e.botComments(on: issue).first)
            #expect(progress.body.contains("❌ **Failed**: agent `fail` exited with code 3"))
            #expect(progress.body.contains("<details><summary>Agent output"))
            #expect(progress.body.contains("model refused: quota exhausted"))
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).isEmpty)
            // A failing agent is not retried.
            #expect(try await e2e.db.scalar("SELECT attempts FROM tasks WHERE id = \(taskID)", as: Int32.self) == 1)
            #expect(try await e2e.db.scalar("SELECT exit_code FROM task_results WHERE task_id = \(taskID)", as: Int32.self) == 3)
        }
    }

    @Test func timedOutAgentIsKilledAndTheTaskEnds() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent slow fix it", on: issue)
            try await e2e.waitFor(task: taskID, status: "failed")
            let progress = try #require(e2e.botComments(on: issue).first)
            #expect(progress.body.contains("Timed out"))
            #expect(try await e2e.string("SELECT error FROM tasks WHERE id = \(taskID)")?.contains("timed out") == true)
            // No sleeping agent is left behind.
            let left = try await TestSupport.run(["pgrep", "-f", "\(e2e.agentsDirectory)/slow.sh"])
            let status = left.status
            #expect(status != 0)
        }
    }

    @Test func agentThatChangesNothingOpensNoPullRequest() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent noop fix it", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).isEmpty)
            let progress = try #require(e2e.botComments(on: issue).first)
            #expect(progress.body.contains("changed nothing"))
            #expect(progress.body.contains("Nothing needed changing."))
            #expect(!e2e.sim.requests.contains { $0.isGit && $0.path.hasSuffix("git-receive-pack") })
        }
    }

    @Test func cancelStopsARunningAgentAndRetryRunsItAgain() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent sleeper fix it", on: issue)
            try await eventually("the agent runs") { try await sleeperIsRunning() }
            let asked = ContinuousClock.now
            try await e2e.sim.postUserComment(repositoryID: e2e.repositoryID, issueNumber: issue, body: "/asynccode cancel", author: "alice")
            try await e2e.waitFor(task: taskID, status: "cancelled", timeout: .seconds(30))
            let took = ContinuousClock.now - asked
            #expect(took < .seconds(5), "cancelled after \(took)")
            let stillRunning = try await sleeperIsRunning()
            #expect(!stillRunning, "the agent's process is gone")
            let progress = try #require(e2e.botComments(on: issue).first)
            try await eventually("the comment says cancelled") { e2e.botComments(on: issue).first?.body.contains("Cancelled") == true }
            #expect(progress.id == e2e.botComments(on: issue).first?.id)
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).isEmpty)
            #expect(!e2e.sim.requests.contains { $0.isGit && $0.path.hasSuffix("git-receive-pack") })
            try await eventually("the cancel is answered") {
                e2e.botComments(on: issue).contains { $0.body.contains("stopping task \(taskID)") }
            }

            // Retry queues the same task again; it runs (and is cancelled again, to end the test quickly).
            try await e2e.sim.postUserComment(repositoryID: e2e.repositoryID, issueNumber: issue, body: "/asynccode retry", author: "alice")
            try await eventually("the retried task runs") { try await sleeperIsRunning() }
            #expect(try await e2e.string("SELECT status::text FROM tasks WHERE id = \(taskID)") == "running")
            try await e2e.sim.postUserComment(repositoryID: e2e.repositoryID, issueNumber: issue, body: "/asynccode cancel", author: "alice")
            try await e2e.waitFor(task: taskID, status: "cancelled", timeout: .seconds(30))
            #expect(try await e2e.db.count("tasks") == 1)
        }
    }

    @Test func newTasksAreAnsweredWhileEveryWorkerIsBusy() async throws {
        try await EndToEnd.with(workers: 1) { e2e in
            let busy = e2e.issue("Busy")
            let running = try await e2e.comment("/asynccode --agent sleeper wait", on: busy)
            try await eventually("the only worker runs the agent") { try await sleeperIsRunning() }
            let waiting = e2e.issue("Waiting")
            let queued = try await e2e.comment("/asynccode fix the readme", on: waiting)
            try await eventually("the waiting task is answered", timeout: .seconds(15)) {
                e2e.botComments(on: waiting).first?.body.contains("Queued") == true
            }
            #expect(e2e.sim.reactions.filter { $0.content == "eyes" }.count == 2)
            #expect(try await e2e.string("SELECT status::text FROM tasks WHERE id = \(queued)") == "pending")
            try await e2e.sim.postUserComment(repositoryID: e2e.repositoryID, issueNumber: busy, body: "/asynccode cancel", author: "alice")
            try await e2e.waitFor(task: running, status: "cancelled", timeout: .seconds(30))
            try await e2e.waitFor(task: queued, status: "completed")
            #expect(e2e.botComments(on: waiting).count == 1)
        }
    }

    @Test func statusAndHelpAreAnswered() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent noop fix it", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            try await e2e.sim.postUserComment(repositoryID: e2e.repositoryID, issueNumber: issue, body: "/asynccode status", author: "alice")
            try await eventually("status is answered") {
                e2e.botComments(on: issue).contains { $0.body.contains("| \(taskID) | `code` | completed |") }
            }
            try await e2e.sim.postUserComment(repositoryID: e2e.repositoryID, issueNumber: issue, body: "/asynccode help", author: "alice")
            try await eventually("help is answered") {
                e2e.botComments(on: issue).contains { $0.body.contains("/asynccode cancel") && $0.body.contains("`snoop`") }
            }
            try await e2e.sim.postUserComment(repositoryID: e2e.repositoryID, issueNumber: issue, body: "/asynccode status", author: "rita")
            try await eventually("a reader is refused") { e2e.botComments(on: issue).contains { $0.body.contains("Sorry @rita") } }
            // An unknown agent gets a reply listing the configured ones.
            let unknown = try await e2e.comment("/asynccode --agent nosuch fix it", on: issue)
            try await e2e.waitFor(task: unknown, status: "failed")
            #expect(e2e.botComments(on: issue).contains { $0.body.contains("there is no agent `nosuch`") && $0.body.contains("`edit`") })
        }
    }

    @Test func snoopingAgentFindsNoSecrets() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent snoop look around", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            let snoop = try #require(try await e2e.file("snoop.txt", on: pull.head))
            #expect(snoop.contains("== environment"))
            #expect(snoop.contains("ASYNCCODE_TASK_ID=\(taskID)"))
            let tokens = e2e.sim.issuedTokens.map(\.token)
            #expect(!tokens.isEmpty)
            let keyLine = e2e.setup.app.privateKeyPEM.split(separator: "\n").dropFirst().first.map(String.init) ?? "missing"
            let password = e2e.db.url.password ?? "no-password-set"
            var everything = [snoop, pull.body ?? ""] + e2e.botComments(on: issue).flatMap(\.history) + e2e.logs.lines
            everything.append(try await e2e.string("SELECT git_patch FROM tasks WHERE id = \(taskID)") ?? "")
            everything.append(try await e2e.string("SELECT string_agg(content || coalesce(output_tail, ''), '') FROM task_results") ?? "")
            for text in everything {
                for token in tokens { #expect(!text.contains(token)) }
                #expect(!text.contains(keyLine))
                #expect(!text.contains(webhookSecret))
                #expect(!text.contains("PRIVATE KEY"))
                #expect(!text.contains("DATABASE_URL"))
                #expect(!text.contains(password))
                #expect(!text.contains("x-access-token"))
                #expect(!text.contains("extraHeader"))
                #expect(!text.lowercased().contains("authorization: basic"))
            }
            try await eventually("every token is revoked") { e2e.sim.issuedTokens.allSatisfy(\.revoked) }
        }
    }
}
