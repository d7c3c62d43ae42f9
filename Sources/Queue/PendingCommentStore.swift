import Database
import Foundation
import Logging
import PostgresNIO

/// A progress comment's final body that GitHub has not taken yet (`pending_comment_edits`).
public struct PendingCommentEdit: Sendable, Hashable {
    /// GitHub's id of the comment.
    public var commentID: Int64
    /// The task whose comment it is, if any.
    public var taskID: Int64?
    public var ownerLogin: String
    public var repositoryName: String
    public var repositoryGitHubID: Int64
    public var installationGitHubID: Int64
    /// The body the comment must end with.
    public var body: String
    /// Failed edits so far, the one under way not included.
    public var attempts: Int
    /// When the row was first recorded.
    public var createdAt: Date

    /// Creates an edit to record.
    public init(
        commentID: Int64, taskID: Int64?, ownerLogin: String, repositoryName: String, repositoryGitHubID: Int64,
        installationGitHubID: Int64, body: String, attempts: Int = 0, createdAt: Date = Date()
    ) {
        self.commentID = commentID
        self.taskID = taskID
        self.ownerLogin = ownerLogin
        self.repositoryName = repositoryName
        self.repositoryGitHubID = repositoryGitHubID
        self.installationGitHubID = installationGitHubID
        self.body = body
        self.attempts = attempts
        self.createdAt = createdAt
    }
}

/// The final comment bodies still to be given to GitHub: recorded before a final edit, cleared once GitHub
/// took it, claimed by repairers with a lease (`FOR UPDATE SKIP LOCKED`) so that two processes never edit
/// the same comment at once.
public struct PendingCommentStore: Sendable {
    private let client: BoundedClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = BoundedClient(client)
        self.logger = logger
    }

    /// Records `edit` (replacing an older body of the same comment), due `after` from now: the time the
    /// caller needs for its own tries, so no repairer edits the comment meanwhile.
    public func record(_ edit: PendingCommentEdit, dueAfter after: Duration) async throws {
        try await client.query("""
            INSERT INTO pending_comment_edits (comment_id, task_id, owner_login, repository_name, repository_github_id,
                                               installation_github_id, body, attempts, next_attempt_at)
            VALUES (\(edit.commentID), \(edit.taskID), \(edit.ownerLogin), \(edit.repositoryName), \(edit.repositoryGitHubID),
                    \(edit.installationGitHubID), \(edit.body), 0, now() + make_interval(secs => \(after.inSeconds)))
            ON CONFLICT (comment_id) DO UPDATE SET
                task_id = EXCLUDED.task_id, owner_login = EXCLUDED.owner_login, repository_name = EXCLUDED.repository_name,
                repository_github_id = EXCLUDED.repository_github_id,
                installation_github_id = EXCLUDED.installation_github_id, body = EXCLUDED.body, attempts = 0,
                next_attempt_at = EXCLUDED.next_attempt_at, last_error = NULL, created_at = now()
            """, logger: logger)
    }

    /// Claims up to `limit` due edits, oldest due first, moving each `lease` into the future so no other
    /// repairer takes it while this one edits. An edit of a task that has not ended (its end is still being
    /// recorded, or it was asked to run again and will record a newer body) waits.
    public func claimDue(limit: Int, lease: Duration) async throws -> [PendingCommentEdit] {
        let rows = try await client.query("""
            WITH due AS (
                SELECT p.comment_id FROM pending_comment_edits p LEFT JOIN tasks t ON t.id = p.task_id
                WHERE p.next_attempt_at <= now() AND (p.task_id IS NULL OR t.status IN ('completed', 'failed', 'cancelled'))
                ORDER BY p.next_attempt_at FOR UPDATE OF p SKIP LOCKED LIMIT \(limit)
            )
            UPDATE pending_comment_edits p SET next_attempt_at = now() + make_interval(secs => \(lease.inSeconds))
            FROM due WHERE p.comment_id = due.comment_id
            RETURNING p.comment_id, p.task_id, p.owner_login, p.repository_name, p.repository_github_id,
                      p.installation_github_id, p.body, p.attempts, p.created_at
            """, logger: logger)
        return try await Self.edits(in: rows)
    }

    /// Forgets the edit once GitHub took `body` (a newer body recorded meanwhile stays); returns whether a row went.
    @discardableResult
    public func clear(commentID: Int64, body: String) async throws -> Bool {
        let rows = try await client.query("""
            DELETE FROM pending_comment_edits WHERE comment_id = \(commentID) AND body = \(body) RETURNING comment_id
            """, logger: logger)
        return !rows.rows.isEmpty
    }

    /// Counts a failed edit of `body` and makes the next one due `after` from now.
    public func reschedule(commentID: Int64, body: String, after: Duration, error: String) async throws {
        try await client.query("""
            UPDATE pending_comment_edits SET attempts = attempts + 1, last_error = \(error),
                next_attempt_at = now() + make_interval(secs => \(after.inSeconds))
            WHERE comment_id = \(commentID) AND body = \(body)
            """, logger: logger)
    }

    /// The edits not yet taken, by comment (for status pages and tests).
    public func pending() async throws -> [PendingCommentEdit] {
        let rows = try await client.query("""
            SELECT comment_id, task_id, owner_login, repository_name, repository_github_id, installation_github_id, body,
                   attempts, created_at
            FROM pending_comment_edits ORDER BY comment_id
            """, logger: logger)
        return try await Self.edits(in: rows)
    }

    /// Reads rows of (comment_id, task_id, owner_login, repository_name, repository_github_id,
    /// installation_github_id, body, attempts, created_at).
    private static func edits(in rows: BoundedRows) async throws -> [PendingCommentEdit] {
        var edits: [PendingCommentEdit] = []
        for try await (commentID, taskID, owner, name, repositoryID, installationID, body, attempts, createdAt)
            in rows.decode((Int64, Int64?, String, String, Int64, Int64, String, Int32, Date).self) {
            edits.append(PendingCommentEdit(
                commentID: commentID, taskID: taskID, ownerLogin: owner, repositoryName: name, repositoryGitHubID: repositoryID,
                installationGitHubID: installationID, body: body, attempts: Int(attempts), createdAt: createdAt))
        }
        return edits
    }
}
