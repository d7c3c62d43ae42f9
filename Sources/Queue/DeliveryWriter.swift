import Database
import Logging
import Models
import NIOCore
import PostgresNIO

/// The notification channel that wakes workers when tasks or control commands are queued.
public enum WorkNotifications {
    /// `LISTEN` on this channel; the payload is `task:ID,ID` or `control:ID,ID`.
    public static let channel = "asynccode_work"
}

/// An upsert that returned no row even on a second look: a refusal of this delivery, not a dead database.
struct UpsertFoundNoRow: Error, CustomStringConvertible {
    var description: String { "an upsert returned no row" }
}

/// A connection and the deadline every statement of one batch must meet.
struct Session: Sendable {
    let connection: PostgresConnection
    let deadline: NIODeadline

    /// Runs `query`; fails at the deadline (see ``PostgresConnection/rows(_:logger:deadline:file:line:)``).
    @discardableResult
    func run(_ query: PostgresQuery, logger: Logger) async throws -> CollectedRows {
        try await connection.rows(query, logger: logger, deadline: deadline)
    }
}

/// Writes a batch of delivery plans inside one open transaction.
struct DeliveryWriter: Sendable {
    let logger: Logger

    /// Writes `plans` on `connection` and returns one outcome per plan, in order. The caller opens a
    /// transaction when any plan has effects; plans without effects need only the one INSERT.
    func write(_ plans: [DeliveryPlan], on db: Session) async throws -> [DeliveryOutcome] {
        var outcomes = [DeliveryOutcome?](repeating: nil, count: plans.count)
        // A GUID twice in one batch: the first one stands, the others are duplicates.
        var firstIndex: [String: Int] = [:]
        var unique: [Int] = []
        for (index, plan) in plans.enumerated() {
            if firstIndex[plan.deliveryID] == nil {
                firstIndex[plan.deliveryID] = index
                unique.append(index)
            } else {
                outcomes[index] = .duplicate
            }
        }
        let inserted = try await insertDeliveries(unique.map { plans[$0] }, on: db)
        var queuedTasks: [Int64] = []
        var queuedControls: [Int64] = []
        for index in unique {
            let plan = plans[index]
            guard let deliveryRowID = inserted[plan.deliveryID] else {
                outcomes[index] = .duplicate
                continue
            }
            guard plan.hasEffects else {
                outcomes[index] = .ignored(reason: plan.ignoredReason ?? "nothing to do")
                continue
            }
            let outcome = try await applyEffects(of: plan, on: db)
            if outcome.label != Self.provisionalOutcome(plan) {
                try await db.run(
                    "UPDATE webhook_deliveries SET outcome = \(outcome.label) WHERE id = \(deliveryRowID)",
                    logger: logger)
            }
            if case .queued(let tasks, let controls) = outcome {
                queuedTasks += tasks
                queuedControls += controls
            }
            outcomes[index] = outcome
        }
        if !queuedTasks.isEmpty {
            try await notify("task:" + queuedTasks.map(String.init).joined(separator: ","), on: db)
        }
        if !queuedControls.isEmpty {
            try await notify("control:" + queuedControls.map(String.init).joined(separator: ","), on: db)
        }
        return outcomes.map { $0 ?? .duplicate }
    }

    static func provisionalOutcome(_ plan: DeliveryPlan) -> String {
        if !plan.tasks.isEmpty || !plan.controls.isEmpty { return "queued" }
        return plan.stateChanges.isEmpty ? "ignored" : "recorded"
    }

