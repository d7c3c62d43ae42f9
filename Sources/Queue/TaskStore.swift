import Foundation
import Database
import Logging
import Models
import PostgresNIO

/// Everything the executor knows about one task: the task row with its repository, installation and
/// requester.
public struct TaskRecord: Sendable {
    public var id: Int64
    public var kind: TaskKind
    public var status: String
    public var repositoryID: Int64
    public var repositoryGitHubID: Int64
    public var ownerLogin: String
    public var repositoryName: String
    public var cloneURL: String?
    public var defaultBranch: String?
    public var htmlURL: String?
    public var installationGitHubID: Int64
    public var requesterID: Int64
    public var requesterGitHubID: Int64
    public var requesterLogin: String
    public var issueNumber: Int64
    public var isPullRequest: Bool
    public var source: String
    public var commentID: Int64?
    public var sourceURL: String?
    public var agent: String?
    public var prompt: String
    public var targetBranch: String?
    public var prBranch: String?
    public var prNumber: Int64?
    public var prURL: String?
    public var progressCommentID: Int64?
    /// `tasks.chat_messages` as JSON text.
    public var chatMessages: String
    public var attempts: Int
    public var maxAttempts: Int
    public var error: String?
    public var createdAt: Date
    /// The `--budget` cap in credits.
    public var budget: Decimal?
    /// Why the task's installation or repository takes no work any more; `nil` while it does.
    public var inactivity: Inactivity?
    /// For an automatic fix of failed CI: the commit CI failed on.
    public var ciHeadSHA: String? = nil

    /// Whether the task belongs to an issue or pull request; a task started through the API without one has
    /// a negative `issueNumber` (minus its id) and says nothing on GitHub until it opens a pull request.
    public var hasIssue: Bool { issueNumber > 0 }
}

/// A line of `/asynccode status`: one task of a thread.
public struct ThreadTask: Sendable, Hashable {
    public var id: Int64
    public var kind: String
    public var status: String
    public var agent: String?
    public var prURL: String?
    public var error: String?
    public var createdAt: Date
    public var progressCommentID: Int64?
}

/// A message of a task's conversation (`tasks.chat_messages`).
public struct ChatMessage: Sendable, Hashable, Codable {
    public var role: String
    public var content: String
    public var author: String?

    public init(role: String, content: String, author: String?) {
        self.role = role
        self.content = content
        self.author = author
    }
}

/// What the executor records of a commit.
public struct CommitRecord: Sendable {
    public var hash: String
    public var branch: String
    /// `git diff --stat`.
    public var diffStat: String
    public var patch: String
    /// JSON array of `{path, additions, deletions}`.
    public var changedFilesJSON: String

    public init(hash: String, branch: String, diffStat: String, patch: String, changedFilesJSON: String) {
        self.hash = hash
        self.branch = branch
        self.diffStat = diffStat
        self.patch = patch
        self.changedFilesJSON = changedFilesJSON
    }
}

