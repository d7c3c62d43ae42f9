import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The rows of a query that ran to the end, held in memory (for the small results of bookkeeping writes).
public struct CollectedRows: Sendable {
    public var rows: [PostgresRow]

    /// Returns every row decoded as `columns`.
    public func decode<each Column: PostgresDecodable>(_ columns: (repeat each Column).Type) throws -> [(repeat each Column)] {
        try rows.map { try $0.decode(columns) }
    }
}

/// A query that did not finish by its deadline; the connection it ran on has been closed.
public struct QueryDeadlineExceeded: Error, Sendable, CustomStringConvertible {
    public var description: String { "the database did not answer in time" }
}

extension PostgresConnection {
    /// Runs `query` and returns its rows, or fails once `deadline` passes.
    ///
    /// PostgresNIO can leave a query unanswered forever when the server closes the connection just as the
    /// query is written (the write reaches a pipeline that has already lost its handler, and the query's
    /// promise is never completed). Awaiting it directly would then hang its caller, and a timeout in a task
    /// group would hang too, since the group waits for the query. This waits for whichever comes first, the
    /// answer or the deadline; at the deadline it closes the connection, so a query left running cannot leave
    /// a transaction open for the connection's next user.
    public func rows(
        _ query: PostgresQuery, logger: Logger, deadline: NIODeadline, file: String = #fileID, line: Int = #line
    ) async throws -> CollectedRows {
        let answer: EventLoopFuture<PostgresQueryResult> = self.query(query, logger: logger, file: file, line: line)
        let eventLoop = answer.eventLoop
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<CollectedRows, any Error>) in
            let resumed = Mutex(false)
            let finish: @Sendable (Result<CollectedRows, any Error>) -> Bool = { result in
                let first = resumed.withLock { done -> Bool in
                    defer { done = true }
                    return !done
                }
                if first { continuation.resume(with: result) }
                return first
            }
            let timer = eventLoop.scheduleTask(deadline: deadline) {
                if finish(.failure(QueryDeadlineExceeded())) {
                    logger.debug("a query passed its deadline; closing its connection")
                    self.close().whenComplete { _ in }
                }
            }
            answer.whenComplete { result in
                timer.cancel()
                _ = finish(result.map { CollectedRows(rows: $0.rows) })
            }
        }
    }

    /// Runs `body` between `BEGIN` and `COMMIT` (rolling back when it throws), each statement bound by
    /// `deadline` as in ``rows(_:logger:deadline:file:line:)``.
    public func transaction<Result: Sendable>(
        logger: Logger, deadline: NIODeadline, _ body: () async throws -> Result
    ) async throws -> Result {
        _ = try await rows("BEGIN", logger: logger, deadline: deadline)
        let result: Result
        do {
            result = try await body()
        } catch {
            if !(error is QueryDeadlineExceeded) {
                _ = try? await rows("ROLLBACK", logger: logger, deadline: deadline)
            }
            throw error
        }
        _ = try await rows("COMMIT", logger: logger, deadline: deadline)
        return result
    }
}
