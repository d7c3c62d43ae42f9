import Foundation
import Testing
import TestSupport

/// The agent's output, live (issue 21): `task.log` events written while the agent runs, redacted and capped.
@Suite(.timeLimit(.minutes(10))) struct LiveLogEndToEndTests {
    /// The text of the task's `task.log` events of `stream`, in order.
    func logText(_ e2e: EndToEnd, task: Int64, stream: String = "stdout") async throws -> String {
        try await e2e.string("""
            SELECT coalesce(string_agg(data->>'text', '' ORDER BY id), '') FROM task_events
            WHERE task_id = \(task) AND kind = 'task.log' AND data->>'stream' = '\(stream)'
            """) ?? ""
    }

    @Test func theAgentsOutputShowsWhileItRuns() async throws {
        try await EndToEnd.with { e2e in
            let taskID = try await e2e.comment("/asynccode --agent live fix", on: e2e.issue())
            try await eventually("the marker is in task_events", timeout: .seconds(90), interval: .milliseconds(50)) {
                try await logText(e2e, task: taskID).contains("live-marker-7f3a: starting\n")
            }
            // The agent waits for the test: the task is still running.
            #expect(try await e2e.string("SELECT status::text FROM tasks WHERE id = \(taskID)") == "running")
            try await eventually("the line with the split secret and token", timeout: .seconds(30), interval: .milliseconds(50)) {
                try await logText(e2e, task: taskID).contains("and a token")
            }
            #expect(try await e2e.string("SELECT status::text FROM tasks WHERE id = \(taskID)") == "running")
            try Data().write(to: URL(fileURLWithPath: e2e.stateDirectory + "/release-live"))
            try await e2e.waitFor(task: taskID, status: "completed")

            #expect(try await logText(e2e, task: taskID) == """
                live-marker-7f3a: starting
                the secret is [REDACTED] and a token [REDACTED]
                Went live.

                """)
            #expect(try await e2e.db.count("task_events WHERE task_id = \(taskID) AND kind = 'task.log' AND step = 'log' "
                + "AND data->>'source' = 'agent'") >= 2)
            #expect(try await e2e.db.count("task_events WHERE data::text LIKE '%\(webhookSecret)%' OR data::text LIKE '%ghs_%'") == 0)
        }
    }

    @Test func setupCommandsAndChecksShowTheirOutputToo() async throws {
        let config = """
            setup:
              - echo "setup says hello"
            checks:
              - name: hello
                run: echo "check says hello"
            """
        try await EndToEnd.with(repositoryFiles: [".github/asynccode.yml": config]) { e2e in
            let taskID = try await e2e.comment("/asynccode --agent edit fix", on: e2e.issue())
            try await e2e.waitFor(task: taskID, status: "completed")
            let sources = try await e2e.string("""
                SELECT string_agg(data->>'source' || ': ' || (data->>'text'), '' ORDER BY id) FROM task_events
                WHERE task_id = \(taskID) AND kind = 'task.log'
                """)
            #expect(sources == "setup: setup says hello\nagent: Appended a line to the README.\ncheck: check says hello\n")
        }
    }

    @Test func aFloodIsCappedAt2MBAndTheBotGoesOn() async throws {
        try await EndToEnd.with { e2e in
            let started = ContinuousClock.now
            let taskID = try await e2e.comment("/asynccode --agent flood fix", on: e2e.issue())
            try await e2e.waitFor(task: taskID, status: "completed", timeout: .seconds(300))
            let elapsed = ContinuousClock.now - started
            let events = "task_events WHERE task_id = \(taskID) AND kind = 'task.log'"
            let shown = try await e2e.db.scalar(
                "SELECT coalesce(sum(octet_length(data->>'text')), 0)::int8 FROM \(events) AND data->>'stream' <> 'notice'",
                as: Int64.self) ?? 0
            #expect(shown <= 2 * 1024 * 1024)
            #expect(shown > 2 * 1024 * 1024 - 64 * 1024)
            #expect(try await e2e.db.count("\(events) AND data->>'text' LIKE '%capped at 2 MB%'") == 1)
            let dropped = try await e2e.db.scalar("SELECT (data->>'dropped')::int8 FROM \(events) AND data ? 'dropped'", as: Int64.self)
            #expect((dropped ?? 0) + shown >= 20_000_000)
            #expect(try await logText(e2e, task: taskID).hasPrefix("the secret is [REDACTED]\na noisy agent"))
            #expect(try await e2e.db.count("task_events WHERE data::text LIKE '%\(webhookSecret)%'") == 0)
            let count = try await e2e.db.count(events)
            print("flood: 20 MB printed, \(shown) bytes shown in \(count) events, \(dropped ?? -1) dropped, completed in \(elapsed)")

            // The bot is still fine: the next task runs as usual.
            let next = try await e2e.comment("/asynccode --agent edit fix", on: e2e.issue())
            try await e2e.waitFor(task: next, status: "completed")
        }
    }
}