/// The executor's reads and writes of tasks besides the queue's own: details, progress comment, results,
/// pull requests, the permission cache, and the thread operations behind `cancel`, `retry` and `status`.
public struct TaskStore: Sendable {
    let client: BoundedClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = BoundedClient(client)
        self.logger = logger
    }

    /// Returns the task with its repository, installation and requester, or `nil` when there is no such task.
    public func record(taskID: Int64) async throws -> TaskRecord? {
        let rows = try await client.query("""
            SELECT t.id, t.kind::text, t.status::text, t.repository_id, r.github_id, r.owner_login, r.name, r.clone_url,
                   r.default_branch, r.html_url, i.github_id, t.requested_by, a.github_id, a.login, t.issue_number,
                   t.is_pull_request, t.source, t.comment_id, t.source_url, t.agent, t.prompt, t.target_branch,
                   t.pr_branch, t.pr_number, t.pr_url, t.progress_comment_id, t.chat_messages::text, t.attempts,
                   t.max_attempts, t.error, t.created_at, t.budget,
                   \(unescaped: Inactivity.sql(installation: "i", repository: "r")), t.ci_head_sha
            FROM tasks t
            JOIN repositories r ON r.id = t.repository_id
            JOIN installations i ON i.id = t.installation_id
            JOIN accounts a ON a.id = t.requested_by
            WHERE t.id = \(taskID)
            """, logger: logger)
        for try await row in rows {
            let c = row.makeRandomAccess()
            return TaskRecord(
                id: try c[0].decode(Int64.self), kind: TaskKind(rawValue: try c[1].decode(String.self)) ?? .code,
                status: try c[2].decode(String.self), repositoryID: try c[3].decode(Int64.self),
                repositoryGitHubID: try c[4].decode(Int64.self), ownerLogin: try c[5].decode(String.self),
                repositoryName: try c[6].decode(String.self), cloneURL: try c[7].decode(String?.self),
                defaultBranch: try c[8].decode(String?.self), htmlURL: try c[9].decode(String?.self),
                installationGitHubID: try c[10].decode(Int64.self), requesterID: try c[11].decode(Int64.self),
                requesterGitHubID: try c[12].decode(Int64.self), requesterLogin: try c[13].decode(String.self),
                issueNumber: try c[14].decode(Int64.self), isPullRequest: try c[15].decode(Bool.self),
                source: try c[16].decode(String.self), commentID: try c[17].decode(Int64?.self),
                sourceURL: try c[18].decode(String?.self), agent: try c[19].decode(String?.self),
                prompt: try c[20].decode(String.self), targetBranch: try c[21].decode(String?.self),
                prBranch: try c[22].decode(String?.self), prNumber: try c[23].decode(Int64?.self),
                prURL: try c[24].decode(String?.self), progressCommentID: try c[25].decode(Int64?.self),
                chatMessages: try c[26].decode(String.self), attempts: Int(try c[27].decode(Int32.self)),
                maxAttempts: Int(try c[28].decode(Int32.self)), error: try c[29].decode(String?.self),
                createdAt: try c[30].decode(Date.self), budget: try c[31].decode(Decimal?.self),
                inactivity: try c[32].decode(String?.self).flatMap(Inactivity.init(rawValue:)),
                ciHeadSHA: try c[33].decode(String?.self))
        }
        return nil
    }

    /// Records the task's progress comment; returns the task's status then (a task cancelled while it was
    /// being acknowledged needs its comment finalized by the caller).
    public func saveProgressComment(taskID: Int64, commentID: Int64) async throws -> String? {
        // The task may have been passed over by a claim while it was held: wake the workers.
        let rows = try await client.query("""
            WITH saved AS (
                UPDATE tasks SET progress_comment_id = \(commentID), ack_owner = NULL, ack_until = NULL
                WHERE id = \(taskID) AND progress_comment_id IS NULL
                RETURNING status::text
            )
            SELECT status, pg_notify(\(WorkNotifications.channel), \("task:\(taskID)"))::text FROM saved
            """, logger: logger)
        for try await (status, _) in rows.decode((String, String).self) { return status }
        return nil
    }

    /// Returns how many tasks of the thread are ahead of `taskID` (running or pending and older).
    public func placeInLine(taskID: Int64) async throws -> Int {
        let rows = try await client.query("""
            SELECT count(*) FROM tasks o JOIN tasks t ON t.id = \(taskID)
            WHERE o.repository_id = t.repository_id AND o.issue_number = t.issue_number AND o.id <> t.id
              AND (o.status = 'running'
                   OR (o.status = 'pending' AND (o.priority > t.priority
                       OR (o.priority = t.priority AND (o.created_at, o.id) < (t.created_at, t.id)))))
            """, logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// Sets the task's branch unless it has one; returns the branch the task keeps.
    public func assignBranch(taskID: Int64, branch: String) async throws -> String {
        let rows = try await client.query("""
            UPDATE tasks SET pr_branch = COALESCE(pr_branch, \(branch)) WHERE id = \(taskID) RETURNING pr_branch
            """, logger: logger)
        for try await kept in rows.decode(String.self) { return kept }
        return branch
    }

    /// Records the agent chosen for the task (the requested one, or the default), so `status` and the
    /// analytics name the agent that ran.
    public func recordAgent(taskID: Int64, agent: String) async throws {
        try await client.query("""
            UPDATE tasks SET agent = \(agent) WHERE id = \(taskID) AND agent IS DISTINCT FROM \(agent)
            """, logger: logger)
    }

    /// Returns whether another task of the repository already uses `branch` for its own pull request.
    public func isBranchTaken(repositoryID: Int64, branch: String, exceptTaskID: Int64) async throws -> Bool {
        let rows = try await client.query("""
            SELECT 1 FROM tasks WHERE repository_id = \(repositoryID) AND pr_branch = \(branch) AND id <> \(exceptTaskID)
              AND is_pull_request = false LIMIT 1
            """, logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// Returns the access level cached for the account on the repository if checked within `maxAge`.
    public func cachedAccess(accountID: Int64, repositoryID: Int64, maxAge: Duration) async throws -> String? {
        let rows = try await client.query("""
            SELECT access_level::text FROM user_repository_access
            WHERE account_id = \(accountID) AND repository_id = \(repositoryID)
              AND checked_at > now() - make_interval(secs => \(maxAge.inSeconds))
            """, logger: logger)
        for try await level in rows.decode(String.self) { return level }
        return nil
    }

    /// Caches the account's access level on the repository (one of `access_level`'s values).
    public func saveAccess(accountID: Int64, repositoryID: Int64, level: String) async throws {
        try await client.query("""
            INSERT INTO user_repository_access (account_id, repository_id, access_level, checked_at)
            VALUES (\(accountID), \(repositoryID), \(level)::access_level, now())
            ON CONFLICT (account_id, repository_id)
            DO UPDATE SET access_level = EXCLUDED.access_level, checked_at = now()
            """, logger: logger)
    }

    /// Records the commit the task pushed.
    public func recordCommit(taskID: Int64, commit: CommitRecord) async throws {
        try await client.query("""
            UPDATE tasks SET commit_hash = \(commit.hash), pr_branch = \(commit.branch), git_diff = \(commit.diffStat),
                             git_patch = \(commit.patch), changed_files = \(commit.changedFilesJSON)::jsonb
            WHERE id = \(taskID)
            """, logger: logger)
    }

    /// Records the pull request the task opened or updated, in `tasks` and `pull_requests`.
    public func recordPullRequest(
        taskID: Int64, repositoryID: Int64, githubID: Int64, number: Int64, title: String, body: String?,
        sourceBranch: String, targetBranch: String, url: String?
    ) async throws {
        try await client.query("""
            UPDATE tasks SET pr_number = \(number), pr_url = \(url) WHERE id = \(taskID)
            """, logger: logger)
        try await client.query("""
            INSERT INTO pull_requests (task_id, repository_id, github_pr_id, number, title, description, source_branch,
                                       target_branch, url)
            VALUES (\(taskID), \(repositoryID), \(githubID), \(number), \(title), \(body), \(sourceBranch),
                    \(targetBranch), \(url))
            ON CONFLICT (github_pr_id) DO UPDATE SET title = EXCLUDED.title, description = EXCLUDED.description,
                updated_at = now()
            """, logger: logger)
    }

    /// Links the task to the pull request it pushed to (a follow-up on an existing pull request).
    public func recordPullRequestLink(taskID: Int64, number: Int64, url: String?) async throws {
        try await client.query("UPDATE tasks SET pr_number = \(number), pr_url = \(url) WHERE id = \(taskID)", logger: logger)
    }

    /// Appends `message` to the task's conversation.
    public func appendChatMessage(taskID: Int64, _ message: ChatMessage) async throws {
        try await client.query("""
            UPDATE tasks SET chat_messages = chat_messages || jsonb_build_array(jsonb_build_object(
                'role', \(message.role)::text, 'content', \(message.content)::text, 'author', \(message.author)::text,
                'timestamp', now()))
            WHERE id = \(taskID)
            """, logger: logger)
    }

    /// Returns the conversation of the thread before `taskID`: every earlier task's messages, oldest first,
    /// and for a pull request the messages of the task that opened it.
    public func conversation(before taskID: Int64, limit: Int = 40) async throws -> [ChatMessage] {
        let rows = try await client.query("""
            WITH me AS (SELECT repository_id, issue_number, is_pull_request, created_at, id FROM tasks WHERE id = \(taskID)),
            related AS (
                SELECT t.id, t.chat_messages FROM tasks t, me
                WHERE t.repository_id = me.repository_id AND t.issue_number = me.issue_number AND t.id < me.id
                UNION
                SELECT t.id, t.chat_messages FROM tasks t, me
                WHERE me.is_pull_request AND t.id IN (
                    SELECT p.task_id FROM pull_requests p
                    WHERE p.repository_id = me.repository_id AND p.number = me.issue_number AND p.task_id IS NOT NULL)
            )
            SELECT m->>'role', m->>'content', m->>'author'
            FROM related, jsonb_array_elements(related.chat_messages) m
            ORDER BY related.id
            """, logger: logger)
        var messages: [ChatMessage] = []
        for try await (role, content, author) in rows.decode((String?, String?, String?).self) {
            messages.append(ChatMessage(role: role ?? "user", content: content ?? "", author: author))
        }
        return Array(messages.suffix(limit))
    }

    /// Records a task's result (the agent's summary or answer, its exit code and output tail).
    public func recordResult(taskID: Int64, kind: String, content: String, exitCode: Int?, outputTail: String?) async throws {
        let code = exitCode.map { Int32(clamping: $0) }
        try await client.query("""
            INSERT INTO task_results (task_id, kind, content, exit_code, output_tail)
            VALUES (\(taskID), \(kind), \(content), \(code), \(outputTail))
            """, logger: logger)
    }

    /// Merges `metadata` (JSON object text) into `tasks.execution_metadata`.
    public func mergeExecutionMetadata(taskID: Int64, json: String) async throws {
        try await client.query("""
            UPDATE tasks SET execution_metadata = execution_metadata || \(json)::jsonb WHERE id = \(taskID)
            """, logger: logger)
    }

    /// Returns the thread's tasks, oldest first.
    public func threadTasks(repositoryID: Int64, issueNumber: Int64, limit: Int = 30) async throws -> [ThreadTask] {
        let rows = try await client.query("""
            SELECT id, kind::text, status::text, agent, pr_url, error, created_at, progress_comment_id FROM (
                SELECT * FROM tasks WHERE repository_id = \(repositoryID) AND issue_number = \(issueNumber)
                ORDER BY created_at DESC, id DESC LIMIT \(limit)) recent
            ORDER BY created_at, id
            """, logger: logger)
        return try await Self.threadTasks(from: rows)
    }

    /// Cancels the thread's pending tasks at once and asks its running ones to stop. Returns the cancelled
    /// pending tasks (their comments need finalizing) and the running ones asked to stop.
    public func cancelThread(
        repositoryID: Int64, issueNumber: Int64, reason: String
    ) async throws -> (cancelled: [ThreadTask], stopping: [Int64]) {
        let pending = try await client.query("""
            UPDATE tasks SET status = 'cancelled', completed_at = now(), error = \(reason), cancel_requested_at = now(),
                             ack_owner = NULL
            WHERE repository_id = \(repositoryID) AND issue_number = \(issueNumber) AND status = 'pending'
            RETURNING id, kind::text, status::text, agent, pr_url, error, created_at, progress_comment_id
            """, logger: logger)
        let cancelled = try await Self.threadTasks(from: pending)
        let running = try await client.query("""
            UPDATE tasks SET cancel_requested_at = COALESCE(cancel_requested_at, now())
            WHERE repository_id = \(repositoryID) AND issue_number = \(issueNumber) AND status = 'running'
            RETURNING id
            """, logger: logger)
        var stopping: [Int64] = []
        for try await id in running.decode(Int64.self) { stopping.append(id) }
        return (cancelled.sorted { $0.id < $1.id }, stopping.sorted())
    }

    /// Decodes rows of `id, kind, status, agent, pr_url, error, created_at, progress_comment_id`.
    private static func threadTasks(from rows: BoundedRows) async throws -> [ThreadTask] {
        var tasks: [ThreadTask] = []
        for try await (id, kind, status, agent, prURL, error, createdAt, commentID)
            in rows.decode((Int64, String, String, String?, String?, String?, Date, Int64?).self) {
            tasks.append(ThreadTask(
                id: id, kind: kind, status: status, agent: agent, prURL: prURL, error: error, createdAt: createdAt,
                progressCommentID: commentID))
        }
        return tasks
    }

    /// Queues the thread's most recent failed or cancelled task again with fresh attempts; returns its id,
    /// or `nil` when there is none.
    public func retryLast(repositoryID: Int64, issueNumber: Int64) async throws -> Int64? {
        let rows = try await client.query("""
            UPDATE tasks SET status = 'pending', attempts = 0, run_after = now(), error = NULL, completed_at = NULL,
                             cancel_requested_at = NULL, lease_owner = NULL, lease_expires_at = NULL
            WHERE id = (SELECT id FROM tasks
                        WHERE repository_id = \(repositoryID) AND issue_number = \(issueNumber)
                          AND status IN ('failed', 'cancelled')
                        ORDER BY created_at DESC, id DESC LIMIT 1 FOR UPDATE)
            RETURNING id
            """, logger: logger)
        for try await id in rows.decode(Int64.self) {
            try await client.query("SELECT pg_notify(\(WorkNotifications.channel), \("task:\(id)"))", logger: logger)
            return id
        }
        return nil
    }
}

extension TaskStore {
    /// Returns `.github/asynccode.yml` as cached for the repository at `commit`: `nil` when not cached,
    /// `.some(nil)` when the commit has no such file.
    public func cachedRepositoryConfig(repositoryID: Int64, commit: String) async throws -> String?? {
        let rows = try await client.query("""
            SELECT content FROM repository_configs WHERE repository_id = \(repositoryID) AND commit_sha = \(commit)
            """, logger: logger)
        for try await content in rows.decode(String?.self) { return .some(content) }
        return nil
    }

    /// Caches the file's text at `commit` (`nil`: no file there).
    public func saveRepositoryConfig(repositoryID: Int64, commit: String, content: String?) async throws {
        try await client.query("""
            INSERT INTO repository_configs (repository_id, commit_sha, content) VALUES (\(repositoryID), \(commit), \(content))
            ON CONFLICT (repository_id, commit_sha) DO NOTHING
            """, logger: logger)
    }

    /// Returns `true` the first time it is asked for the thread and commit: the invalid-file comment is
    /// posted once per thread and commit.
    public func claimConfigWarning(repositoryID: Int64, commit: String, issueNumber: Int64) async throws -> Bool {
        let rows = try await client.query("""
            INSERT INTO repository_config_warnings (repository_id, commit_sha, issue_number)
            VALUES (\(repositoryID), \(commit), \(issueNumber))
            ON CONFLICT DO NOTHING RETURNING 1
            """, logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// Gives the claim back (the comment could not be posted).
    public func releaseConfigWarning(repositoryID: Int64, commit: String, issueNumber: Int64) async throws {
        try await client.query("""
            DELETE FROM repository_config_warnings
            WHERE repository_id = \(repositoryID) AND commit_sha = \(commit) AND issue_number = \(issueNumber)
            """, logger: logger)
    }

    /// Queues a task for a label added to an issue (`source = label`); returns its id, or `nil` when the
    /// label command already made one.
    public func insertLabelTask(controlID: Int64, sourceURL: String?) async throws -> Int64? {
        let rows = try await client.query("""
            WITH made AS (
                INSERT INTO tasks (repository_id, installation_id, requested_by, issue_number, is_pull_request, source,
                                   comment_id, command_index, source_url, delivery_id, kind, priority, prompt, chat_messages)
                SELECT c.repository_id, c.installation_id, c.requested_by, c.issue_number, c.is_pull_request, 'label',
                       c.id, 0, \(sourceURL), c.delivery_id, 'code', 2, '',
                       jsonb_build_array(jsonb_build_object('role', 'user', 'content', '', 'author', a.login,
                                                            'timestamp', now()))
                FROM control_commands c JOIN accounts a ON a.id = c.requested_by
                WHERE c.id = \(controlID)
                ON CONFLICT ON CONSTRAINT tasks_one_per_command DO NOTHING
                RETURNING id
            )
            SELECT id, pg_notify(\(WorkNotifications.channel), 'task:' || id)::text FROM made
            """, logger: logger)
        for try await (id, _) in rows.decode((Int64, String).self) { return id }
        return nil
    }
}

extension TaskStore {
    /// GitHub's ids of the repositories tasks may still run on: active, in an installation not deleted (the
    /// repository cache keeps mirrors of these only).
    public func activeRepositoryIDs() async throws -> Set<Int64> {
        let rows = try await client.query("""
            SELECT r.github_id FROM repositories r JOIN installations i ON i.id = r.installation_id
            WHERE r.is_active AND i.deleted_at IS NULL
            """, logger: logger)
        var ids: Set<Int64> = []
        for try await id in rows.decode(Int64.self) { ids.insert(id) }
        return ids
    }
}
