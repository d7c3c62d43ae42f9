import Foundation
import Database
import Logging
import Models
import PostgresNIO

/// A control command (`cancel`, `retry`, `status`, `help`, or an unparseable one) a worker holds.
public struct ClaimedControl: Sendable {
    public var id: Int64
    public var verb: ControlVerb
    public var argument: String
    public var repositoryID: Int64
    public var repositoryGitHubID: Int64
    public var ownerLogin: String
    public var repositoryName: String
    public var installationGitHubID: Int64
    public var requesterID: Int64
    public var requesterLogin: String
    public var issueNumber: Int64
    public var isPullRequest: Bool
    public var source: String
    public var commentID: Int64?
    /// How many times it was claimed, this time included.
    public var attempt: Int
}

/// The control-command queue: claimed with `FOR UPDATE SKIP LOCKED` and a lease, like tasks.
public struct ControlStore: Sendable {
    private let client: BoundedClient
    private let logger: Logger
    /// How many claims a command gets before it is given up.
    public let maxAttempts: Int

    public init(client: PostgresClient, logger: Logger, maxAttempts: Int = 5) {
        self.client = BoundedClient(client)
        self.logger = logger
        self.maxAttempts = maxAttempts
    }

    /// Claims the oldest pending control command for `worker`; `nil` when none.
    public func claim(worker: String, lease: Duration = .seconds(60)) async throws -> ClaimedControl? {
        let rows = try await client.query("""
            WITH next AS (
                SELECT id FROM control_commands
                WHERE status = 'pending' AND run_after <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now())
                ORDER BY created_at, id FOR UPDATE SKIP LOCKED LIMIT 1
            ), claimed AS (
                UPDATE control_commands c SET lease_owner = \(worker), attempts = c.attempts + 1,
                    lease_expires_at = now() + make_interval(secs => \(lease.inSeconds))
                FROM next WHERE c.id = next.id
                RETURNING c.*
            )
            SELECT c.id, c.verb, c.argument, c.repository_id, r.github_id, r.owner_login, r.name, i.github_id,
                   c.requested_by, a.login, c.issue_number, c.is_pull_request, c.source, c.comment_id, c.attempts
            FROM claimed c
            JOIN repositories r ON r.id = c.repository_id
            JOIN installations i ON i.id = c.installation_id
            JOIN accounts a ON a.id = c.requested_by
            """, logger: logger)
        for try await row in rows {
            let c = row.makeRandomAccess()
            return ClaimedControl(
                id: try c[0].decode(Int64.self), verb: ControlVerb(rawValue: try c[1].decode(String.self)) ?? .invalid,
                argument: try c[2].decode(String.self), repositoryID: try c[3].decode(Int64.self),
                repositoryGitHubID: try c[4].decode(Int64.self), ownerLogin: try c[5].decode(String.self),
                repositoryName: try c[6].decode(String.self), installationGitHubID: try c[7].decode(Int64.self),
                requesterID: try c[8].decode(Int64.self), requesterLogin: try c[9].decode(String.self),
                issueNumber: try c[10].decode(Int64.self), isPullRequest: try c[11].decode(Bool.self),
                source: try c[12].decode(String.self), commentID: try c[13].decode(Int64?.self),
                attempt: Int(try c[14].decode(Int32.self)))
        }
        return nil
    }

    /// Ends the command: `done` or `failed`, with what was answered.
    public func finish(id: Int64, worker: String, failed: Bool, result: String) async throws {
        try await client.query("""
            UPDATE control_commands SET status = \(failed ? "failed" : "done"), result = \(result), handled_at = now(),
                                        lease_owner = NULL, lease_expires_at = NULL
            WHERE id = \(id) AND lease_owner = \(worker)
            """, logger: logger)
    }

    /// Puts the command back to run again after `delay` (a transient failure).
    public func postpone(id: Int64, worker: String, delay: Duration, error: String) async throws {
        try await client.query("""
            UPDATE control_commands SET run_after = now() + make_interval(secs => \(delay.inSeconds)), result = \(error),
                                        lease_owner = NULL, lease_expires_at = NULL
            WHERE id = \(id) AND lease_owner = \(worker)
            """, logger: logger)
    }
}
