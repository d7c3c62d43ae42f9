import Foundation
import Models
import PostgresNIO
import Queue
import ServiceLifecycle
import Testing
import TestSupport

/// Inserts tasks for `issues` (one task per entry, issue numbers as given); returns their ids in order.
@discardableResult
func insertTasks(_ db: TestDatabase, issues: [Int64], priority: Int32 = 2, runAfter: String = "now()",
                 maxAttempts: Int32 = 3) async throws -> [Int64] {
    try await db.client.query("""
        INSERT INTO accounts (github_id, login) VALUES (1, 'alice') ON CONFLICT DO NOTHING
        """, logger: db.logger)
    try await db.client.query("INSERT INTO installations (github_id) VALUES (1) ON CONFLICT DO NOTHING", logger: db.logger)
    try await db.client.query("""
        INSERT INTO repositories (github_id, installation_id, full_name, name, owner_login)
        SELECT 1, id, 'o/r', 'r', 'o' FROM installations WHERE github_id = 1 ON CONFLICT DO NOTHING
        """, logger: db.logger)
    let rows = try await db.client.query(PostgresQuery(unsafeSQL: """
        INSERT INTO tasks (repository_id, installation_id, requested_by, issue_number, source, comment_id,
                           command_index, priority, run_after, max_attempts, prompt)
        SELECT r.id, r.installation_id, a.id, issue, 'issue_comment', nextval('tasks_id_seq') + 1000000, 0,
               \(priority), \(runAfter), \(maxAttempts), 'do ' || issue
        FROM unnest(ARRAY[\(issues.map(String.init).joined(separator: ","))]::int8[]) WITH ORDINALITY AS i(issue, n),
             repositories r, accounts a
        WHERE r.github_id = 1 AND a.github_id = 1
        ORDER BY n
        RETURNING id
        """), logger: db.logger)
    var ids: [Int64] = []
    for try await id in rows.decode(Int64.self) { ids.append(id) }
    return ids
}