    /// Inserts the delivery rows in one statement; returns the row ids of those not seen before.
    private func insertDeliveries(_ plans: [DeliveryPlan], on db: Session) async throws -> [String: Int64] {
        guard !plans.isEmpty else { return [:] }
        let guids = plans.map(\.deliveryID)
        let events = plans.map(\.event)
        let actions = plans.map { $0.action ?? "" }
        let installations = plans.map { $0.installationID ?? 0 }
        let repositories = plans.map { $0.repositoryID ?? 0 }
        let outcomes = plans.map(Self.provisionalOutcome)
        let payloads = plans.map { ByteBuffer(bytes: $0.payload) }
        let rows = try await db.run("""
            INSERT INTO webhook_deliveries
                (delivery_guid, event, action, installation_github_id, repository_github_id, outcome, payload)
            SELECT g, e, NULLIF(a, ''), NULLIF(i, 0), NULLIF(r, 0), o, p
            FROM unnest(\(guids)::text[], \(events)::text[], \(actions)::text[], \(installations)::int8[],
                        \(repositories)::int8[], \(outcomes)::text[], \(payloads)::bytea[]) AS d(g, e, a, i, r, o, p)
            ON CONFLICT (delivery_guid) DO NOTHING
            RETURNING delivery_guid, id
            """, logger: logger)
        var inserted: [String: Int64] = [:]
        for (guid, id) in try rows.decode((String, Int64).self) { inserted[guid] = id }
        return inserted
    }

    private func applyEffects(of plan: DeliveryPlan, on db: Session) async throws -> DeliveryOutcome {
        var changedState = false
        for change in plan.stateChanges {
            if try await apply(change, on: db) { changedState = true }
        }
        var taskIDs: [Int64] = []
        var notOurs = 0
        // Set when the installation or repository takes no work: nothing of the command is recorded.
        var refused: Inactivity?
        for task in plan.tasks {
            if task.requiresOwnPullRequest, try await !isOwnPullRequest(task.origin, openOnly: task.ciFailure != nil, on: db) {
                notOurs += 1
                continue
            }
            let insertion = task.ciFailure == nil
                ? try await insertTask(task, deliveryID: plan.deliveryID, on: db)
                : try await insertCIFix(task, deliveryID: plan.deliveryID, on: db)
            switch insertion {
            case .inserted(let id): taskIDs.append(id)
            case .existed: break
            case .refused(let inactivity): refused = inactivity
            }
        }
        var controlIDs: [Int64] = []
        for control in plan.controls {
            switch try await insertControl(control, deliveryID: plan.deliveryID, on: db) {
            case .inserted(let id): controlIDs.append(id)
            case .existed: break
            case .refused(let inactivity): refused = inactivity
            }
        }
        if !taskIDs.isEmpty || !controlIDs.isEmpty { return .queued(taskIDs: taskIDs, controlIDs: controlIDs) }
        if notOurs > 0, notOurs == plan.tasks.count, plan.controls.isEmpty {
            if plan.tasks.contains(where: { $0.ciFailure != nil }) {
                return .ignored(reason: "CI failed on a pull request asynccode did not open, or one that is closed")
            }
            return .ignored(reason: "a review on a pull request asynccode did not open")
        }
        if let refused {
            logger.info("ignored a command: its installation or repository takes no work", metadata: [
                "github.delivery": "\(plan.deliveryID)", "reason": "\(refused.reason)",
            ])
            return .ignored(reason: refused.reason + "; nothing was started")
        }
        if !plan.tasks.isEmpty || !plan.controls.isEmpty { return .duplicate }
        if changedState { return .recorded }
        return .ignored(reason: plan.ignoredReason ?? "no matching record")
    }

    // MARK: - State changes

