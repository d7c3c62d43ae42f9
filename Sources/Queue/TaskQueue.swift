import Database
import Logging
import Models
import PostgresNIO

/// A task a worker holds a lease on.
public struct ClaimedTask: Sendable, Hashable {
    public var id: Int64
    public var kind: TaskKind
    public var repositoryID: Int64
    public var issueNumber: Int64
    public var isPullRequest: Bool
    public var agent: String?
    public var prompt: String
    public var targetBranch: String?
    /// How many times the task has been claimed, this time included.
    public var attempt: Int
    public var maxAttempts: Int
    /// How long it waited to be claimed: from when it could first run (queued, or its retry time) to now.
    public var waited: Duration = .zero
}

/// What happened to a task whose lease ran out.
public struct ReapedTask: Sendable, Hashable {
    public var id: Int64
    /// `pending` (it will run again) or `failed` (attempts exhausted).
    public var status: String

    public init(id: Int64, status: String) {
        self.id = id
        self.status = status
    }
}

/// The task queue in PostgreSQL: claim with `FOR UPDATE SKIP LOCKED`, leases, retries, one running task per
/// issue or pull request.
///
/// Every write by a worker names the worker: a worker that lost its lease (it stalled past the expiry and
/// another claimed the task) changes nothing.
public struct TaskQueue: Sendable {
    /// Runs every statement but the batched claims and completions; those run prepared on the pool's own
    /// connections, and their combiners answer waiting workers at a deadline of their own.
    private let bounded: BoundedClient
    private let logger: Logger
    /// How long a claim holds before another worker may take the task; workers renew well before.
    public let leaseDuration: Duration

    private let claims: BatchCombiner<ClaimRequest, Handout>
    private let completions: BatchCombiner<Completion, Set<Int64>>

    /// Creates the queue; `maxBatch` bounds how many claims (or completions) one statement serves, and
    /// `claimsInFlight` how many claim statements run at once (two keep a second database core busy while
    /// the first statement's results are handed out).
    public init(
        client: PostgresClient, logger: Logger, leaseDuration: Duration = .seconds(60), maxBatch: Int = 64,
        claimsInFlight: Int = 2
    ) {
        bounded = BoundedClient(client)
        self.logger = logger
        self.leaseDuration = leaseDuration
        claims = BatchCombiner(maxBatch: maxBatch, maxInFlight: claimsInFlight) { requests in
            try await Self.claim(requests, client: client, logger: logger, leaseDuration: leaseDuration)
        }
        completions = BatchCombiner(maxBatch: maxBatch) { completions in
            try await Self.complete(completions, client: client, logger: logger)
        }
    }

    /// Claims the next runnable task for `worker`: highest priority first, then oldest, only tasks whose
    /// `run_after` has passed and whose issue or pull request has no running task. Returns `nil` when none.
    ///
    /// Workers of one process that ask at the same time are served by one statement.
    public func claim(worker: String) async throws -> ClaimedTask? {
        try await claim(worker: worker, count: 1).first
    }

    /// Claims up to `count` runnable tasks for `worker`, in queue order and at most one per issue or pull
    /// request, as ``claim(worker:)`` claims one. Returns an empty array when none is runnable.
    public func claim(worker: String, count: Int) async throws -> [ClaimedTask] {
        for _ in 0..<Self.claimRounds {
            switch try await claims.submit(ClaimRequest(worker: worker, count: max(1, count))).result {
            case .claimed(let tasks): return tasks
            case .none: return []
            case .passedOver: continue
            }
        }
        return []
    }

    /// Records `taskID` completed and claims `worker`'s next task in the same statement (shared with the
    /// other workers claiming meanwhile), so a busy worker pays one round trip per task instead of two.
    ///
    /// - Returns: whether the completion was recorded (`false`: `worker` no longer held the task), and the
    ///   next task as ``claim(worker:)`` would return it.
    public func completeAndClaim(taskID: Int64, worker: String) async throws -> (completed: Bool, next: ClaimedTask?) {
        let (completed, next) = try await completeAndClaim(taskIDs: [taskID], worker: worker, count: 1)
        return (completed.contains(taskID), next.first)
    }

    /// Records the tasks `taskIDs` completed and claims up to `count` next tasks for `worker`, in one
    /// statement (shared with the other workers claiming meanwhile).
    ///
    /// - Returns: the ids among `taskIDs` whose completion was recorded (the others `worker` no longer
    ///   held), and the next tasks as ``claim(worker:count:)`` would return them.
    public func completeAndClaim(
        taskIDs: [Int64], worker: String, count: Int
    ) async throws -> (completed: Set<Int64>, next: [ClaimedTask]) {
        let handout = try await claims.submit(ClaimRequest(worker: worker, count: max(1, count), completing: taskIDs))
        let completed = handout.completionTried ? handout.completed : try await complete(taskIDs: taskIDs, worker: worker)
        if case .claimed(let tasks) = handout.result { return (completed, tasks) }
        // In the statement's snapshot the finished tasks still ran, so a task of their threads waited: ask again.
        return (completed, try await claim(worker: worker, count: count))
    }