@Suite(.timeLimit(.minutes(10))) struct TaskQueueTests {
    @Test func claimsByPriorityThenAgeAndRespectsRunAfter() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let low = try await insertTasks(db, issues: [1], priority: 1)
            let old = try await insertTasks(db, issues: [2])
            let new = try await insertTasks(db, issues: [3])
            let high = try await insertTasks(db, issues: [4], priority: 3)
            _ = try await insertTasks(db, issues: [5], priority: 3, runAfter: "now() + interval '1 hour'")
            var order: [Int64] = []
            while let task = try await queue.claim(worker: "w") { order.append(task.id) }
            #expect(order == high + old + new + low)
        }
    }

    @Test func oneRunningTaskPerThread() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let ids = try await insertTasks(db, issues: [7, 7, 8])
            let first = try #require(try await queue.claim(worker: "a"))
            let second = try #require(try await queue.claim(worker: "b"))
            #expect(first.id == ids[0])
            #expect(second.id == ids[2]) // issue 7's second task waits
            #expect(try await queue.claim(worker: "c") == nil)
            #expect(try await queue.complete(taskID: first.id, worker: "a"))
            let third = try #require(try await queue.claim(worker: "c"))
            #expect(third.id == ids[1])
        }
    }

    /// A completion and the next claim share one statement; the next task of the finished one's thread is
    /// handed on too, though the statement still saw the finished task running.
    @Test func completeAndClaimHandsOnTheNextTask() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let ids = try await insertTasks(db, issues: [7, 8, 7])
            let first = try #require(try await queue.claim(worker: "a"))
            #expect(first.id == ids[0])
            let (completed, next) = try await queue.completeAndClaim(taskID: first.id, worker: "a")
            #expect(completed)
            #expect(next?.id == ids[1])
            #expect(next?.attempt == 1)
            let (secondCompleted, third) = try await queue.completeAndClaim(taskID: ids[1], worker: "a")
            #expect(secondCompleted)
            #expect(third?.id == ids[2], "issue 7's second task, once its first is completed")
            // A worker that lost its task's lease records nothing for it, and still gets work.
            #expect(try await queue.completeAndClaim(taskID: first.id, worker: "a") == (false, nil))
            #expect(try await db.scalar("SELECT lease_owner FROM tasks WHERE id = \(ids[2])", as: String.self) == "a")
            #expect(try await db.count("tasks WHERE status = 'completed'") == 2)
            let (lastCompleted, none) = try await queue.completeAndClaim(taskID: ids[2], worker: "a")
            #expect(lastCompleted)
            #expect(none == nil)
            #expect(try await db.count("tasks WHERE status = 'completed' AND completed_at IS NOT NULL AND lease_owner IS NULL") == 3)
        }
    }

    /// The queue's statements set `updated_at` themselves (the trigger then skips its call); any other update
    /// still has it set by the trigger.
    @Test func updatedAtFollowsEveryUpdate() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let id = try #require(try await insertTasks(db, issues: [1]).first)
            try await db.client.query("UPDATE tasks SET updated_at = '2000-01-01' WHERE id = \(id)", logger: db.logger)
            #expect(try await db.count("tasks WHERE updated_at = '2000-01-01'") == 1, "an explicit value is kept")
            try await db.client.query("UPDATE tasks SET prompt = 'changed' WHERE id = \(id)", logger: db.logger)
            #expect(try await db.count("tasks WHERE updated_at > now() - interval '1 minute'") == 1, "the trigger sets it")
            try await db.client.query("UPDATE tasks SET updated_at = '2000-01-01' WHERE id = \(id)", logger: db.logger)
            _ = try #require(try await queue.claim(worker: "w"))
            #expect(try await db.count("tasks WHERE updated_at > now() - interval '1 minute'") == 1, "the claim sets it")
            try await db.client.query("UPDATE tasks SET updated_at = '2000-01-01' WHERE id = \(id)", logger: db.logger)
            #expect(try await queue.completeAndClaim(taskID: id, worker: "w") == (true, nil))
            #expect(try await db.count("tasks WHERE updated_at > now() - interval '1 minute' AND status = 'completed'") == 1)
        }
    }

    @Test func concurrentClaimsOfOneThreadNeverRunTwo() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            try await insertTasks(db, issues: Array(repeating: 9, count: 20))
            let claimed = try await withThrowingTaskGroup(of: ClaimedTask?.self) { group in
                for worker in 0..<10 { group.addTask { try await queue.claim(worker: "w\(worker)") } }
                var all: [ClaimedTask] = []
                for try await task in group { if let task { all.append(task) } }
                return all
            }
            #expect(claimed.count == 1)
            #expect(try await db.count("tasks WHERE status = 'running'") == 1)
        }
    }

    @Test func lostLeaseCannotWrite() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger, leaseDuration: .milliseconds(50))
            try await insertTasks(db, issues: [1])
            let task = try #require(try await queue.claim(worker: "dead"))
            #expect(task.attempt == 1)
            // Poll until the lease has expired and the reaper took it back.
            let deadline = ContinuousClock.now + .seconds(10)
            var reaped: [ReapedTask] = []
            while reaped.isEmpty, ContinuousClock.now < deadline { reaped = try await queue.reapExpiredLeases() }
            #expect(reaped == [ReapedTask(id: task.id, status: "pending")])
            let again = try #require(try await queue.claim(worker: "alive"))
            #expect(again.id == task.id)
            #expect(again.attempt == 2)
            #expect(try await queue.complete(taskID: task.id, worker: "dead") == false)
            #expect(try await queue.renewLease(taskID: task.id, worker: "dead") == false)
            #expect(try await queue.renewLease(taskID: task.id, worker: "alive"))
            #expect(try await queue.complete(taskID: task.id, worker: "alive"))
            #expect(try await db.scalar("SELECT status::text FROM tasks", as: String.self) == "completed")
        }
    }

    @Test func exhaustedAttemptsEndFailed() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger, leaseDuration: .milliseconds(20))
            try await insertTasks(db, issues: [1], maxAttempts: 1)
            _ = try #require(try await queue.claim(worker: "dead"))
            let deadline = ContinuousClock.now + .seconds(10)
            var reaped: [ReapedTask] = []
            while reaped.isEmpty, ContinuousClock.now < deadline { reaped = try await queue.reapExpiredLeases() }
            #expect(reaped.first?.status == "failed")
            #expect(try await queue.claim(worker: "w") == nil)
            #expect(try await db.scalar("SELECT error FROM tasks", as: String.self)?.contains("no attempts remain") == true)
        }
    }

    @Test func retryableFailuresWaitAndPermanentOnesEnd() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let ids = try await insertTasks(db, issues: [1, 2])
            let first = try #require(try await queue.claim(worker: "w"))
            #expect(try await queue.fail(taskID: first.id, worker: "w", error: "GitHub 502", retryable: true,
                                         retryDelay: .seconds(3600)) == "pending")
            let second = try #require(try await queue.claim(worker: "w"))
            #expect(second.id == ids[1])
            #expect(try await queue.fail(taskID: second.id, worker: "w", error: "not permitted", retryable: false) == "failed")
            #expect(try await queue.claim(worker: "w") == nil) // the first waits for its retry time
            #expect(try await db.count("tasks WHERE status = 'pending' AND run_after > now() + interval '59 minutes'") == 1)
        }
    }

    @Test func releaseDoesNotCountTheAttempt() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            try await insertTasks(db, issues: [1])
            let task = try #require(try await queue.claim(worker: "w"))
            #expect(try await queue.release(taskID: task.id, worker: "w"))
            let again = try #require(try await queue.claim(worker: "w2"))
            #expect(again.attempt == 1)
        }
    }

    @Test func claimsSeveralInQueueOrderOnePerThread() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            // Issue 1 has two tasks: only its first may run.
            let ids = try await insertTasks(db, issues: [1, 1, 2, 3, 4, 5])
            let first = try await queue.claim(worker: "w", count: 4)
            #expect(first.map(\.id) == [ids[0], ids[2], ids[3], ids[4]])
            #expect(try await db.count("tasks WHERE status = 'running' AND lease_owner = 'w' AND attempts = 1") == 4)

            let (completed, next) = try await queue.completeAndClaim(taskIDs: first.map(\.id), worker: "w", count: 4)
            #expect(completed == Set(first.map(\.id)))
            // The second task of issue 1 may come now or at the next claim (its thread still ran in the
            // statement's snapshot); either way each comes once.
            let rest = next.map(\.id) + (try await queue.claim(worker: "w", count: 4)).map(\.id)
            #expect(rest.sorted() == [ids[1], ids[5]])
            #expect(try await db.count("tasks WHERE status = 'completed'") == 4)
            // Completions of tasks another worker holds are not recorded.
            #expect(try await queue.complete(taskIDs: rest + [ids[0]], worker: "other").isEmpty)
            #expect(try await queue.complete(taskIDs: rest, worker: "w") == Set(rest))
        }
    }

    @Test func tasksGivenBackUnstartedAreAsIfNeverClaimed() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let signal = WorkSignal()
            let listener = WorkListener(url: db.url, signal: signal, logger: db.logger)
            let group = ServiceGroup(services: [listener], logger: db.logger)
            let ids = try await insertTasks(db, issues: [1, 2, 3])
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let claimed = try await queue.claim(worker: "w", count: 3)
                #expect(claimed.map(\.id) == ids)
                // Only the holder can give them back.
                #expect(try await queue.releaseUnstarted(taskIDs: [ids[1], ids[2]], worker: "other") == 0)
                // Wait until the listener listens: a notification sent now wakes the signal.
                let listening = try await poll {
                    try await db.scalar("SELECT count(*)::int8 FROM pg_stat_activity WHERE query LIKE 'LISTEN%'", as: Int64.self) ?? 0 > 0
                }
                #expect(listening)
                let before = signal.generation
                #expect(try await queue.releaseUnstarted(taskIDs: [ids[1], ids[2]], worker: "w") == 2)
                let woken = try await poll(timeout: .seconds(5)) { signal.generation != before }
                #expect(woken)
                await group.triggerGracefulShutdown()
            }
            #expect(try await db.count("""
                tasks WHERE status = 'pending' AND attempts = 0 AND started_at IS NULL AND lease_owner IS NULL
                  AND lease_expires_at IS NULL
                """) == 2)
            #expect(try await db.count("tasks WHERE status = 'running' AND id = \(ids[0])") == 1)
            let again = try await queue.claim(worker: "w2", count: 3)
            #expect(again.map(\.id) == [ids[1], ids[2]])
            #expect(again.allSatisfy { $0.attempt == 1 })
        }
    }

    @Test func fourWorkersRunTwoHundredTasksExactlyOnce() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            // 180 threads of one task and 10 threads of two: exclusivity is exercised too.
            let issues = (1...180).map(Int64.init) + (181...190).flatMap { [Int64($0), Int64($0)] }
            try await insertTasks(db, issues: issues)
            let runs = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        var done: [Int64] = []
                        var idle = 0
                        var handedOn: ClaimedTask?
                        while idle < 3 {
                            var claimed = handedOn
                            handedOn = nil
                            if claimed == nil { claimed = try await queue.claim(worker: "w\(worker)") }
                            guard let task = claimed else {
                                idle += 1
                                continue
                            }
                            idle = 0
                            try await queue.appendEvent(taskID: task.id, step: "ran", detail: "w\(worker)")
                            // Half the workers record completions and claim in one statement.
                            if worker % 2 == 0 {
                                let (completed, next) = try await queue.completeAndClaim(taskID: task.id, worker: "w\(worker)")
                                #expect(completed)
                                handedOn = next
                            } else {
                                #expect(try await queue.complete(taskID: task.id, worker: "w\(worker)"))
                            }
                            done.append(task.id)
                        }
                        return done
                    }
                }
                var all: [Int64] = []
                for try await done in group { all += done }
                return all
            }
            #expect(runs.count == 200)
            #expect(Set(runs).count == 200)
            #expect(try await db.count("tasks WHERE status = 'completed' AND attempts = 1") == 200)
            #expect(try await db.count("task_events WHERE kind = 'task.step'") == 200)
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct AcknowledgementAndCancelTests {
    @Test func aTaskBeingAcknowledgedIsNotClaimedUntilTheHoldEnds() async throws {
        try await TestDatabase.with { (db: TestDatabase) async throws in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let ids = try await insertTasks(db, issues: [1, 2])
            let held = try await queue.claimAcknowledgement(worker: "a")
            #expect(held == ids[0])
            // Another worker neither acknowledges nor claims the held task.
            #expect(try await queue.claimAcknowledgement(worker: "b") == ids[1])
            let first = try await queue.claim(worker: "b")
            #expect(first == nil)
            // Recording the comment ends the hold; the task is claimable and not acknowledged again.
            let store = TaskStore(client: db.client, logger: db.logger)
            #expect(try await store.saveProgressComment(taskID: ids[0], commentID: 77) == "pending")
            #expect(try await store.saveProgressComment(taskID: ids[0], commentID: 78) == nil)
            #expect(try await queue.claim(worker: "b")?.id == ids[0])
            // An abandoned hold lets the task run at once, and it is tried again only after the delay.
            try await queue.abandonAcknowledgement(taskID: ids[1], worker: "b", retryAfter: .seconds(3600))
            #expect(try await queue.claimAcknowledgement(worker: "c") == nil)
            #expect(try await queue.claim(worker: "c")?.id == ids[1])
        }
    }

    @Test func cancelledThreadsEndAndRetryQueuesTheLastAgain() async throws {
        try await TestDatabase.with { (db: TestDatabase) async throws in
            let queue = TaskQueue(client: db.client, logger: db.logger, leaseDuration: .milliseconds(50))
            let store = TaskStore(client: db.client, logger: db.logger)
            let ids = try await insertTasks(db, issues: [9, 9])
            let running = try #require(try await queue.claim(worker: "w"))
            let repositoryID = try #require(try await db.scalar("SELECT repository_id FROM tasks LIMIT 1", as: Int64.self))
            let (cancelled, stopping) = try await store.cancelThread(repositoryID: repositoryID, issueNumber: 9, reason: "by @alice")
            #expect(cancelled.map(\.id) == [ids[1]])
            #expect(stopping == [running.id])
            #expect(try await queue.isCancelRequested(taskID: running.id))
            // The worker died: the reaper ends the task cancelled, not pending.
            let deadline = ContinuousClock.now + .seconds(10)
            var reaped: [ReapedTask] = []
            while reaped.isEmpty, ContinuousClock.now < deadline { reaped = try await queue.reapExpiredLeases() }
            #expect(reaped == [ReapedTask(id: running.id, status: "cancelled")])
            // Retry takes the newest failed or cancelled task, with fresh attempts and no cancel flag.
            #expect(try await store.retryLast(repositoryID: repositoryID, issueNumber: 9) == ids[1])
            #expect(try await queue.isCancelRequested(taskID: ids[1]) == false)
            #expect(try await queue.claim(worker: "w")?.id == ids[1])
            #expect(try await store.retryLast(repositoryID: repositoryID, issueNumber: 10) == nil)
        }
    }
}