    /// Applies `change`; returns whether any row changed.
    private func apply(_ change: StateChange, on db: Session) async throws -> Bool {
        switch change {
        case .installationCreated(let installation, let repositories):
            let installationID = try await upsertInstallation(installation, reactivate: true, on: db)
            for repository in repositories {
                _ = try await upsertRepository(repository, installationID: installationID, activate: true, on: db)
            }
            return true
        case .repositoriesAdded(let installation, let repositories):
            let installationID = try await upsertInstallation(installation, reactivate: false, on: db)
            for repository in repositories {
                _ = try await upsertRepository(repository, installationID: installationID, activate: true, on: db)
            }
            return true
        case .installationDeleted(let githubID):
            let changed = try await count(db.run("""
                UPDATE installations SET deleted_at = now() WHERE github_id = \(githubID) RETURNING id
                """, logger: logger))
            try await db.run("""
                UPDATE repositories SET is_active = false
                WHERE installation_id = (SELECT id FROM installations WHERE github_id = \(githubID))
                """, logger: logger)
            try await stopPendingWork(installation: githubID, repositories: [], because: .uninstalled, on: db)
            return changed > 0
        case .installationSuspended(let githubID):
            let changed = try await count(db.run("""
                UPDATE installations SET suspended_at = now() WHERE github_id = \(githubID) RETURNING id
                """, logger: logger))
            try await stopPendingWork(installation: githubID, repositories: [], because: .suspended, on: db)
            return changed > 0
        case .installationUnsuspended(let githubID):
            return try await count(db.run("""
                UPDATE installations SET suspended_at = NULL WHERE github_id = \(githubID) RETURNING id
                """, logger: logger)) > 0
        case .repositoriesRemoved(_, let repositoryIDs):
            let changed = try await count(db.run("""
                UPDATE repositories SET is_active = false WHERE github_id = ANY(\(repositoryIDs)::int8[]) RETURNING id
                """, logger: logger))
            try await stopPendingWork(installation: nil, repositories: repositoryIDs, because: .removed, on: db)
            return changed > 0
        case .userAuthorizationRevoked(let githubID):
            // Whatever the user granted the App is gone: their tokens and sessions too.
            let tokens = try await count(db.run("""
                DELETE FROM user_tokens WHERE account_id IN (SELECT id FROM accounts WHERE github_id = \(githubID)) RETURNING 1
                """, logger: logger))
            let sessions = try await count(db.run("""
                DELETE FROM user_sessions WHERE account_id IN (SELECT id FROM accounts WHERE github_id = \(githubID)) RETURNING 1
                """, logger: logger))
            return tokens + sessions > 0
        case .pullRequestUpdated(let update):
            return try await count(db.run("""
                UPDATE pull_requests SET
                    status = \(update.state.rawValue)::pull_request_status,
                    title = COALESCE(\(update.title), title),
                    description = COALESCE(\(update.body), description),
                    merged_at = \(update.mergedAt)::timestamptz,
                    closed_at = \(update.closedAt)::timestamptz
                WHERE github_pr_id = \(update.githubPRID)
                RETURNING id
                """, logger: logger)) > 0
        }
    }

    private func count(_ rows: CollectedRows) -> Int { rows.rows.count }

    /// Ends the pending work of installation `installation` (GitHub's id) or of the repositories
    /// `repositories` (GitHub's ids), which can take none any more: tasks end `cancelled` with `inactivity`'s
    /// reason and their reservations refunded (as `CreditLedger.release` does), control commands end
    /// `failed`. Nothing is said on GitHub, which would refuse it.
    private func stopPendingWork(
        installation: Int64?, repositories: [Int64], because inactivity: Inactivity, on db: Session
    ) async throws {
        let reason = inactivity.reason
        let tasks = try await db.run("""
            WITH stopped AS (
                SELECT t.id, t.installation_id, t.credits_reserved FROM tasks t
                WHERE t.status = 'pending'
                  AND (t.installation_id IN (SELECT id FROM installations WHERE github_id = \(installation ?? -1))
                       OR t.repository_id IN (SELECT id FROM repositories WHERE github_id = ANY(\(repositories)::int8[])))
                FOR UPDATE OF t
            ), cancelled AS (
                UPDATE tasks SET status = 'cancelled', completed_at = now(), error = \(reason), credits_reserved = NULL,
                                 ack_owner = NULL, ack_until = NULL
                FROM stopped WHERE tasks.id = stopped.id
                RETURNING tasks.id, stopped.installation_id, stopped.credits_reserved
            ), refunded AS (
                INSERT INTO credit_transactions (account_id, task_id, type, amount, description)
                SELECT i.account_id, c.id, 'refund', c.credits_reserved, 'task ' || c.id || ' refunded: ' || \(reason)
                FROM cancelled c JOIN installations i ON i.id = c.installation_id
                WHERE c.credits_reserved > 0 AND i.account_id IS NOT NULL
            )
            SELECT id FROM cancelled ORDER BY id
            """, logger: logger)
        let controls = try await db.run("""
            UPDATE control_commands SET status = 'failed', result = \(reason), handled_at = now()
            WHERE status = 'pending' AND (lease_expires_at IS NULL OR lease_expires_at < now())
              AND (installation_id IN (SELECT id FROM installations WHERE github_id = \(installation ?? -1))
                   OR repository_id IN (SELECT id FROM repositories WHERE github_id = ANY(\(repositories)::int8[])))
            RETURNING id
            """, logger: logger)
        let taskIDs: [Int64] = try tasks.decode(Int64.self)
        let controlIDs: [Int64] = try controls.decode(Int64.self)
        guard !taskIDs.isEmpty || !controlIDs.isEmpty else { return }
        logger.notice("ended pending work that can no longer run", metadata: [
            "github.installation": "\(installation.map(String.init) ?? "")",
            "github.repositories": "\(repositories.map(String.init).joined(separator: ","))",
            "task.ids": "\(taskIDs.map(String.init).joined(separator: ","))",
            "control.ids": "\(controlIDs.map(String.init).joined(separator: ","))",
            "reason": "\(reason)",
        ])
    }