    /// A worker asking for up to `count` tasks, and the tasks it finished (recorded first).
    struct ClaimRequest: Sendable, Hashable {
        var worker: String
        var count = 1
        var completing: [Int64] = []
    }

    /// What one request got from a batched claim: which of the completions it carried were recorded, and
    /// its claim.
    struct Handout: Sendable, Hashable {
        /// The carried completions recorded; the others' tasks the worker no longer held (their lease ran
        /// out and they were taken back).
        var completed: Set<Int64> = []
        /// `false` when the statement failed before recording the completions: record them on their own.
        var completionTried = true
        var result: ClaimResult
    }

    /// What one worker got from a batched claim.
    enum ClaimResult: Sendable, Hashable {
        /// One or more tasks, in queue order.
        case claimed([ClaimedTask])
        /// Nothing runnable.
        case none
        /// Nothing for this worker, but the batch saw more candidates than it could hand out (tasks of one
        /// thread, or a race with another process): ask again at once.
        case passedOver
    }

    /// How often ``claim(worker:count:)`` asks again when it was passed over.
    static var claimRounds: Int { 4 }

    /// How many tasks one claim statement hands out at most, when workers ask for several each.
    static var maxSlots: Int { 128 }

    /// Records the completions `requests` carry, then claims up to `count` tasks for each requesting worker,
    /// in one statement: in queue order, at most one per issue or pull request. Returns one handout per
    /// request, in order.
    private static func claim(
        _ requests: [ClaimRequest], client: PostgresClient, logger: Logger, leaseDuration: Duration
    ) async throws -> [Handout] {
        guard !requests.isEmpty else { return [] }
        let maxSlots = Self.maxSlots
        // One slot per task asked for: the statement hands the n-th candidate to the n-th slot's worker. When
        // many workers ask for several, each gets a share of the statement's slots (one at least).
        let asked = requests.reduce(0) { $0 + $1.count }
        let share = asked > maxSlots ? max(1, maxSlots / requests.count) : Int.max
        let slots = requests.flatMap { request in repeatElement(request.worker, count: min(request.count, share)) }
        let completing = requests.flatMap { request in request.completing.map { ($0, request.worker) } }
        // A few extra candidates, so tasks of one thread queued together do not starve the workers.
        let statement = ClaimStatement(
            workers: slots, limit: slots.count + slots.count / 8 + 2, leaseSeconds: leaseDuration.inSeconds,
            completingIDs: completing.map(\.0), completingWorkers: completing.map(\.1))
        do {
            var byWorker: [String: [(slot: Int64, task: ClaimedTask)]] = [:]
            var completed = Set<Int64>()
            var candidates: Int64 = 0
            var claimedCount = 0
            for try await (id, kind, repositoryID, issueNumber, isPullRequest, agent, prompt, targetBranch, attempts, maxAttempts, waitedMS, owner, slot, seen, doneID)
                in try await client.execute(statement, logger: logger) {
                if let doneID {
                    completed.insert(doneID)
                    continue
                }
                candidates = seen ?? 0
                guard let id, let repositoryID, let issueNumber, let owner else { continue }
                claimedCount += 1
                byWorker[owner, default: []].append((slot ?? 0, ClaimedTask(
                    id: id, kind: kind.flatMap(TaskKind.init(rawValue:)) ?? .code, repositoryID: repositoryID,
                    issueNumber: issueNumber, isPullRequest: isPullRequest ?? false, agent: agent, prompt: prompt ?? "",
                    targetBranch: targetBranch, attempt: attempts ?? 1, maxAttempts: maxAttempts ?? 1,
                    waited: .milliseconds(max(waitedMS ?? 0, 0)))))
            }
            // Candidates were passed over (several of one thread, or the batch was full): there may be more.
            let more = candidates >= Int64(statement.limit) || candidates > Int64(claimedCount)
            return requests.map { request in
                let tasks = (byWorker[request.worker] ?? []).sorted { $0.slot < $1.slot }.map(\.task)
                return Handout(
                    completed: completed.intersection(request.completing),
                    result: tasks.isEmpty ? (more ? .passedOver : .none) : .claimed(tasks))
            }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            // Another process started a task of the same thread at the same moment: ask again, and that
            // thread's running task is then seen. Nothing of the statement was recorded.
            return requests.map { _ in Handout(completionTried: false, result: .passedOver) }
        }
    }

