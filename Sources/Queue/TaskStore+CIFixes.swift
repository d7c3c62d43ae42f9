import PostgresNIO

/// What the automatic fixes of failed CI need of the database (`tasks.ci_head_sha`,
/// `pull_requests.automatic_fix_limit_noticed_at`).
extension TaskStore {
    /// Returns how many automatic fixes of the pull request started (got past their checks and said so on
    /// GitHub), `taskID` aside.
    public func automaticFixesStarted(repositoryID: Int64, pullNumber: Int64, excluding taskID: Int64) async throws -> Int {
        let rows = try await client.query("""
            SELECT count(*) FROM tasks
            WHERE repository_id = \(repositoryID) AND issue_number = \(pullNumber) AND ci_head_sha IS NOT NULL
              AND progress_comment_id IS NOT NULL AND id <> \(taskID)
            """, logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// Claims the pull request's one "limit reached" comment: returns `true` once per pull request.
    public func claimAutomaticFixLimitNotice(repositoryID: Int64, pullNumber: Int64) async throws -> Bool {
        let rows = try await client.query("""
            UPDATE pull_requests SET automatic_fix_limit_noticed_at = now()
            WHERE id = (SELECT id FROM pull_requests WHERE repository_id = \(repositoryID) AND number = \(pullNumber)
                        ORDER BY id LIMIT 1)
              AND automatic_fix_limit_noticed_at IS NULL
            RETURNING id
            """, logger: logger)
        for try await _ in rows.decode(Int64.self) { return true }
        return false
    }

    /// Gives the claim back (the comment could not be posted).
    public func releaseAutomaticFixLimitNotice(repositoryID: Int64, pullNumber: Int64) async throws {
        try await client.query("""
            UPDATE pull_requests SET automatic_fix_limit_noticed_at = NULL
            WHERE repository_id = \(repositoryID) AND number = \(pullNumber)
            """, logger: logger)
    }
}
