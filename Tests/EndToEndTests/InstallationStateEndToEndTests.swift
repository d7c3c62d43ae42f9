import Foundation
import GitHubSimulator
import Testing
import TestSupport

/// The App suspended, unsuspended, and a repository removed from it, with GitHub's own payload examples
/// (`Tests/Fixtures/webhooks`) delivered to the real application: what starts, what ends, what is called.
@Suite(.serialized, .timeLimit(.minutes(10))) struct InstallationStateEndToEndTests {
    /// Delivers the payload example `webhooks/<event>/<file>` for the simulator's installation, changed by `edit`.
    func deliverExample(
        _ e2e: EndToEnd, event: String, file: String, edit: @Sendable (inout [String: Any]) -> Void = { _ in }
    ) async throws {
        let bytes = try TestEnvironment.fixture("webhooks/\(event)/\(file)")
        var payload = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        edit(&payload)
        let delivery = try await e2e.sim.deliverWebhook(
            event: event, payload: payload, installationID: e2e.setup.installationID, repositoryID: nil)
        #expect(delivery.statusCode == 200 || delivery.statusCode == 202)
    }

    /// Comments `text` and returns how the bot recorded the delivery (`webhook_deliveries.outcome`).
    func commentOutcome(_ e2e: EndToEnd, _ text: String, on issue: Int) async throws -> String? {
        let (_, delivery) = try await e2e.sim.postUserComment(repositoryID: e2e.repositoryID, issueNumber: issue, body: text, author: "alice")
        #expect(delivery.statusCode == 200 || delivery.statusCode == 202)
        return try await e2e.string("SELECT outcome FROM webhook_deliveries WHERE delivery_guid = '\(delivery.guid)'")
    }

    @Test func aSuspendedInstallationGetsNoWorkAndUnsuspendingResumesIt() async throws {
        try await EndToEnd.with { e2e in
            // One task runs; a second one of the same issue waits its turn, acknowledged.
            let first = e2e.issue("One")
            let running = try await e2e.comment("/asynccode --agent sleeper wait", on: first)
            try await e2e.waitFor(task: running, status: "running")
            // Its agent runs: it calls GitHub again only once the agent ends.
            try await eventually("the sleeper runs") { try await sleeperIsRunning() }
            let pending = try await e2e.comment("/asynccode fix the readme", on: first)
            try await eventually("the waiting task is acknowledged") {
                try await e2e.db.count("tasks WHERE id = \(pending) AND progress_comment_id IS NOT NULL") == 1
            }

            // Suspended: the pending task ends cancelled, and the log says why.
            try await deliverExample(e2e, event: "installation", file: "suspend.payload.json")
            #expect(try await e2e.string("SELECT status::text || ': ' || error FROM tasks WHERE id = \(pending)")
                == "cancelled: the App's installation is suspended")
            #expect(e2e.logs.lines.contains {
                $0.contains("ended pending work that can no longer run") && $0.contains("task.ids=\(pending)")
                    && $0.contains("the App's installation is suspended")
            })
            let callsAtSuspension = e2e.sim.requests.count

            // A command starts nothing.
            let second = e2e.issue("Two")
            #expect(try await commentOutcome(e2e, "/asynccode fix the readme", on: second) == "ignored")
            #expect(try await e2e.db.count("tasks WHERE issue_number = \(second)") == 0)
            // A task that reaches the queue anyway (written as the suspension was) ends cancelled when claimed.
            let raced = try #require(try await e2e.db.scalar("""
                WITH made AS (
                    INSERT INTO tasks (repository_id, installation_id, requested_by, issue_number, source, comment_id, prompt)
                    SELECT repository_id, installation_id, requested_by, \(second), 'issue_comment', 987654, 'fix it'
                    FROM tasks WHERE id = \(pending)
                    RETURNING id
                )
                SELECT id, pg_notify('asynccode_work', 'task:' || id)::text FROM made
                """, as: Int64.self))
            try await e2e.waitFor(task: raced, status: "cancelled")
            #expect(try await e2e.string("SELECT error FROM tasks WHERE id = \(raced)") == "the App's installation is suspended")
            #expect(e2e.logs.lines.contains { $0.contains("cancelled a task that can no longer run") && $0.contains("task.id=\(raced)") })
            // Not one call to GitHub, which refuses a suspended installation's.
            let calls = e2e.sim.requests.dropFirst(callsAtSuspension).map { "\($0.method) \($0.path)" }
            #expect(calls.isEmpty, "calls while suspended: \(calls)")
            #expect(e2e.botComments(on: second).isEmpty)

            // Unsuspended: the next command runs.
            try await deliverExample(e2e, event: "installation", file: "unsuspend.payload.json")
            let resumed = try await e2e.comment("/asynccode fix the readme again", on: second)
            try await e2e.waitFor(task: resumed, status: "completed")
            #expect(e2e.botComments(on: second).first?.body.contains("✅ **Completed**") == true)
            try await e2e.comment("/asynccode cancel", on: first)
            try await e2e.waitFor(task: running, status: "cancelled")
        }
    }

    @Test func aRepositoryRemovedFromTheInstallationGetsNoWork() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let before = try await e2e.comment("/asynccode --agent noop look", on: issue)
            try await e2e.waitFor(task: before, status: "completed")
            let repositoryID = e2e.repositoryID
            try await deliverExample(e2e, event: "installation_repositories", file: "removed.payload.json") { payload in
                payload["repositories_removed"] = [["id": repositoryID, "name": "widgets", "full_name": "acme/widgets", "private": true]]
            }
            #expect(try await e2e.db.scalar("SELECT is_active FROM repositories WHERE github_id = \(repositoryID)", as: Bool.self) == false)
            let callsAtRemoval = e2e.sim.requests.count
            let comments = e2e.botComments(on: issue).count
            #expect(try await commentOutcome(e2e, "/asynccode fix the readme", on: issue) == "ignored")
            #expect(try await commentOutcome(e2e, "/asynccode status", on: issue) == "ignored")
            #expect(try await e2e.db.count("tasks") == 1)
            #expect(try await e2e.db.count("control_commands") == 0)
            #expect(e2e.botComments(on: issue).count == comments)
            #expect(e2e.sim.requests.count == callsAtRemoval)
        }
    }
}