    /// Extends `worker`'s lease on `taskID`; returns `false` when the lease was lost (stop working on it).
    public func renewLease(taskID: Int64, worker: String) async throws -> Bool {
        let rows = try await bounded.query("""
            UPDATE tasks SET lease_expires_at = now() + make_interval(secs => \(leaseDuration.inSeconds))
            WHERE id = \(taskID) AND lease_owner = \(worker) AND status = 'running'
            RETURNING id
            """, logger: logger)
        return try await Self.any(rows)
    }

    /// Marks the task completed; returns `false` when `worker` no longer holds it.
    ///
    /// Completions that arrive together are written by one statement.
    @discardableResult
    public func complete(taskID: Int64, worker: String) async throws -> Bool {
        try await complete(taskIDs: [taskID], worker: worker).contains(taskID)
    }

    /// Marks the tasks completed; returns the ids whose completion was recorded (the others `worker` no
    /// longer held).
    @discardableResult
    public func complete(taskIDs: [Int64], worker: String) async throws -> Set<Int64> {
        guard !taskIDs.isEmpty else { return [] }
        return try await completions.submit(Completion(taskIDs: taskIDs, worker: worker))
    }

    /// A worker's report that it finished tasks.
    struct Completion: Sendable, Hashable {
        var taskIDs: [Int64]
        var worker: String
    }

    /// Marks the tasks completed in one statement; returns, for each report, the ids its worker still held.
    private static func complete(_ completions: [Completion], client: PostgresClient, logger: Logger) async throws -> [Set<Int64>] {
        guard !completions.isEmpty else { return [] }
        var done = Set<Int64>()
        let pairs = completions.flatMap { completion in completion.taskIDs.map { ($0, completion.worker) } }
        let statement = CompleteStatement(ids: pairs.map(\.0), workers: pairs.map(\.1))
        for try await id in try await client.execute(statement, logger: logger) { done.insert(id) }
        return completions.map { done.intersection($0.taskIDs) }
    }

    /// Records a failure: a retryable one with attempts left goes back to `pending` after `retryDelay`
    /// (the caller's backoff); any other ends `failed`. Returns the status the task ended in, or `nil` when
    /// `worker` no longer holds it.
    @discardableResult
    public func fail(
        taskID: Int64, worker: String, error message: String, retryable: Bool, retryDelay: Duration = .zero
    ) async throws -> String? {
        let rows = try await bounded.query("""
            UPDATE tasks SET
                status = CASE WHEN \(retryable) AND attempts < max_attempts THEN 'pending'::task_status
                              ELSE 'failed'::task_status END,
                run_after = now() + make_interval(secs => \(retryDelay.inSeconds)),
                completed_at = CASE WHEN \(retryable) AND attempts < max_attempts THEN NULL ELSE now() END,
                error = \(message), lease_owner = NULL, lease_expires_at = NULL
            WHERE id = \(taskID) AND lease_owner = \(worker) AND status = 'running'
            RETURNING status::text
            """, logger: logger)
        for try await status in rows.decode(String.self) { return status }
        return nil
    }

    /// Gives a task back without counting the attempt (a graceful stop before it finished, or a task a limit
    /// holds back): it may be claimed again after `delay`.
    @discardableResult
    public func release(taskID: Int64, worker: String, after delay: Duration = .zero) async throws -> Bool {
        let rows = try await bounded.query("""
            UPDATE tasks SET status = 'pending', attempts = GREATEST(attempts - 1, 0),
                             run_after = now() + make_interval(secs => \(delay.inSeconds)),
                             lease_owner = NULL, lease_expires_at = NULL
            WHERE id = \(taskID) AND lease_owner = \(worker) AND status = 'running'
            RETURNING id
            """, logger: logger)
        return try await Self.any(rows)
    }

    /// Gives back tasks `worker` claimed but did not start (it claimed ahead, and the task before them ran
    /// long), as if never claimed: the attempt is not counted, and idle workers of every process are woken.
    /// Returns how many it gave back.
    @discardableResult
    public func releaseUnstarted(taskIDs: [Int64], worker: String) async throws -> Int {
        guard !taskIDs.isEmpty else { return 0 }
        let rows = try await bounded.query("""
            WITH released AS (
                UPDATE tasks SET status = 'pending', attempts = GREATEST(attempts - 1, 0),
                                 started_at = CASE WHEN attempts <= 1 THEN NULL ELSE started_at END,
                                 lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
                WHERE id = ANY(\(taskIDs)) AND lease_owner = \(worker) AND status = 'running'
                RETURNING id
            ), notified AS (
                SELECT pg_notify(\(WorkNotifications.channel), 'task:' || string_agg(id::text, ','))
                FROM released HAVING count(*) > 0
            )
            SELECT (SELECT count(*) FROM released)::int8, (SELECT count(*) FROM notified)::int8
            """, logger: logger)
        for try await (count, _) in rows.decode((Int64, Int64).self) { return Int(count) }
        return 0
    }

