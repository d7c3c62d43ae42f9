import Database
import Foundation
import GitHub
import Logging
import PostgresNIO
import Queue

/// The API's reads of tasks, always through `user_repository_access`: a user sees the tasks of repositories
/// they may read, and nothing else exists for them.
struct APIStore: Sendable {
    let client: BoundedClient
    let logger: Logger

    static let summaryColumns = """
        t.id, t.repository_id, r.full_name, t.kind::text, t.status::text, t.agent, left(t.prompt, 200), t.issue_number,
        t.pr_number, t.pr_url, t.credits_used::text, t.created_at, t.started_at, t.completed_at
        """

    /// Returns a page of the tasks the user may see, newest first, and the cursor of the next page.
    func tasks(accountID: Int64, status: String?, repositoryID: Int64?, before cursor: Int64?, limit: Int) async throws -> ([[String: Any]], String?) {
        let rows = try await client.query("""
            SELECT \(unescaped: Self.summaryColumns)
            FROM tasks t JOIN repositories r ON r.id = t.repository_id
            JOIN user_repository_access u ON u.repository_id = t.repository_id AND u.account_id = \(accountID) AND u.access_level <> 'none'
            WHERE (\(status)::text IS NULL OR t.status::text = \(status)) AND (\(repositoryID)::int8 IS NULL OR t.repository_id = \(repositoryID))
              AND (\(cursor)::int8 IS NULL OR t.id < \(cursor))
            ORDER BY t.id DESC LIMIT \(limit + 1)
            """, logger: logger)
        var tasks: [[String: Any]] = []
        for row in rows.rows { tasks.append(try Self.summary(row)) }
        let more = tasks.count > limit
        if more { tasks.removeLast() }
        return (tasks, more ? (tasks.last?["id"] as? Int64).map(String.init) : nil)
    }

    /// Returns the task with its steps when the user may see it; `nil` otherwise (404, never 403).
    func task(id: Int64, accountID: Int64) async throws -> (task: [String: Any], repositoryID: Int64)? {
        let rows = try await client.query("""
            SELECT \(unescaped: Self.summaryColumns), a.login, t.error
            FROM tasks t JOIN repositories r ON r.id = t.repository_id JOIN accounts a ON a.id = t.requested_by
            JOIN user_repository_access u ON u.repository_id = t.repository_id AND u.account_id = \(accountID) AND u.access_level <> 'none'
            WHERE t.id = \(id)
            """, logger: logger)
        guard let row = rows.rows.first else { return nil }
        var task = try Self.summary(row)
        let columns = row.makeRandomAccess()
        task["requester"] = try columns[14].decode(String.self)
        task["error"] = try columns[15].decode(String?.self) ?? NSNull()
        let events = try await client.query("""
            SELECT step, detail, created_at FROM task_events WHERE task_id = \(id) AND kind = 'task.step' ORDER BY id LIMIT 500
            """, logger: logger)
        var steps: [[String: Any]] = []
        for try await (step, detail, at) in events.decode((String, String, Date).self) {
            steps.append(["step": step, "detail": detail, "at": Self.timestamp(at)])
        }
        task["steps"] = steps
        return (task, try columns[1].decode(Int64.self))
    }

    /// Asks for the task's thread to be cancelled as `/asynccode cancel` would be, on behalf of the user: a
    /// control command the control worker carries out (it checks the user's push access with GitHub, stops the
    /// running agent, ends the comments and says so on the thread).
    func requestCancel(taskID: Int64, accountID: Int64) async throws {
        try await client.query("""
            WITH command AS (
                INSERT INTO control_commands (repository_id, installation_id, requested_by, issue_number, is_pull_request, source,
                                              comment_id, command_index, verb, argument)
                SELECT repository_id, installation_id, \(accountID), issue_number, is_pull_request, 'api', NULL, 0, 'cancel', ''
                FROM tasks WHERE id = \(taskID)
                RETURNING id
            )
            SELECT pg_notify(\(WorkNotifications.channel), 'control:' || id) FROM command
            """, logger: logger)
    }

    /// Returns what GitHub calls the repository (owner, name, ids) for calls with its installation's token.
    func repositoryRef(id: Int64) async throws -> RepositoryRef? {
        let rows = try await client.query("""
            SELECT r.owner_login, r.name, r.github_id, i.github_id FROM repositories r JOIN installations i ON i.id = r.installation_id
            WHERE r.id = \(id)
            """, logger: logger)
        for try await (owner, name, githubID, installation) in rows.decode((String, String, Int64, Int64).self) {
            return RepositoryRef(owner: owner, name: name, id: githubID, installationID: installation)
        }
        return nil
    }

    /// Returns the repository of a task, if the task exists.
    func repositoryID(ofTask id: Int64) async throws -> Int64? {
        let rows = try await client.query("SELECT repository_id FROM tasks WHERE id = \(id)", logger: logger)
        for try await repositoryID in rows.decode(Int64.self) { return repositoryID }
        return nil
    }

    /// Returns the ids of the accounts with these logins (case-insensitive).
    func accountIDs(logins: [String]) async throws -> Set<Int64> {
        let rows = try await client.query("SELECT id FROM accounts WHERE lower(login) = ANY(\(logins.map { $0.lowercased() }))", logger: logger)
        var ids: Set<Int64> = []
        for try await id in rows.decode(Int64.self) { ids.insert(id) }
        return ids
    }

