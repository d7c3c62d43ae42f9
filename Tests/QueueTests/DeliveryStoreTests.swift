import Database
import Foundation
import Logging
import Models
import PostgresNIO
import Queue
import Testing
import TestSupport

func plan(_ guid: String, event: String = "issue_comment", tasks: [TaskRequest] = []) -> DeliveryPlan {
    DeliveryPlan(deliveryID: guid, event: event, action: "created", installationID: 1, repositoryID: 2,
                 payload: Array(#"{"action":"created"}"#.utf8), tasks: tasks, ignoredReason: tasks.isEmpty ? "no command" : nil)
}

func taskRequest(commentID: Int64, index: Int32 = 0) -> TaskRequest {
    TaskRequest(
        origin: CommandOrigin(
            installationID: 1,
            repository: RepositorySnapshot(githubID: 2, fullName: "o/r", name: "r", ownerLogin: "o", isPrivate: false,
                                           defaultBranch: "main", cloneURL: "https://example.invalid/o/r.git"),
            requester: AccountSnapshot(githubID: 3, login: "alice", type: "User", avatarURL: nil),
            issueNumber: 4, isPullRequest: false, source: .issueComment, commentID: commentID, commandIndex: index),
        kind: .code, agent: nil, priority: .medium, baseBranch: nil, prompt: "fix", sourceURL: nil)
}

/// Runs `body` with a running store on `db`.
func withStore(_ db: TestDatabase, maxBatch: Int = 64, _ body: @Sendable (DeliveryStore) async throws -> Void) async throws {
    // What these tests check is what is written, not when: a suite starting on a loaded machine (every test
    // creating its database at once) can keep a commit waiting past the 7 s default.
    let store = DeliveryStore(client: db.client, logger: db.logger, maxBatch: maxBatch, commitTimeout: .seconds(30))
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await store.run() }
        defer { group.cancelAll() }
        try await body(store)
        store.stop()
    }
}

