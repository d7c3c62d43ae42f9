import Database
import Foundation
import Logging
import PostgresNIO
@testable import Queue
import Testing
import TestSupport

/// `task_events` as a log (issue 21): the triggers that write it, ids final in order, pruning, and the bounded
/// mailbox of a subscriber.
@Suite(.timeLimit(.minutes(5))) struct EventLogTests {
    @Test func changesWriteTheirEventsInTheSameTransaction() async throws {
        try await TestDatabase.with { db in
            let log = EventLog(client: BoundedClient(db.client), logger: db.logger)
            let start = try await log.horizon()
            let task = try #require(try await insertTasks(db, issues: [7]).first)
            try await db.client.query("UPDATE tasks SET status = 'running' WHERE id = \(task)", logger: db.logger)
            try await db.client.query("UPDATE tasks SET lease_expires_at = now() WHERE id = \(task)", logger: db.logger)
            try await db.client.query("UPDATE tasks SET status = 'failed', error = 'agent exited 3' WHERE id = \(task)", logger: db.logger)
            // A change rolled back writes no event.
            await #expect(throws: (any Error).self) {
                try await db.client.withTransaction(logger: db.logger) { connection in
                    try await connection.query("UPDATE tasks SET status = 'pending' WHERE id = \(task)", logger: db.logger)
                    try await connection.query("SELECT 1/0", logger: db.logger)
                }
            }
            try await db.client.query("""
                INSERT INTO credit_transactions (account_id, task_id, type, amount, description)
                SELECT requested_by, id, 'debit', -1.5, 'a run' FROM tasks WHERE id = \(task)
                """, logger: db.logger)
            let events = try await log.read(after: start)
            let kinds = events.map(\.kind)
            // The account's welcome credits came first (inserted with the task's account).
            #expect(kinds == ["credits.updated", "task.status_updated", "task.status_updated", "task.completed", "credits.updated"], "\(kinds)")
            let ended = try #require(events.first { $0.kind == "task.completed" })
            let json = try #require(try JSONSerialization.jsonObject(with: Data(ended.json.utf8)) as? [String: Any])
            let data = try #require(json["data"] as? [String: Any])
            #expect(data["status"] as? String == "failed" && data["previous"] as? String == "running" && data["error"] as? String == "agent exited 3")
            #expect(ended.repositoryID != nil && ended.taskID == task)
            // A ledger entry belongs to its account, not to the task's repository.
            let debit = try #require(events.last)
            let debitData = try #require((try JSONSerialization.jsonObject(with: Data(debit.json.utf8)) as? [String: Any])?["data"] as? [String: Any])
            #expect(debit.repositoryID == nil && debit.accountID != nil)
            #expect(debitData["balance"] as? String == "98.5000" && debitData["amount"] as? String == "-1.5000" && debitData["account"] as? String == "alice",
                    "\(debit.json)")
        }
    }

    /// An id drawn by a transaction still open is not final: the horizon waits for it, and a reader that sees a
    /// later id committed sees the gap before it.
    @Test func theHorizonWaitsForTransactionsStillWritingEvents() async throws {
        try await TestDatabase.with { db in
            let log = EventLog(client: BoundedClient(db.client), logger: db.logger)
            let task = try #require(try await insertTasks(db, issues: [8]).first)
            let start = try await log.horizon()
            let open = try await PostgresConnection.connect(configuration: db.url.connectionConfiguration(), id: 99, logger: db.logger)
            try await open.query("BEGIN", logger: db.logger)
            try await open.query("INSERT INTO task_events (task_id, step) VALUES (\(task), 'first')", logger: db.logger)
            try await db.client.query("INSERT INTO task_events (task_id, step) VALUES (\(task), 'second')", logger: db.logger)
            let visible = try await log.read(after: start)
            #expect(visible.count == 1 && visible[0].id == start + 2, "the first id is still being written: \(visible.map(\.id))")
            await #expect(throws: (any Error).self, "the horizon waits while it is open") {
                _ = try await log.horizon(lockTimeout: .milliseconds(200))
            }
            try await open.query("COMMIT", logger: db.logger)
            try await open.close()
            let horizon = try await log.horizon()
            #expect(horizon == start + 2)
            #expect(try await log.read(after: start, through: horizon).map(\.id) == [start + 1, start + 2])
        }
    }

    @Test func pruningKeepsRecentEventsAndThoseOfUnfinishedTasks() async throws {
        try await TestDatabase.with { db in
            let log = EventLog(client: BoundedClient(db.client), logger: db.logger)
            let tasks = try await insertTasks(db, issues: [1, 2])
            try await db.client.query("UPDATE tasks SET status = 'completed' WHERE id = \(tasks[0])", logger: db.logger)
            try await db.client.query("UPDATE tasks SET status = 'running' WHERE id = \(tasks[1])", logger: db.logger)
            try await db.client.query("""
                INSERT INTO task_events (task_id, step, created_at)
                SELECT id, 'old', now() - interval '8 days' FROM tasks
                """, logger: db.logger)
            let before = try await db.count("task_events")
            #expect(try await log.prune(olderThan: .seconds(7 * 86_400), batch: 1) == 1)
            #expect(try await db.count("task_events") == before - 1)
            #expect(try await db.count("task_events WHERE step = 'old' AND task_id = \(tasks[1])") == 1)
        }
    }

    @Test func aSlowSubscriberFallsBehindAndCatchesUpFromTheTable() async throws {
        func event(_ id: Int64, repository: Int64 = 1) -> TaskEvent {
            TaskEvent(id: id, kind: "task.step", taskID: 1, repositoryID: repository, accountID: nil, json: "{}")
        }
        let subscription = EventSubscription(after: 10, hubCursor: 10, audience: EventAudience(repositories: [1], accounts: []), capacity: 3)
        #expect(await subscription.next(timeout: .milliseconds(1)) == .idle)
        subscription.offer([event(11), event(12, repository: 2)], through: 12)
        #expect(await subscription.next(timeout: .seconds(5)) == .events([event(11)]))
        // Four more than it holds: it reads the table from where it is instead.
        subscription.offer((13...16).map { event($0) }, through: 16)
        subscription.offer([event(17)], through: 17)
        #expect(await subscription.next(timeout: .seconds(5)) == .catchUp(after: 11, through: 17))
        subscription.offer([event(17), event(18)], through: 18)
        #expect(await subscription.next(timeout: .seconds(5)) == .events([event(18)]), "17 came from the table")
        subscription.finish()
        #expect(await subscription.next(timeout: .seconds(5)) == .finished)
    }
}