    // MARK: - Upserts (only on the rare path: commands and installation changes)

    /// Inserts or refreshes an account; writes nothing when nothing changed. Returns its row id.
    private func upsertAccount(_ account: AccountSnapshot, on db: Session) async throws -> Int64 {
        let rows = try await db.run("""
            WITH upserted AS (
                INSERT INTO accounts (github_id, login, type, avatar_url)
                VALUES (\(account.githubID), \(account.login), \(account.type), \(account.avatarURL))
                ON CONFLICT (github_id) DO UPDATE
                    SET login = EXCLUDED.login, type = EXCLUDED.type,
                        avatar_url = COALESCE(EXCLUDED.avatar_url, accounts.avatar_url)
                    WHERE (accounts.login, accounts.type) IS DISTINCT FROM (EXCLUDED.login, EXCLUDED.type)
                       OR (EXCLUDED.avatar_url IS NOT NULL AND accounts.avatar_url IS DISTINCT FROM EXCLUDED.avatar_url)
                RETURNING id
            )
            SELECT id FROM upserted
            UNION ALL SELECT id FROM accounts WHERE github_id = \(account.githubID)
            LIMIT 1
            """, logger: logger)
        return try await firstID(rows, orSelect: "SELECT id FROM accounts WHERE github_id = \(account.githubID)", on: db)
    }

    private func upsertInstallation(
        _ installation: InstallationSnapshot, reactivate: Bool, on db: Session
    ) async throws -> Int64 {
        let accountID = try await upsertAccount(installation.account, on: db)
        let rows = try await db.run("""
            INSERT INTO installations (github_id, account_id, repository_selection)
            VALUES (\(installation.githubID), \(accountID), \(installation.repositorySelection))
            ON CONFLICT (github_id) DO UPDATE
                SET account_id = EXCLUDED.account_id,
                    repository_selection = COALESCE(EXCLUDED.repository_selection, installations.repository_selection),
                    deleted_at = CASE WHEN \(reactivate) THEN NULL ELSE installations.deleted_at END
            RETURNING id
            """, logger: logger)
        return try await firstID(rows, orSelect: "SELECT id FROM installations WHERE github_id = \(installation.githubID)", on: db)
    }

    /// Returns the row id of installation `githubID`, creating a bare row when it was never recorded, and
    /// whether its paying account is known.
    private func ensureInstallation(_ githubID: Int64, on db: Session) async throws -> (id: Int64, hasAccount: Bool) {
        let rows = try await db.run("""
            WITH inserted AS (
                INSERT INTO installations (github_id) VALUES (\(githubID))
                ON CONFLICT (github_id) DO NOTHING
                RETURNING id, false AS has_account
            )
            SELECT id, has_account FROM inserted
            UNION ALL SELECT id, account_id IS NOT NULL FROM installations WHERE github_id = \(githubID)
            LIMIT 1
            """, logger: logger)
        for (id, hasAccount) in try rows.decode((Int64, Bool).self) { return (id, hasAccount) }
        // Inserted by a transaction that committed after this statement's snapshot: a new statement sees it.
        let again = try await db.run(
            "SELECT id, account_id IS NOT NULL FROM installations WHERE github_id = \(githubID)", logger: logger)
        for (id, hasAccount) in try again.decode((Int64, Bool).self) { return (id, hasAccount) }
        throw UpsertFoundNoRow()
    }