    /// Takes back tasks whose lease expired (their worker died): to `pending` while attempts remain, else
    /// `failed` (`cancelled` when a cancel was asked for). Returns what it changed, so the caller can
    /// finalize the ended ones' comments.
    public func reapExpiredLeases() async throws -> [ReapedTask] {
        let rows = try await bounded.query("""
            UPDATE tasks SET
                status = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled'::task_status
                              WHEN attempts < max_attempts THEN 'pending'::task_status
                              ELSE 'failed'::task_status END,
                completed_at = CASE WHEN attempts < max_attempts AND cancel_requested_at IS NULL THEN NULL ELSE now() END,
                error = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled'
                             WHEN attempts < max_attempts THEN error
                             ELSE 'the worker running it stopped and no attempts remain' END,
                run_after = now(), lease_owner = NULL, lease_expires_at = NULL
            WHERE id IN (SELECT id FROM tasks WHERE status = 'running' AND lease_expires_at < now()
                         FOR UPDATE SKIP LOCKED)
            RETURNING id, status::text
            """, logger: logger)
        var reaped: [ReapedTask] = []
        for try await (id, status) in rows.decode((Int64, String).self) { reaped.append(ReapedTask(id: id, status: status)) }
        return reaped
    }

    /// Ends the task `cancelled` (a `/asynccode cancel`); returns `false` when `worker` no longer holds it.
    @discardableResult
    public func cancel(taskID: Int64, worker: String, reason: String) async throws -> Bool {
        let rows = try await bounded.query("""
            UPDATE tasks SET status = 'cancelled', completed_at = now(), error = \(reason),
                             lease_owner = NULL, lease_expires_at = NULL
            WHERE id = \(taskID) AND lease_owner = \(worker) AND status = 'running'
            RETURNING id
            """, logger: logger)
        return try await Self.any(rows)
    }

    /// Returns whether someone asked to cancel the task.
    public func isCancelRequested(taskID: Int64) async throws -> Bool {
        let rows = try await bounded.query("""
            SELECT cancel_requested_at IS NOT NULL OR status = 'cancelled' FROM tasks WHERE id = \(taskID)
            """, logger: logger)
        for try await requested in rows.decode(Bool.self) { return requested }
        return false
    }

