import Foundation
import Database
import Logging
import PostgresNIO

/// What a finished task came to, for `task_analytics`.
public struct TaskAnalytics: Sendable, Hashable {
    public var taskID: Int64
    public var status: String
    public var agent: String?
    public var executionTime: Duration
    public var usage: TokenUsage?
    public var linesAdded: Int
    public var linesDeleted: Int
    public var filesModified: Int
    /// Failed attempts, this one included when it failed.
    public var errorCount: Int
    public var creditsUsed: Decimal

    public init(taskID: Int64, status: String, agent: String?, executionTime: Duration, usage: TokenUsage?,
                linesAdded: Int = 0, linesDeleted: Int = 0, filesModified: Int = 0, errorCount: Int = 0,
                creditsUsed: Decimal = 0) {
        self.taskID = taskID
        self.status = status
        self.agent = agent
        self.executionTime = executionTime
        self.usage = usage
        self.linesAdded = linesAdded
        self.linesDeleted = linesDeleted
        self.filesModified = filesModified
        self.errorCount = errorCount
        self.creditsUsed = creditsUsed
    }
}

/// Writes `task_analytics`: one row per finished task (a task run again later replaces its row).
public struct TaskAnalyticsStore: Sendable {
    private let client: BoundedClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = BoundedClient(client)
        self.logger = logger
    }

    /// Records `analytics`, replacing the task's earlier row; also stores the reported tokens on the task.
    public func record(_ analytics: TaskAnalytics) async throws {
        let milliseconds = analytics.executionTime.components.seconds * 1000
            + analytics.executionTime.components.attoseconds / 1_000_000_000_000_000
        let tokens = analytics.usage?.total ?? 0
        try await client.query("""
            INSERT INTO task_analytics (task_id, execution_time_ms, tokens_used, lines_of_code_generated, lines_deleted,
                                        files_modified, error_count, status, credits_used, agent)
            VALUES (\(analytics.taskID), \(milliseconds), \(tokens), \(Int32(clamping: analytics.linesAdded)),
                    \(Int32(clamping: analytics.linesDeleted)), \(Int32(clamping: analytics.filesModified)),
                    \(Int32(clamping: analytics.errorCount)), \(analytics.status)::task_status, \(analytics.creditsUsed),
                    \(analytics.agent))
            ON CONFLICT (task_id) DO UPDATE SET
                execution_time_ms = EXCLUDED.execution_time_ms, tokens_used = EXCLUDED.tokens_used,
                lines_of_code_generated = EXCLUDED.lines_of_code_generated, lines_deleted = EXCLUDED.lines_deleted,
                files_modified = EXCLUDED.files_modified, error_count = EXCLUDED.error_count, status = EXCLUDED.status,
                credits_used = EXCLUDED.credits_used, agent = EXCLUDED.agent, created_at = now()
            """, logger: logger)
        if let usage = analytics.usage {
            try await client.query("""
                UPDATE tasks SET input_tokens = \(usage.inputTokens), output_tokens = \(usage.outputTokens)
                WHERE id = \(analytics.taskID)
                """, logger: logger)
        }
    }
}