    /// Inserts or refreshes a repository; fields the event lacks keep their stored values. Returns its row id.
    /// Only `activate` (an installation event that grants the repository) makes a removed repository active
    /// again: a command from it does not (it may be a late or replayed delivery).
    private func upsertRepository(
        _ repository: RepositorySnapshot, installationID: Int64, activate: Bool, on db: Session
    ) async throws -> Int64 {
        let rows = try await db.run("""
            WITH upserted AS (
                INSERT INTO repositories (github_id, installation_id, full_name, name, owner_login, description,
                                          private, default_branch, language, html_url, clone_url, is_active)
                VALUES (\(repository.githubID), \(installationID), \(repository.fullName), \(repository.name),
                        \(repository.ownerLogin), \(repository.description), \(repository.isPrivate),
                        \(repository.defaultBranch), \(repository.language), \(repository.htmlURL),
                        \(repository.cloneURL), true)
                ON CONFLICT (github_id) DO UPDATE SET
                    installation_id = EXCLUDED.installation_id,
                    full_name = EXCLUDED.full_name,
                    name = EXCLUDED.name,
                    owner_login = EXCLUDED.owner_login,
                    description = COALESCE(EXCLUDED.description, repositories.description),
                    private = EXCLUDED.private,
                    default_branch = COALESCE(EXCLUDED.default_branch, repositories.default_branch),
                    language = COALESCE(EXCLUDED.language, repositories.language),
                    html_url = COALESCE(EXCLUDED.html_url, repositories.html_url),
                    clone_url = COALESCE(EXCLUDED.clone_url, repositories.clone_url),
                    is_active = repositories.is_active OR \(activate)
                WHERE (repositories.installation_id, repositories.full_name, repositories.private)
                          IS DISTINCT FROM (EXCLUDED.installation_id, EXCLUDED.full_name, EXCLUDED.private)
                   OR (\(activate) AND NOT repositories.is_active)
                   OR (EXCLUDED.default_branch IS NOT NULL AND repositories.default_branch IS DISTINCT FROM EXCLUDED.default_branch)
                   OR (EXCLUDED.clone_url IS NOT NULL AND repositories.clone_url IS DISTINCT FROM EXCLUDED.clone_url)
                   OR (EXCLUDED.description IS NOT NULL AND repositories.description IS DISTINCT FROM EXCLUDED.description)
                   OR (EXCLUDED.language IS NOT NULL AND repositories.language IS DISTINCT FROM EXCLUDED.language)
                   OR (EXCLUDED.html_url IS NOT NULL AND repositories.html_url IS DISTINCT FROM EXCLUDED.html_url)
                RETURNING id
            )
            SELECT id FROM upserted
            UNION ALL SELECT id FROM repositories WHERE github_id = \(repository.githubID)
            LIMIT 1
            """, logger: logger)
        return try await firstID(rows, orSelect: "SELECT id FROM repositories WHERE github_id = \(repository.githubID)", on: db)
    }

    /// Returns the id an upsert returned. When it returned none, another transaction inserted the same row
    /// after this statement's snapshot was taken (the INSERT waited for it and then did nothing, and the
    /// SELECT could not see it yet): a new statement sees it.
    private func firstID(_ rows: CollectedRows, orSelect again: PostgresQuery, on db: Session) async throws -> Int64 {
        for id in try rows.decode(Int64.self) { return id }
        for id in try await db.run(again, logger: logger).decode(Int64.self) { return id }
        throw UpsertFoundNoRow()
    }

    // MARK: - Work

    private struct Thread {
        var installationID: Int64
        var repositoryID: Int64
        var requesterID: Int64
    }

