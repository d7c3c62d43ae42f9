import Database
import Logging
import PostgresNIO

/// The `task_events` table as a log read by id.
///
/// Ids are drawn in the order their transactions take a shared lock (migration 0014), not in commit order, so a
/// reader may see id 11 committed while 10 is still being written. ``horizon()`` takes that lock exclusively for
/// a moment: every id drawn before then belongs to a finished transaction, so every id up to the returned one is
/// final (there, or rolled back for good). Readers never read past a final id, and nothing is lost or repeated.
public struct EventLog: Sendable {
    /// The NOTIFY channel whose payloads are event ids.
    public static let channel = "asynccode_events"

    let client: BoundedClient
    let logger: Logger

    public init(client: BoundedClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Returns up to `limit` events with ids in `after + 1 ... through`, oldest first, of `audience` when given.
    public func read(after: Int64, through: Int64 = .max, limit: Int = 500, audience: EventAudience? = nil) async throws -> [TaskEvent] {
        let repositories = audience.map { Array($0.repositories) }
        let accounts = audience.map { Array($0.accounts) }
        let rows = try await client.query("""
            SELECT id, kind, task_id, repository_id, account_id,
                   json_build_object('id', id, 'kind', kind, 'task_id', task_id, 'repository_id', repository_id,
                                     'at', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                                     'data', CASE WHEN kind = 'task.step' THEN jsonb_build_object('step', step, 'detail', detail) || data
                                                  ELSE data END)::text
            FROM task_events
            WHERE id > \(after) AND id <= \(through)
              AND (\(audience?.taskID)::int8 IS NULL OR task_id = \(audience?.taskID))
              AND (\(repositories)::int8[] IS NULL
                   OR (kind <> 'credits.updated' AND repository_id = ANY(\(repositories)::int8[]))
                   OR (kind = 'credits.updated' AND account_id = ANY(\(accounts)::int8[])))
            ORDER BY id LIMIT \(limit)
            """, logger: logger)
        var events: [TaskEvent] = []
        for try await (id, kind, taskID, repositoryID, accountID, json) in rows.decode((Int64, String, Int64?, Int64?, Int64?, String).self) {
            events.append(TaskEvent(id: id, kind: kind, taskID: taskID, repositoryID: repositoryID, accountID: accountID, json: json))
        }
        return events
    }

    /// Returns the newest id committed (not necessarily final: a lower one may still be being written).
    public func newest() async throws -> Int64 {
        let rows = try await client.query("SELECT COALESCE(max(id), 0) FROM task_events", logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        return 0
    }

    /// Returns the highest id below which every id is final: waits (at most `lockTimeout`) for the transactions
    /// writing events to end, and reads the id sequence while no new one can start.
    public func horizon(lockTimeout: Duration = .seconds(10)) async throws -> Int64 {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT set_config('lock_timeout', \("\(lockTimeout.inMilliseconds)ms"), true)", logger: logger)
            try await connection.query("SELECT pg_advisory_xact_lock(1163413061, 0)", logger: logger)
            let rows = try await connection.query("SELECT last_value, is_called FROM task_events_id_seq", logger: logger)
            for try await (last, called) in rows.decode((Int64, Bool).self) { return called ? last : last - 1 }
            return 0
        }
    }

    /// Deletes events older than `age`, except those of tasks still pending or running, `batch` rows per
    /// statement; returns how many.
    @discardableResult
    public func prune(olderThan age: Duration, batch: Int = 10_000) async throws -> Int {
        var total = 0
        while true {
            let rows = try await client.query("""
                WITH gone AS (
                    DELETE FROM task_events WHERE id IN (
                        SELECT e.id FROM task_events e
                        WHERE e.created_at < now() - make_interval(secs => \(age.inSeconds))
                          AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = e.task_id AND t.status IN ('pending', 'running'))
                        LIMIT \(batch))
                    RETURNING 1
                )
                SELECT count(*) FROM gone
                """, logger: logger)
            var deleted = 0
            for try await count in rows.decode(Int64.self) { deleted = Int(count) }
            total += deleted
            if deleted < batch { return total }
        }
    }
}

extension Duration {
    var inMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