@Suite(.timeLimit(.minutes(10))) struct DeliveryStoreTests {
    @Test func concurrentDeliveriesShareCommits() async throws {
        try await TestDatabase.with { db in
            let before = try await db.scalar(
                "SELECT xact_commit::int8 FROM pg_stat_database WHERE datname = current_database()", as: Int64.self) ?? 0
            try await withStore(db) { store in
                try await withThrowingTaskGroup(of: DeliveryOutcome.self) { group in
                    for index in 0..<400 { group.addTask { try await store.record(plan("g-\(index)")) } }
                    for try await outcome in group { #expect(outcome == .ignored(reason: "no command")) }
                }
            }
            #expect(try await db.count("webhook_deliveries") == 400)
            // Statistics are flushed lazily; force them, then compare commits with deliveries.
            _ = try await db.scalar("SELECT pg_stat_force_next_flush()::text", as: String.self)
            let after = try await db.scalar(
                "SELECT xact_commit::int8 FROM pg_stat_database WHERE datname = current_database()", as: Int64.self) ?? 0
            print("400 concurrent deliveries took \(after - before) commits (pool and statistics queries included)")
            #expect(after - before < 300)
        }
    }

    @Test func oneBadDeliveryDoesNotFailItsBatch() async throws {
        try await TestDatabase.with { db in
            try await withStore(db) { store in
                let results = await withTaskGroup(of: (String, Bool).self) { group in
                    for index in 0..<20 {
                        // PostgreSQL refuses NUL bytes in text: this one fails on the server.
                        let event = index == 7 ? "bad\u{0}event" : "issue_comment"
                        group.addTask {
                            do {
                                _ = try await store.record(plan("iso-\(index)", event: event))
                                return ("iso-\(index)", true)
                            } catch {
                                return ("iso-\(index)", false)
                            }
                        }
                    }
                    var all: [String: Bool] = [:]
                    for await (guid, ok) in group { all[guid] = ok }
                    return all
                }
                #expect(results["iso-7"] == false)
                #expect(results.values.filter { $0 }.count == 19)
            }
            #expect(try await db.count("webhook_deliveries") == 19)
        }
    }

    @Test func duplicatesInsideAndAcrossBatches() async throws {
        try await TestDatabase.with { db in
            try await withStore(db) { store in
                let outcomes = try await withThrowingTaskGroup(of: DeliveryOutcome.self) { group in
                    for _ in 0..<30 { group.addTask { try await store.record(plan("same", tasks: [taskRequest(commentID: 9)])) } }
                    var all: [DeliveryOutcome] = []
                    for try await outcome in group { all.append(outcome) }
                    return all
                }
                #expect(outcomes.filter { if case .queued = $0 { true } else { false } }.count == 1)
                #expect(outcomes.filter { $0 == .duplicate }.count == 29)
                let again = try await store.record(plan("other-guid", tasks: [taskRequest(commentID: 9)]))
                #expect(again == .duplicate)
            }
            #expect(try await db.count("tasks") == 1)
            #expect(try await db.count("webhook_deliveries") == 2)
            #expect(try await db.count("accounts") == 1)
        }
    }

    @Test func unreachableDatabaseFailsAtTheDeadline() async throws {
        let url = try DatabaseURL("postgres://nobody:pw@127.0.0.1:1/none")
        var logger = Logger(label: "t")
        logger.logLevel = .critical
        let client = PostgresClient(configuration: url.clientConfiguration(), backgroundLogger: logger)
        let store = DeliveryStore(client: client, logger: logger, commitTimeout: .milliseconds(500))
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            let started = ContinuousClock.now
            await #expect(throws: (any Error).self) { try await store.record(plan("x")) }
            // The 0.5 s deadline, not the pool (which waits a minute before its circuit breaker trips),
            // decides when the delivery fails. The bound is loose: a busy test run delays timers.
            #expect(ContinuousClock.now - started < .seconds(30))
            store.stop()
        }
    }

    /// After an outage the pool backs off up to a minute between attempts; when it cannot lend a connection
    /// within the lease budget the store writes through a connection of its own.
    @Test func directConnectionWhenThePoolCannotLendOne() async throws {
        try await TestDatabase.with { db in
            var logger = Logger(label: "t")
            logger.logLevel = .critical
            let dead = try DatabaseURL("postgres://nobody:pw@127.0.0.1:1/none")
            let deadPool = PostgresClient(configuration: dead.clientConfiguration(), backgroundLogger: logger)
            let store = DeliveryStore(client: deadPool, logger: logger, commitTimeout: .seconds(10), fallbackURL: db.url,
                                      leaseBudget: .milliseconds(300))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await deadPool.run() }
                group.addTask { try await store.run() }
                defer { group.cancelAll() }
                let outcome = try await store.record(plan("via-fallback", tasks: [taskRequest(commentID: 1)]))
                guard case .queued(let ids, _) = outcome else {
                    Issue.record("expected queued, got \(outcome)")
                    return
                }
                #expect(ids.count == 1)
                store.stop()
            }
            #expect(try await db.count("webhook_deliveries WHERE delivery_guid = 'via-fallback'") == 1)
        }
    }

    @Test func stoppedStoreRefuses() async throws {
        try await TestDatabase.with { db in
            let store = DeliveryStore(client: db.client, logger: db.logger)
            store.stop()
            await #expect(throws: DeliveryStore.StoreError.self) { try await store.record(plan("late")) }
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct DeliveryStoreDeadlineTests {
    /// A statement that does not answer (here: waiting on a lock) fails at its deadline instead of holding
    /// the delivery, its connection is closed, and the store goes on once the database answers again.
    @Test func aBlockedWriteIsAnsweredAtTheDeadlineAndTheStoreGoesOn() async throws {
        try await TestDatabase.with { db in
            let store = DeliveryStore(client: db.client, logger: db.logger, commitTimeout: .milliseconds(500))
            let locker = try await PostgresConnection.connect(
                configuration: db.url.connectionConfiguration(connectTimeout: .seconds(5)), id: 99, logger: db.logger)
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await store.run() }
                    defer { group.cancelAll() }
                    try await locker.query("BEGIN", logger: db.logger)
                    try await locker.query("LOCK TABLE webhook_deliveries IN ACCESS EXCLUSIVE MODE", logger: db.logger)
                    let started = ContinuousClock.now
                    await #expect(throws: (any Error).self) { _ = try await store.record(plan("blocked-1")) }
                    // Answered at the deadline, not when the lock goes (a loaded machine may add a few seconds).
                    let waited = ContinuousClock.now - started
                    #expect(waited >= .milliseconds(400) && waited < .seconds(30), "answered after \(waited)")
                    try await locker.query("ROLLBACK", logger: db.logger)
                    // The store goes on. On a loaded machine the first write after the lock may still miss the
                    // 0.5 s deadline (the pool is opening a connection in place of the closed one), so try again.
                    var attempt = 0
                    var outcome: DeliveryOutcome?
                    let wrote = try await poll(timeout: .seconds(30)) {
                        attempt += 1
                        outcome = try? await store.record(plan("after-\(attempt)"))
                        return outcome != nil
                    }
                    #expect(wrote)
                    #expect(outcome == .ignored(reason: "no command"))
                    #expect(try await db.count("webhook_deliveries WHERE delivery_guid = 'after-\(attempt)'") == 1)
                    store.stop()
                }
            } catch {
                try? await locker.close()
                throw error
            }
            try await locker.close()
        }
    }
}