    /// Returns the rows of the origin's installation, repository and requester (`requesterID` 0 without
    /// `requester`: an automatic task's requester comes from elsewhere).
    private func thread(of origin: CommandOrigin, requester: Bool = true, on db: Session) async throws -> Thread {
        let (installationID, hasAccount) = try await ensureInstallation(origin.installationID, on: db)
        // The installation's account pays for its tasks; when no installation event recorded it, the
        // repository's owner is that account.
        if !hasAccount, let owner = origin.repository.owner, owner.type != "Bot" {
            let accountID = try await upsertAccount(owner, on: db)
            try await db.run(
                "UPDATE installations SET account_id = \(accountID) WHERE id = \(installationID) AND account_id IS NULL",
                logger: logger)
        }
        let repositoryID = try await upsertRepository(origin.repository, installationID: installationID, activate: false, on: db)
        let requesterID = requester ? try await upsertAccount(origin.requester, on: db) : 0
        return Thread(installationID: installationID, repositoryID: repositoryID, requesterID: requesterID)
    }

    /// Returns whether the origin's pull request is one the bot opened.
    private func isOwnPullRequest(_ origin: CommandOrigin, openOnly: Bool = false, on db: Session) async throws -> Bool {
        try await count(db.run("""
            SELECT 1 FROM pull_requests p JOIN repositories r ON r.id = p.repository_id
            WHERE r.github_id = \(origin.repository.githubID) AND p.number = \(origin.issueNumber)
              AND (NOT \(openOnly) OR p.status IN ('open', 'draft'))
            LIMIT 1
            """, logger: logger)) > 0
    }

    /// What inserting a task or control command came to.
    private enum Insertion {
        case inserted(Int64)
        /// The same command was recorded before (or the review's pull request is not the bot's).
        case existed
        /// The installation or repository takes no work: nothing was recorded.
        case refused(Inactivity)

        init(_ rows: CollectedRows) throws {
            self = .existed
            for (id, inactivity) in try rows.decode((Int64?, String?).self) {
                if let id {
                    self = .inserted(id)
                } else if let inactivity = inactivity.flatMap(Inactivity.init(rawValue:)) {
                    self = .refused(inactivity)
                }
            }
        }
    }

    /// Whether the thread's installation and repository take work, as SQL; checked in the insert's own
    /// statement, so refusing costs no round trip.
    private static let inactivity = Inactivity.sql(installation: "i", repository: "r")

    /// Inserts a task unless its installation or repository takes no work.
    private func insertTask(_ task: TaskRequest, deliveryID: String, on db: Session) async throws -> Insertion {
        let origin = task.origin
        let thread = try await thread(of: origin, on: db)
        let rows = try await db.run("""
            WITH state AS (
                SELECT \(unescaped: Self.inactivity) AS inactivity FROM installations i, repositories r
                WHERE i.id = \(thread.installationID) AND r.id = \(thread.repositoryID)
            ), inserted AS (
                INSERT INTO tasks (repository_id, installation_id, requested_by, issue_number, is_pull_request, source,
                                   comment_id, command_index, source_url, delivery_id, kind, priority, agent, prompt,
                                   target_branch, budget, chat_messages)
                SELECT \(thread.repositoryID), \(thread.installationID), \(thread.requesterID), \(origin.issueNumber),
                       \(origin.isPullRequest), \(origin.source.rawValue), \(origin.commentID), \(origin.commandIndex),
                       \(task.sourceURL), \(deliveryID), \(task.kind.rawValue)::task_kind, \(task.priority.rank),
                       \(task.agent), \(task.prompt), \(task.baseBranch), \(task.budget)::numeric,
                       jsonb_build_array(jsonb_build_object('role', 'user', 'content', \(task.prompt)::text,
                                                            'author', \(origin.requester.login)::text,
                                                            'timestamp', now()))
                WHERE NOT EXISTS (SELECT 1 FROM state WHERE inactivity IS NOT NULL)
                  AND (NOT \(task.requiresOwnPullRequest) OR EXISTS (
                    SELECT 1 FROM pull_requests WHERE repository_id = \(thread.repositoryID) AND number = \(origin.issueNumber)))
                ON CONFLICT ON CONSTRAINT tasks_one_per_command DO NOTHING
                RETURNING id
            )
            SELECT (SELECT id FROM inserted), (SELECT inactivity FROM state)
            """, logger: logger)
        return try Insertion(rows)
    }

