import Logging
import NIOCore
import PostgresNIO

/// A pooled PostgreSQL client whose every statement answers within a time limit, or fails with
/// ``QueryDeadlineExceeded`` (its connection closed).
///
/// The stores the workers use go through it: a query PostgresNIO never answers (a server restarting just as
/// it is written) must not hold a worker, or a task it leases, forever. Rows are collected in memory, so it
/// is meant for the small results of bookkeeping statements. Waiting for a connection from the pool is not
/// bounded here; it can be cancelled.
public struct BoundedClient: Sendable {
    /// The pool the statements run on.
    public let client: PostgresClient
    /// How long one statement, or one transaction with all of its statements, may take.
    public let timeout: Duration

    /// Creates a client running each statement on `client` within `timeout`.
    public init(_ client: PostgresClient, timeout: Duration = .seconds(30)) {
        self.client = client
        self.timeout = timeout
    }

    /// Runs `query` on a pooled connection and returns its rows; fails when it has not answered within
    /// `timeout` of being sent.
    @discardableResult
    public func query(
        _ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line
    ) async throws -> BoundedRows {
        try await client.withConnection { connection in
            try await Self.closingLate(connection) {
                try await BoundedConnection(connection: connection, deadline: .now() + TimeAmount(timeout))
                    .query(query, logger: logger, file: file, line: line)
            }
        }
    }

    /// Runs `body` in a transaction on one pooled connection (rolled back when it throws); the transaction,
    /// `BEGIN` to `COMMIT`, must end within `timeout` of the connection being lent.
    public func withTransaction<Result: Sendable>(
        logger: Logger, _ body: @Sendable (BoundedConnection) async throws -> Result
    ) async throws -> Result {
        try await client.withConnection { connection in
            let deadline = NIODeadline.now() + TimeAmount(timeout)
            return try await Self.closingLate(connection) {
                try await connection.transaction(logger: logger, deadline: deadline) {
                    try await body(BoundedConnection(connection: connection, deadline: deadline))
                }
            }
        }
    }

    /// Runs `body`; when it passes its deadline, waits for the connection's close (begun at the deadline)
    /// before giving the connection back, so the pool cannot lend it again while it closes: a query written
    /// to it then could go unanswered too.
    private static func closingLate<Result>(
        _ connection: PostgresConnection, _ body: () async throws -> Result
    ) async throws -> Result {
        do {
            return try await body()
        } catch let error as QueryDeadlineExceeded {
            try? await connection.close()
            throw error
        }
    }
}

/// One connection inside a ``BoundedClient`` transaction; its statements share the transaction's deadline.
public struct BoundedConnection: Sendable {
    let connection: PostgresConnection
    let deadline: NIODeadline

    /// Runs `query` and returns its rows; fails at the transaction's deadline.
    @discardableResult
    public func query(
        _ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line
    ) async throws -> BoundedRows {
        BoundedRows(try await connection.rows(query, logger: logger, deadline: deadline, file: file, line: line).rows)
    }
}

/// The rows a ``BoundedClient`` statement returned, read as PostgresNIO's row sequences are
/// (`for try await row in rows`, `for try await value in rows.decode(Int.self)`).
public struct BoundedRows: AsyncSequence, Sendable {
    public typealias Element = PostgresRow
    public let rows: [PostgresRow]

    init(_ rows: [PostgresRow]) { self.rows = rows }

    /// Returns the rows decoded as `columns`, in order.
    public func decode<each Column: PostgresDecodable>(_ columns: (repeat each Column).Type) -> DecodedRows<(repeat each Column)> {
        DecodedRows(rows: rows) { try $0.decode(columns) }
    }

    public func makeAsyncIterator() -> DecodedRows<PostgresRow>.AsyncIterator {
        DecodedRows(rows: rows) { $0 }.makeAsyncIterator()
    }
}

/// Rows in memory, decoded one at a time as they are iterated.
public struct DecodedRows<Element>: AsyncSequence {
    let rows: [PostgresRow]
    let decodeRow: (PostgresRow) throws -> Element

    public struct AsyncIterator: AsyncIteratorProtocol {
        var remaining: ArraySlice<PostgresRow>
        let decodeRow: (PostgresRow) throws -> Element

        public mutating func next() async throws -> Element? {
            guard let row = remaining.popFirst() else { return nil }
            return try decodeRow(row)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(remaining: rows[...], decodeRow: decodeRow) }
}
