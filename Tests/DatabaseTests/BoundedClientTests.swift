import Database
import Foundation
import PostgresNIO
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(10))) struct BoundedClientTests {
    @Test func readsRowsAsPostgresNIOSequencesDo() async throws {
        try await TestDatabase.with { db in
            let client = BoundedClient(db.client, timeout: .seconds(30))
            var values: [Int] = []
            for try await (value, label) in try await client.query(
                "SELECT n, 'n' || n FROM generate_series(1, 3) AS n", logger: db.logger).decode((Int, String).self) {
                #expect(label == "n\(value)")
                values.append(value)
            }
            #expect(values == [1, 2, 3])
            var count = 0
            for try await _ in try await client.query("SELECT 1 WHERE false", logger: db.logger) { count += 1 }
            #expect(count == 0)
        }
    }

    @Test func aStatementPastItsTimeoutFailsAndTheNextOneRuns() async throws {
        try await TestDatabase.with { db in
            let client = BoundedClient(db.client, timeout: .milliseconds(300))
            let started = ContinuousClock.now
            await #expect(throws: QueryDeadlineExceeded.self) {
                try await client.query("SELECT pg_sleep(5)", logger: db.logger)
            }
            #expect(ContinuousClock.now - started < .seconds(4))
            // The pool lends another connection (the late one was closed); a loaded machine may take more
            // than 300 ms to open it, and that wait is not the statement's.
            let answer = try await Self.answer(BoundedClient(db.client, timeout: .seconds(30)), db)
            #expect(answer == 42)
        }
    }

    @Test func aTransactionPastItsTimeoutLeavesNothingBehind() async throws {
        try await TestDatabase.with { db in
            try await db.client.query("CREATE TABLE bounded_marks (n int)", logger: db.logger)
            let client = BoundedClient(db.client, timeout: .milliseconds(500))
            await #expect(throws: QueryDeadlineExceeded.self) {
                try await client.withTransaction(logger: db.logger) { connection in
                    try await connection.query("INSERT INTO bounded_marks VALUES (1)", logger: db.logger)
                    try await connection.query("SELECT pg_sleep(5)", logger: db.logger)
                }
            }
            _ = try await BoundedClient(db.client, timeout: .seconds(30)).withTransaction(logger: db.logger) { connection in
                try await connection.query("INSERT INTO bounded_marks VALUES (2)", logger: db.logger)
            }
            // The first transaction's row never committed: its connection closed before COMMIT.
            var rows: [Int] = []
            for try await n in try await db.client.query("SELECT n FROM bounded_marks ORDER BY n", logger: db.logger)
                .decode(Int.self) { rows.append(n) }
            #expect(rows == [2])
        }
    }

    /// Returns what `SELECT 41 + 1` answers through `client`.
    static func answer(_ client: BoundedClient, _ db: TestDatabase) async throws -> Int? {
        for try await value in try await client.query("SELECT 41 + 1", logger: db.logger).decode(Int.self) { return value }
        return nil
    }
}