    /// Inserts the automatic fix of a failed CI run: on behalf of whoever asked for the pull request (the
    /// requester of the task that opened it), only while the pull request is open, and once per head commit.
    private func insertCIFix(_ task: TaskRequest, deliveryID: String, on db: Session) async throws -> Insertion {
        guard let failure = task.ciFailure else { return .existed }
        let origin = task.origin
        let thread = try await thread(of: origin, requester: false, on: db)
        let rows = try await db.run("""
            WITH state AS (
                SELECT \(unescaped: Self.inactivity) AS inactivity FROM installations i, repositories r
                WHERE i.id = \(thread.installationID) AND r.id = \(thread.repositoryID)
            ), pull AS (
                SELECT t.requested_by, a.login FROM pull_requests p
                JOIN tasks t ON t.id = p.task_id JOIN accounts a ON a.id = t.requested_by
                WHERE p.repository_id = \(thread.repositoryID) AND p.number = \(origin.issueNumber)
                  AND p.status IN ('open', 'draft')
                ORDER BY p.id LIMIT 1
            ), inserted AS (
                INSERT INTO tasks (repository_id, installation_id, requested_by, issue_number, is_pull_request, source,
                                   comment_id, command_index, source_url, delivery_id, kind, priority, prompt, ci_head_sha,
                                   chat_messages)
                SELECT \(thread.repositoryID), \(thread.installationID), pull.requested_by, \(origin.issueNumber), true,
                       \(origin.source.rawValue), NULL, 0, \(task.sourceURL), \(deliveryID), \(task.kind.rawValue)::task_kind,
                       \(task.priority.rank), \(task.prompt), \(failure.headSHA),
                       jsonb_build_array(jsonb_build_object('role', 'user', 'content', \(task.prompt)::text,
                                                            'author', 'asynccode for ' || pull.login, 'timestamp', now()))
                FROM pull
                WHERE NOT EXISTS (SELECT 1 FROM state WHERE inactivity IS NOT NULL)
                ON CONFLICT DO NOTHING
                RETURNING id
            )
            SELECT (SELECT id FROM inserted), (SELECT inactivity FROM state)
            """, logger: logger)
        return try Insertion(rows)
    }

    /// Inserts a control command unless its installation or repository takes no work.
    private func insertControl(_ control: ControlRequest, deliveryID: String, on db: Session) async throws -> Insertion {
        let origin = control.origin
        let thread = try await thread(of: origin, on: db)
        let rows = try await db.run("""
            WITH state AS (
                SELECT \(unescaped: Self.inactivity) AS inactivity FROM installations i, repositories r
                WHERE i.id = \(thread.installationID) AND r.id = \(thread.repositoryID)
            ), inserted AS (
                INSERT INTO control_commands (repository_id, installation_id, requested_by, issue_number, is_pull_request,
                                              source, comment_id, command_index, verb, argument, delivery_id)
                SELECT \(thread.repositoryID), \(thread.installationID), \(thread.requesterID), \(origin.issueNumber),
                       \(origin.isPullRequest), \(origin.source.rawValue), \(origin.commentID), \(origin.commandIndex),
                       \(control.verb.rawValue), \(control.argument), \(deliveryID)
                WHERE NOT EXISTS (SELECT 1 FROM state WHERE inactivity IS NOT NULL)
                ON CONFLICT ON CONSTRAINT control_commands_one_per_command DO NOTHING
                RETURNING id
            )
            SELECT (SELECT id FROM inserted), (SELECT inactivity FROM state)
            """, logger: logger)
        return try Insertion(rows)
    }

    private func notify(_ payload: String, on db: Session) async throws {
        try await db.run("SELECT pg_notify(\(WorkNotifications.channel), \(payload))", logger: logger)
    }
}
