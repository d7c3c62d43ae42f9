import Foundation
import Database
import Logging
import PostgresNIO

/// The usage limits of the `limits` section of the `ASYNCCODE_CONFIG` file; `nil` means no limit.
public struct UsageLimits: Sendable, Hashable {
    /// Tasks one person may start per rolling hour (`tasksPerRequesterPerHour`, default 20).
    public var tasksPerRequesterPerHour: Int?
    /// Tasks running at once in one repository (`runningTasksPerRepository`, default 3); more wait their turn.
    public var runningTasksPerRepository: Int?
    /// Credits one account may spend per rolling 24 hours (`creditsPerAccountPerDay`, default 1000).
    public var creditsPerAccountPerDay: Decimal?

    public init(tasksPerRequesterPerHour: Int? = 20, runningTasksPerRepository: Int? = 3, creditsPerAccountPerDay: Decimal? = 1000) {
        self.tasksPerRequesterPerHour = tasksPerRequesterPerHour
        self.runningTasksPerRepository = runningTasksPerRepository
        self.creditsPerAccountPerDay = creditsPerAccountPerDay
    }

    /// No limits at all.
    public static let none = UsageLimits(tasksPerRequesterPerHour: nil, runningTasksPerRepository: nil, creditsPerAccountPerDay: nil)
}

/// Whether a task may start now.
public enum Admission: Sendable, Hashable {
    case admitted
    /// The repository already runs `running` tasks (the limit is `limit`): the task waits for one to end.
    case repositoryBusy(running: Int, limit: Int)
    /// The requester started `limit` tasks in the last hour; enough of them have left the window for one
    /// more at `freesAt`.
    case requesterHourly(limit: Int, freesAt: Date)
}

/// Admits tasks past the usage limits, atomically: the checks and the admission happen under a lock per
/// repository and per requester, so concurrent workers never admit one task too many.
public struct UsageGate: Sendable {
    private let client: BoundedClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = BoundedClient(client)
        self.logger = logger
    }

    /// Admits the (running) task unless a limit stops it. A task admitted before (an earlier attempt) is
    /// admitted again without counting twice.
    public func admit(taskID: Int64, requesterID: Int64, repositoryID: Int64, limits: UsageLimits) async throws -> Admission {
        try await client.withTransaction(logger: logger) { connection in
            // Lock order: repository, then requester (keys in separate namespaces).
            try await connection.query("""
                SELECT pg_advisory_xact_lock(\(Int32(0x4143_5201)), \(Int32(truncatingIfNeeded: repositoryID))),
                       pg_advisory_xact_lock(\(Int32(0x4143_5202)), \(Int32(truncatingIfNeeded: requesterID)))
                """, logger: logger)
            var admittedBefore = false
            let mine = try await connection.query(
                "SELECT admitted_at IS NOT NULL FROM tasks WHERE id = \(taskID)", logger: logger)
            for try await flag in mine.decode(Bool.self) { admittedBefore = flag }
            if let limit = limits.runningTasksPerRepository {
                let rows = try await connection.query("""
                    SELECT count(*) FROM tasks
                    WHERE repository_id = \(repositoryID) AND status = 'running' AND admitted_at IS NOT NULL
                      AND id <> \(taskID)
                    """, logger: logger)
                for try await running in rows.decode(Int64.self) where running >= limit {
                    return .repositoryBusy(running: Int(running), limit: limit)
                }
            }
            if !admittedBefore, let limit = limits.tasksPerRequesterPerHour {
                // One more fits once all but `limit - 1` of the hour's admissions have left it: when the
                // (count - limit + 1)-th oldest does.
                let rows = try await connection.query("""
                    SELECT count(*), (array_agg(admitted_at ORDER BY admitted_at))[GREATEST(count(*) - \(limit) + 1, 1)::int]
                    FROM tasks
                    WHERE requested_by = \(requesterID) AND admitted_at > now() - interval '1 hour' AND id <> \(taskID)
                    """, logger: logger)
                for try await (count, leaving) in rows.decode((Int64, Date?).self) where count >= limit {
                    return .requesterHourly(limit: limit, freesAt: (leaving ?? Date()).addingTimeInterval(3600))
                }
            }
            try await connection.query("""
                UPDATE tasks SET admitted_at = COALESCE(admitted_at, now()) WHERE id = \(taskID)
                """, logger: logger)
            return .admitted
        }
    }

    /// Gives the task's admission back (it was admitted but did not start: it waits for the daily credits, or
    /// the account cannot pay for it): it no longer counts as running in its repository nor toward its
    /// requester's hourly limit.
    public func withdraw(taskID: Int64) async throws {
        try await client.query("UPDATE tasks SET admitted_at = NULL WHERE id = \(taskID)", logger: logger)
    }
}