    /// Takes the oldest pending task that has no progress comment yet, for `worker` to acknowledge; the
    /// task cannot be claimed (or acknowledged by another worker) for `hold`. Returns `nil` when none. An
    /// automatic fix of failed CI is not acknowledged early: it says nothing until it knows it will run.
    public func claimAcknowledgement(worker: String, hold: Duration = .seconds(30)) async throws -> Int64? {
        let rows = try await bounded.query("""
            UPDATE tasks SET ack_owner = \(worker), ack_until = now() + make_interval(secs => \(hold.inSeconds))
            WHERE id = (SELECT id FROM tasks
                        WHERE status = 'pending' AND progress_comment_id IS NULL AND ci_head_sha IS NULL AND issue_number > 0
                          AND (ack_until IS NULL OR ack_until < now())
                        ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
            RETURNING id
            """, logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        return nil
    }

    /// Gives up `worker`'s acknowledgement of `taskID` without a comment: it may be tried again after
    /// `retryAfter`, and the task may be claimed at once (its worker acknowledges it then).
    public func abandonAcknowledgement(taskID: Int64, worker: String, retryAfter: Duration) async throws {
        try await bounded.query("""
            WITH released AS (
                UPDATE tasks SET ack_owner = NULL, ack_until = now() + make_interval(secs => \(retryAfter.inSeconds))
                WHERE id = \(taskID) AND ack_owner = \(worker)
                RETURNING id
            )
            SELECT pg_notify(\(WorkNotifications.channel), 'task:' || id) FROM released
            """, logger: logger)
    }

    /// Appends a step to the task's history (`task_events`).
    public func appendEvent(taskID: Int64, step: String, detail: String = "") async throws {
        try await bounded.query("""
            INSERT INTO task_events (task_id, step, detail) VALUES (\(taskID), \(step), \(detail))
            """, logger: logger)
    }

    /// Appends a live event of `kind` (such as `task.log`) with its `data`, a JSON object, to the task's history.
    public func appendLiveEvent(taskID: Int64, kind: String, step: String, dataJSON: String) async throws {
        try await bounded.query("""
            INSERT INTO task_events (task_id, kind, step, data) VALUES (\(taskID), \(kind), \(step), \(dataJSON)::jsonb)
            """, logger: logger)
    }

    private static func any(_ rows: BoundedRows) async throws -> Bool {
        for try await _ in rows { return true }
        return false
    }
}

/// The batched claim, prepared once per connection (its plan costs more than its run). It first records
/// the completions of the workers asking (`$4`, `$5`), whose tasks therefore still count as running for
/// this claim: a task of the same thread waits for the next one.
struct ClaimStatement: PostgresPreparedStatement {
    static let sql = """
        WITH done AS (
            \(CompleteStatement.update(ids: "$4", workers: "$5"))
        ), workers AS (
            SELECT w, n FROM unnest($1::text[]) WITH ORDINALITY AS u(w, n)
        ), candidates AS (
            SELECT t.id, t.repository_id, t.issue_number, t.priority, t.created_at FROM tasks t
            WHERE t.status = 'pending' AND t.run_after <= now()
              AND (t.ack_owner IS NULL OR t.ack_until < now())
              AND NOT EXISTS (
                  SELECT 1 FROM tasks r
                  WHERE r.repository_id = t.repository_id AND r.issue_number = t.issue_number
                    AND r.status = 'running')
            ORDER BY t.priority DESC, t.created_at, t.id
            FOR UPDATE SKIP LOCKED
            LIMIT $2
        ), firsts AS (
            SELECT DISTINCT ON (repository_id, issue_number) id, priority, created_at FROM candidates
            ORDER BY repository_id, issue_number, priority DESC, created_at, id
        ), numbered AS (
            SELECT id, row_number() OVER (ORDER BY priority DESC, created_at, id) AS n FROM firsts
        ), claimed AS (
            UPDATE tasks SET
                status = 'running', attempts = tasks.attempts + 1, lease_owner = workers.w,
                lease_expires_at = now() + make_interval(secs => $3),
                started_at = COALESCE(tasks.started_at, now()), error = NULL, ack_owner = NULL, updated_at = now()
            FROM numbered JOIN workers USING (n)
            WHERE tasks.id = numbered.id
            RETURNING tasks.id, tasks.kind::text, tasks.repository_id, tasks.issue_number, tasks.is_pull_request,
                      tasks.agent, tasks.prompt, tasks.target_branch, tasks.attempts, tasks.max_attempts,
                      (extract(epoch FROM now() - GREATEST(tasks.created_at, tasks.run_after)) * 1000)::bigint AS waited,
                      tasks.lease_owner, numbered.n
        )
        SELECT c.id, c.kind, c.repository_id, c.issue_number, c.is_pull_request, c.agent, c.prompt,
               c.target_branch, c.attempts, c.max_attempts, c.waited, c.lease_owner, c.n,
               (SELECT count(*) FROM candidates), NULL::int8
        FROM (SELECT 1) AS one LEFT JOIN claimed c ON true
        UNION ALL
        SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, id FROM done
        """
    typealias Row = (Int64?, String?, Int64?, Int64?, Bool?, String?, String?, String?, Int?, Int?, Int64?, String?, Int64?, Int64?, Int64?)

    var workers: [String]
    var limit: Int
    var leaseSeconds: Double
    var completingIDs: [Int64] = []
    var completingWorkers: [String] = []

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 5)
        bindings.append(workers)
        bindings.append(limit)
        bindings.append(leaseSeconds)
        bindings.append(completingIDs)
        bindings.append(completingWorkers)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// The batched completion, prepared once per connection.
struct CompleteStatement: PostgresPreparedStatement {
    static let sql = update(ids: "$1", workers: "$2")

    /// The completion of the tasks in the array parameter `ids` still held by the matching `workers`,
    /// returning their ids; the claim statement records completions with it too.
    static func update(ids: String, workers: String) -> String {
        """
        UPDATE tasks SET status = 'completed', completed_at = now(), updated_at = now(), lease_owner = NULL,
            lease_expires_at = NULL
        FROM unnest(\(ids)::int8[], \(workers)::text[]) AS d(id, owner)
        WHERE tasks.id = d.id AND tasks.lease_owner = d.owner AND tasks.status = 'running'
        RETURNING tasks.id
        """
    }
    typealias Row = Int64

    var ids: [Int64]
    var workers: [String]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(ids)
        bindings.append(workers)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Int64.self) }
}
