import Foundation
import GitHubSimulator
import Testing
import TestSupport

/// GitHub refuses every comment edit around a task's end: the progress comment still ends terminal, once
/// GitHub recovers (issue 18, item 6).
@Suite(.serialized, .timeLimit(.minutes(10))) struct CommentRepairEndToEndTests {
    @Test func commentEditsFailingFor60SecondsAroundATasksEndStillEndTheCommentCompletedOnce() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            // Hold the pull request's creation, the task's last step, to open the outage just before the end.
            e2e.sim.injectDelay(.seconds(2), method: "POST", path: "repos/acme/widgets/pulls")
            let taskID = try await e2e.comment("/asynccode fix it", on: issue)
            try await eventually("the task opens its pull request", timeout: .seconds(120), interval: .milliseconds(20)) {
                e2e.sim.requests.contains { $0.method == "POST" && $0.path.hasSuffix("/repos/acme/widgets/pulls") && $0.status == 0 }
            }
            let outage = ContinuousClock.now
            let outageStart = Date()
            e2e.sim.injectFailure(.status(502), method: "PATCH", path: "repos/*/*/issues/comments/*", times: 1_000_000)

            // The database says completed; the comment does not, and its final body waits to be repaired.
            try await e2e.waitFor(task: taskID, status: "completed", timeout: .seconds(120))
            let commentID = try #require(e2e.botComments(on: issue).first?.id)
            try await eventually("the final body waits in pending_comment_edits", timeout: .seconds(60)) {
                try await e2e.db.count("pending_comment_edits WHERE comment_id = \(commentID)") == 1
            }
            #expect(e2e.sim.comment(id: commentID)?.body.contains("✅ **Completed**") == false)

            // GitHub stays down for 60 s from the start of the outage (an outage's length, not a wait for state).
            try await Task.sleep(until: outage + .seconds(60))
            #expect(e2e.sim.comment(id: commentID)?.body.contains("✅ **Completed**") == false)
            let refused = e2e.sim.requests.filter {
                $0.method == "PATCH" && $0.path.hasSuffix("/issues/comments/\(commentID)") && $0.injected
            }.count
            let attempts = try await e2e.db.scalar(
                "SELECT attempts FROM pending_comment_edits WHERE comment_id = \(commentID)", as: Int32.self) ?? 0
            // The executor's own tries count as one; the repair tried again during the outage.
            #expect(attempts >= 2)

            e2e.sim.clearInjectedFailures()
            let recovered = ContinuousClock.now
            let recoveredAt = Date()
            try await eventually("the comment ends completed", timeout: .seconds(90), interval: .milliseconds(100)) {
                e2e.sim.comment(id: commentID)?.body.contains("✅ **Completed**") == true
            }
            let took = ContinuousClock.now - recovered
            #expect(took < .seconds(60), "the comment was completed \(took) after GitHub recovered")
            try await eventually("the repair forgets the comment") {
                try await e2e.db.count("pending_comment_edits") == 0
            }
            // Exactly one edit GitHub took after it recovered, and one terminal body in the comment's history.
            let taken = e2e.sim.requests.filter {
                $0.method == "PATCH" && $0.path.hasSuffix("/issues/comments/\(commentID)") && (200..<300).contains($0.status)
                    && $0.receivedAt >= outageStart
            }
            #expect(taken.count == 1)
            #expect(taken.first.map { $0.receivedAt >= recoveredAt } == true)
            let history = try #require(e2e.sim.comment(id: commentID)).history
            #expect(history.filter { $0.contains("✅ **Completed**") }.count == 1)
            #expect(history.last?.contains("/pull/") == true)
            print("""
                comment repair: every comment edit refused for 60 s around the task's end (\(refused) PATCH answers 502, \
                \(attempts) failed final edits); comment completed \(took) after GitHub recovered, with \(taken.count) edit
                """)
        }
    }

    /// `/asynccode cancel` on a task that had not started: its comment's final edit goes through the repair
    /// too, so a GitHub outage at that moment cannot leave it "Waiting".
    @Test func aTaskCancelledBeforeItStartedEndsItsCommentOnceGitHubRecovers() async throws {
        try await EndToEnd.with(limitsYAML: "limits: {tasksPerRequesterPerHour: 0, runningTasksPerRepository: 1, creditsPerAccountPerDay: 0}\n") { e2e in
            let first = e2e.issue("One")
            let running = try await e2e.comment("/asynccode --agent waiter wait", on: first)
            try await e2e.waitFor(task: running, status: "running")
            let second = e2e.issue("Two")
            let waiting = try await e2e.comment("/asynccode fix the readme", on: second)
            try await eventually("the second task waits its turn") {
                e2e.botComments(on: second).first?.body.contains("⏸️ **Waiting**") == true
            }
            let commentID = try #require(e2e.botComments(on: second).first?.id)
            e2e.sim.injectFailure(.status(502), method: "PATCH", path: "repos/acme/widgets/issues/comments/\(commentID)", times: 1_000_000)
            try await e2e.comment("/asynccode cancel", on: second)
            try await e2e.waitFor(task: waiting, status: "cancelled")
            // GitHub refused the edit: its body waits to be repaired, and the comment still says waiting.
            try await eventually("the cancelled comment's body waits in pending_comment_edits", timeout: .seconds(60)) {
                try await e2e.db.count("pending_comment_edits WHERE comment_id = \(commentID)") == 1
            }
            #expect(e2e.sim.comment(id: commentID)?.body.contains("cancelled it before it started") == false)
            e2e.sim.clearInjectedFailures()
            try await eventually("the comment ends cancelled", timeout: .seconds(90)) {
                e2e.sim.comment(id: commentID)?.body.contains("cancelled it before it started") == true
            }
            try await eventually("the repair forgets the comment") {
                try await e2e.db.count("pending_comment_edits WHERE comment_id = \(commentID)") == 0
            }
            try Data().write(to: URL(fileURLWithPath: e2e.stateDirectory + "/release-waiter"))
            try await e2e.waitFor(task: running, status: "completed")
        }
    }
}