    /// Returns the bot's pull requests on repositories the user may read, newest first (at most 200).
    func pullRequests(accountID: Int64) async throws -> [[String: Any]] {
        let rows = try await client.query("""
            SELECT p.id, p.repository_id, r.full_name, p.number, p.title, p.status::text, p.url, p.task_id, p.created_at
            FROM pull_requests p JOIN repositories r ON r.id = p.repository_id
            JOIN user_repository_access u ON u.repository_id = p.repository_id AND u.account_id = \(accountID) AND u.access_level <> 'none'
            ORDER BY p.id DESC LIMIT 200
            """, logger: logger)
        var pulls: [[String: Any]] = []
        for try await (id, repositoryID, name, number, title, state, url, taskID, created)
            in rows.decode((Int64, Int64, String, Int64, String, String, String?, Int64?, Date).self) {
            pulls.append(["id": id, "repository": ["id": repositoryID, "full_name": name] as [String: Any], "number": number, "title": title,
                          "state": state, "url": url ?? NSNull(), "task_id": taskID ?? NSNull(), "created_at": Self.timestamp(created)])
        }
        return pulls
    }

    /// A task asked for through the API, validated.
    struct NewTask: Sendable {
        var repositoryID: Int64
        var prompt: String
        var kind: String
        var agent: String?
        var baseBranch: String?
        var issueNumber: Int64?
        var priority: Int32
        var budget: String?
    }

    /// Queues the task as a comment command would be, requested by the user; returns its id, or `nil` when the
    /// repository's installation takes no work. Without an issue it gets a thread of its own (`-id`).
    func insert(_ task: NewTask, accountID: Int64) async throws -> Int64? {
        let rows = try await client.query("""
            WITH next AS (SELECT nextval('tasks_id_seq') AS id), inserted AS (
                INSERT INTO tasks (id, repository_id, installation_id, requested_by, issue_number, is_pull_request, source, comment_id,
                                   command_index, kind, priority, agent, prompt, target_branch, budget, chat_messages)
                SELECT next.id, r.id, r.installation_id, \(accountID), COALESCE(\(task.issueNumber)::int8, -next.id), false, 'api', NULL, 0,
                       \(task.kind)::task_kind, \(task.priority), \(task.agent), \(task.prompt), \(task.baseBranch), \(task.budget)::numeric,
                       jsonb_build_array(jsonb_build_object('role', 'user', 'content', \(task.prompt)::text,
                                                            'author', (SELECT login FROM accounts WHERE id = \(accountID)), 'timestamp', now()))
                FROM next, repositories r JOIN installations i ON i.id = r.installation_id
                WHERE r.id = \(task.repositoryID) AND \(unescaped: Inactivity.sql(installation: "i", repository: "r")) IS NULL
                RETURNING id
            )
            SELECT id, pg_notify(\(WorkNotifications.channel), 'task:' || id)::text FROM inserted
            """, logger: logger)
        for try await (id, _) in rows.decode((Int64, String).self) { return id }
        return nil
    }

    /// Returns what the task produced: the agent's last answer, the diff stat, the patch and the files.
    func results(taskID: Int64) async throws -> [String: Any] {
        let rows = try await client.query("""
            SELECT (SELECT m->>'content' FROM jsonb_array_elements(chat_messages) m WHERE m->>'role' = 'assistant'
                    ORDER BY (m->>'timestamp') DESC NULLS LAST LIMIT 1),
                   git_diff, git_patch, changed_files::text, COALESCE(execution_metadata->'checks', '[]')::text
            FROM tasks WHERE id = \(taskID)
            """, logger: logger)
        for try await (summary, diff, patch, files, checks) in rows.decode((String?, String?, String?, String, String).self) {
            let changed = (try? JSONSerialization.jsonObject(with: Data(files.utf8)) as? [[String: Any]]) ?? []
            let checkResults = (try? JSONSerialization.jsonObject(with: Data(checks.utf8)) as? [[String: Any]]) ?? []
            return ["summary": summary ?? NSNull(), "diff_stat": diff ?? NSNull(), "patch": patch ?? NSNull(),
                    "files": changed.map { ["path": $0["path"] ?? "", "additions": $0["additions"] ?? 0, "deletions": $0["deletions"] ?? 0] },
                    "checks": checkResults]
        }
        return ["summary": NSNull(), "diff_stat": NSNull(), "patch": NSNull(), "files": [] as [Any], "checks": [] as [Any]]
    }

    static func summary(_ row: PostgresRow) throws -> [String: Any] {
        let c = row.makeRandomAccess()
        let prNumber = try c[8].decode(Int64?.self)
        return [
            "id": try c[0].decode(Int64.self),
            "repository": ["id": try c[1].decode(Int64.self), "full_name": try c[2].decode(String.self)] as [String: Any],
            "kind": try c[3].decode(String.self), "status": try c[4].decode(String.self),
            "agent": try c[5].decode(String?.self) ?? NSNull(), "prompt": try c[6].decode(String.self),
            "issue_number": try c[7].decode(Int64?.self).flatMap { $0 > 0 ? $0 : nil } ?? NSNull(),
            "pull_request": prNumber.map { ["number": $0, "url": (try? c[9].decode(String?.self)) ?? NSNull()] as [String: Any] } ?? NSNull(),
            "credits_used": try c[10].decode(String.self),
            "created_at": timestamp(try c[11].decode(Date.self)),
            "started_at": try c[12].decode(Date?.self).map(timestamp) ?? NSNull(),
            "completed_at": try c[13].decode(Date?.self).map(timestamp) ?? NSNull(),
        ]
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
