import Logging
import Metrics
import ServiceLifecycle

/// What a worker does with a claimed task; the executor implements it.
public protocol TaskHandling: Sendable {
    /// Runs `task` and says how it ended. Cancellation means the worker is stopping: return promptly.
    func handle(_ task: ClaimedTask) async -> TaskOutcome

    /// Whether the worker should hand new pending tasks to ``acknowledge(taskID:worker:)``.
    var acknowledgesTasks: Bool { get }

    /// Acknowledges a pending task the worker holds for that (a reaction and the progress comment), so the
    /// requester hears back at once, also while the task waits its turn. Ends the hold either way
    /// (`TaskQueue.abandonAcknowledgement` or by recording the comment).
    func acknowledge(taskID: Int64, worker: String) async

    /// Brings a task that ended without its worker (the lease ran out) to its final state on GitHub.
    func finalizeAbandoned(_ task: ReapedTask) async
}

extension TaskHandling {
    public var acknowledgesTasks: Bool { false }
    public func acknowledge(taskID: Int64, worker: String) async {}
    public func finalizeAbandoned(_ task: ReapedTask) async {}
}

/// How a task run ended.
public enum TaskOutcome: Sendable, Hashable {
    case completed
    /// A failure; a retryable one runs again after `retryAfter` while attempts remain.
    case failed(reason: String, retryable: Bool, retryAfter: Duration)
    /// Stopped before it finished because the worker is shutting down: another worker takes it.
    case interrupted
    /// Stopped because someone asked (`/asynccode cancel`).
    case cancelled(reason: String)
    /// Not started because a limit holds it back (its repository runs its share of tasks): back to the queue
    /// after `retryAfter`, without counting the attempt.
    case deferred(retryAfter: Duration)
}

/// How far a worker claims ahead of the task it runs, when tasks turn out quick.
///
/// A worker claims one task at a time until a task finishes within ``quickTask``; each quick task doubles
/// how many the next claim takes, up to ``maxTasks``, and the completions of the tasks it ran are recorded in
/// that claim's statement. So a run of quick tasks (ones a limit defers, or cancelled before they started)
/// costs one statement per batch instead of one per task. Tasks claimed ahead are never held long: once the task before them runs
/// past ``quickTask``, or they have waited ``maxHold``, they go back to the queue unstarted (their attempt not
/// counted, idle workers woken), and the worker claims one at a time again. An agent task that runs for
/// minutes therefore holds back nothing but the tasks claimed with it, for ``quickTask`` at most.
public struct RunAhead: Sendable, Hashable {
    /// The most tasks one claim takes; 1 turns claiming ahead off.
    public var maxTasks: Int
    /// A task that runs longer ends claiming ahead: the tasks claimed behind it go back to the queue.
    public var quickTask: Duration
    /// How long a task claimed ahead may wait in the worker before it goes back to the queue.
    public var maxHold: Duration

    /// Creates a policy; see the properties.
    public init(maxTasks: Int, quickTask: Duration = .milliseconds(20), maxHold: Duration = .milliseconds(200)) {
        self.maxTasks = max(1, maxTasks)
        self.quickTask = quickTask
        self.maxHold = maxHold
    }

    /// Up to 32 tasks per claim, for tasks that finish within 20 ms, held 200 ms at most.
    public static let standard = RunAhead(maxTasks: 32)
}

/// A worker: claims tasks (one at a time, or a few while they turn out quick: ``RunAhead``), renews its
/// lease while the handler runs, and records the outcome.
///
/// On graceful shutdown it stops claiming, gives a running task `gracePeriod` to finish, then cancels it
/// and releases it for another worker: a clean stop leaves nothing `running`.
public struct TaskWorker<Handler: TaskHandling>: Service, CustomStringConvertible {
    public let name: String
    private let queue: TaskQueue
    private let signal: WorkSignal
    private let handler: Handler
    private let logger: Logger
    private let pollInterval: Duration
    private let gracePeriod: Duration
    private let reapInterval: Duration
    private let metrics: any MetricsFactory
    private let claimsWithCompletion: Bool
    private let runAhead: RunAhead

    /// Creates a worker; `metrics` receives queue waits, task durations and outcomes. With
    /// `claimsWithCompletion` (the default) the record of completed tasks also claims the next tasks, in
    /// one statement, when the worker's pass has nothing else to do first. `runAhead` says how many tasks a
    /// claim may take while tasks turn out quick (never held longer than a quarter of the lease).
    public init(
        name: String, queue: TaskQueue, signal: WorkSignal, handler: Handler, logger: Logger,
        pollInterval: Duration = .seconds(5), gracePeriod: Duration = .seconds(30), reapInterval: Duration = .seconds(5),
        metrics: any MetricsFactory = NOOPMetricsHandler.instance, claimsWithCompletion: Bool = true,
        runAhead: RunAhead = .standard
    ) {
        self.name = name
        self.queue = queue
        self.signal = signal
        self.handler = handler
        self.logger = logger
        self.pollInterval = pollInterval
        self.gracePeriod = gracePeriod
        self.reapInterval = reapInterval
        self.metrics = metrics
        self.claimsWithCompletion = claimsWithCompletion
        var runAhead = runAhead
        runAhead.maxHold = min(runAhead.maxHold, queue.leaseDuration / 4)
        self.runAhead = runAhead
    }

    static var acknowledgementsPerPass: Int { 10 }

    public var description: String { "TaskWorker(\(name))" }

    public func run() async throws {
        let stopping = Flag()
        let ahead = ClaimAhead()
        var lastReap: ContinuousClock.Instant?
        // Tasks claimed and not yet started, in queue order, and since when the worker holds them.
        var held: [ClaimedTask] = []
        var heldSince = ContinuousClock.now
        // Tasks completed whose completion is not recorded yet: it rides on the next claim.
        var finished: [ClaimedTask] = []
        // How many tasks the next claim takes, and how many the claim that filled `held` asked for.
        var depth = 1
        var asked = 0
        await withGracefulShutdownHandler {
            // Holds the claim ahead, when one is in flight: one child at most.
            await withTaskGroup(of: Void.self) { claims in
                while !stopping.isSet, !Task.isCancelled {
                    let generation = signal.generation
                    // Whether `held` was just filled.
                    var fresh = false
                    if held.isEmpty, ahead.isPending {
                        await claims.next()
                        if let arrival = ahead.take() {
                            countCompletions(arrival.carried, recorded: arrival.recorded)
                            if let error = arrival.error { logger.error("cannot claim tasks", metadata: ["error": "\(error)"]) }
                            held = arrival.tasks
                            heldSince = arrival.claimedAt
                            asked = arrival.asked
                            fresh = !held.isEmpty
                        }
                    }
                    // The claim rides on the completions when the pass before it has nothing else to do: no
                    // reaping due, no acknowledgements to look for.
                    let reapDue = lastReap.map { ContinuousClock.now - $0 >= reapInterval } ?? true
                    let chains = claimsWithCompletion && !handler.acknowledgesTasks && !reapDue
                    if held.isEmpty {
                        asked = depth
                        do {
                            if chains, !finished.isEmpty {
                                let carried = finished
                                finished = []
                                do {
                                    let (recorded, next) = try await queue.completeAndClaim(
                                        taskIDs: carried.map(\.id), worker: name, count: depth)
                                    countCompletions(carried, recorded: recorded)
                                    held = next
                                } catch {
                                    countCompletions(carried, recorded: nil)
                                    throw error
                                }
                            } else {
                                try await recordCompletions(&finished)
                                held = try await claimPass(count: depth, lastReap: &lastReap, stopping: stopping)
                            }
                        } catch {
                            // A completion not recorded is taken back when its lease runs out: nothing is lost.
                            logger.error("cannot claim tasks", metadata: ["error": "\(error)"])
                            await signal.wait(after: generation &+ 1, timeout: pollInterval)
                            continue
                        }
                        heldSince = .now
                        guard !held.isEmpty else {
                            await signal.wait(after: generation, timeout: pollInterval)
                            continue
                        }
                        fresh = true
                    }
                    // A full batch of quick tasks in hand: claim the next batch now, while these run, so the
                    // database works while the worker does.
                    if chains, fresh, asked > 1, held.count >= asked, !ahead.isPending {
                        let carried = finished
                        finished = []
                        ahead.start()
                        claims.addTask { [depth] in await claimAhead(ahead, carrying: carried, count: depth) }
                    }
                    let task = held.removeFirst()
                    let (completed, elapsed, gaveBack) = await run(
                        task, stopping: stopping, heldSince: heldSince, behind: held, ahead: ahead, finished: &finished)
                    if gaveBack { held = [] }
                    if completed {
                        if claimsWithCompletion {
                            finished.append(task)
                        } else {
                            var one = [task]
                            try? await recordCompletions(&one)
                        }
                    }
                    depth = elapsed < runAhead.quickTask && !gaveBack ? min(depth * 2, runAhead.maxTasks) : 1
                }
                // Stopped with tasks claimed but not started: they go back to the queue as they were.
                if ahead.isPending {
                    await claims.next()
                    if let arrival = ahead.take() {
                        countCompletions(arrival.carried, recorded: arrival.recorded)
                        held += arrival.tasks
                    }
                }
                try? await recordCompletions(&finished)
                if !held.isEmpty {
                    _ = try? await queue.releaseUnstarted(taskIDs: held.map(\.id), worker: name)
                }
            }
        } onGracefulShutdown: {
            stopping.set()
            signal.notify()
        }
    }

    /// Records the completions of `carried` and claims up to `count` tasks, for ``ClaimAhead``; gives the
    /// tasks back at once when the worker asked for that while the claim was in flight.
    private func claimAhead(_ ahead: ClaimAhead, carrying carried: [ClaimedTask], count: Int) async {
        var arrival = ClaimAhead.Arrival(carried: carried, asked: count, claimedAt: .now)
        do {
            let (recorded, next) = try await queue.completeAndClaim(taskIDs: carried.map(\.id), worker: name, count: count)
            arrival.recorded = recorded
            arrival.tasks = next
        } catch {
            arrival.error = error
        }
        let giveBack = ahead.arrive(arrival)
        if !giveBack.isEmpty {
            await releaseUnstarted(giveBack)
        }
    }

    /// Gives back tasks claimed ahead and not started; forgotten either way: a failed statement leaves them
    /// to the lease's expiry, never to two workers.
    private func releaseUnstarted(_ tasks: [ClaimedTask]) async {
        do {
            let released = try await queue.releaseUnstarted(taskIDs: tasks.map(\.id), worker: name)
            Counter(label: "asynccode_tasks_given_back_total", factory: metrics).increment(by: released)
        } catch {
            logger.error("cannot give back tasks claimed ahead", metadata: ["error": "\(error)"])
        }
        signal.notify()
    }

    /// Records the completions of `finished` and empties it.
    private func recordCompletions(_ finished: inout [ClaimedTask]) async throws {
        guard !finished.isEmpty else { return }
        let carried = finished
        finished = []
        do {
            countCompletions(carried, recorded: try await queue.complete(taskIDs: carried.map(\.id), worker: name))
        } catch {
            logger.error("cannot record the task's outcome", metadata: ["error": "\(error)"])
            countCompletions(carried, recorded: nil)
            throw error
        }
    }

    /// Counts the outcomes of the completed `tasks` (`recorded` `nil`: the statement failed).
    private func countCompletions(_ tasks: [ClaimedTask], recorded: Set<Int64>?) {
        for task in tasks {
            let status = recorded.map { $0.contains(task.id) ? "completed" : "lease_lost" } ?? "unrecorded"
            count(task, status: status)
        }
    }

    private func count(_ task: ClaimedTask, status: String) {
        Counter(label: "asynccode_tasks_total",
                dimensions: [("status", status), ("kind", task.kind.rawValue), ("agent", task.agent ?? "default")],
                factory: metrics).increment()
    }

    /// One pass before a claim: takes back expired leases when due, answers a few new tasks, then claims up
    /// to `count` tasks.
    private func claimPass(count: Int, lastReap: inout ContinuousClock.Instant?, stopping: Flag) async throws -> [ClaimedTask] {
        // Expired leases are rare: look for them on a timer, not before every claim.
        if lastReap.map({ ContinuousClock.now - $0 >= reapInterval }) ?? true {
            lastReap = .now
            for reaped in try await queue.reapExpiredLeases() {
                logger.notice("took back a task whose worker stopped", metadata: [
                    "task.id": "\(reaped.id)", "task.status": "\(reaped.status)",
                ])
                if reaped.status != "pending" { await handler.finalizeAbandoned(reaped) }
            }
        }
        // Answer new tasks first (a few per pass), so waiting ones hear back too.
        var acknowledged = 0
        while handler.acknowledgesTasks, acknowledged < Self.acknowledgementsPerPass, !stopping.isSet,
              let taskID = try await queue.claimAcknowledgement(worker: name) {
            await handler.acknowledge(taskID: taskID, worker: name)
            acknowledged += 1
        }
        return try await queue.claim(worker: name, count: count)
    }

    /// What the children of a task's run report.
    private enum RunEvent: Sendable {
        /// The handler returned.
        case ended(TaskOutcome)
        /// The lease was lost, or the grace period of a stop ran out: stop the handler.
        case stop
        /// The tasks claimed behind this one have waited long enough: give them back, and record the
        /// completions before it.
        case giveBack
        case nothing
    }

    /// Runs `task` and records its outcome, unless it completed: the caller records completions. While it
    /// runs, the tasks claimed `behind` it and by the claim `ahead` (held since `heldSince`) go back to the
    /// queue once it runs past the quick-task time or they have been held the longest allowed; the
    /// completions still `finished` are recorded then too, so a long task holds back no record.
    ///
    /// - Returns: whether the task completed, how long it ran, and whether the tasks behind it were given
    ///   back (the caller forgets them).
    private func run(
        _ task: ClaimedTask, stopping: Flag, heldSince: ContinuousClock.Instant, behind: [ClaimedTask], ahead: ClaimAhead,
        finished: inout [ClaimedTask]
    ) async -> (completed: Bool, elapsed: Duration, gaveBack: Bool) {
        var logger = self.logger
        logger[metadataKey: "task.id"] = "\(task.id)"
        let agent = task.agent ?? "default"
        let started = ContinuousClock.now
        Timer(label: "asynccode_queue_wait_seconds", dimensions: [("kind", task.kind.rawValue)], factory: metrics)
            .record(duration: task.waited + (started - heldSince))
        let giveBackAt = min(started + runAhead.quickTask, heldSince + runAhead.maxHold)
        var gaveBack = false
        let outcome = await withTaskGroup(of: RunEvent.self) { group in
            group.addTask { .ended(await handler.handle(task)) }
            let holds = !behind.isEmpty || ahead.isPending || !finished.isEmpty
            group.addTask { await watch(task, stopping: stopping, giveBackAt: holds ? giveBackAt : nil) }
            defer { group.cancelAll() }
            while let event = await group.next() {
                switch event {
                case .ended(let outcome): return outcome
                case .stop: group.cancelAll()
                case .giveBack:
                    // Given back here, not in the child, so that cancelling the children cannot leave it
                    // unknown whether it happened. The claim ahead's tasks go back too (by its own child if
                    // it is still in flight), and the completions of the tasks before this one are recorded
                    // now, not when it ends.
                    gaveBack = true
                    group.addTask { await watch(task, stopping: stopping, giveBackAt: nil) }
                    let back = behind + ahead.giveBack()
                    if !back.isEmpty { await releaseUnstarted(back) }
                    try? await recordCompletions(&finished)
                case .nothing: break
                }
            }
            return .interrupted
        }
        let elapsed = ContinuousClock.now - started
        Timer(label: "asynccode_task_duration_seconds", dimensions: [("agent", agent), ("kind", task.kind.rawValue)], factory: metrics)
            .record(duration: elapsed)
        // The status counted is the one the queue recorded (a retryable failure out of attempts is `failed`).
        var result: String
        do {
            switch outcome {
            case .completed:
                return (true, elapsed, gaveBack)
            case .failed(let reason, let retryable, let retryAfter):
                let status = try await queue.fail(
                    taskID: task.id, worker: name, error: reason, retryable: retryable, retryDelay: retryAfter)
                logger.error("task failed", metadata: ["task.status": "\(status ?? "lease lost")", "error": "\(reason)"])
                result = status == "pending" ? "retrying" : status == nil ? "lease_lost" : "failed"
            case .interrupted:
                try await queue.release(taskID: task.id, worker: name)
                result = "interrupted"
            case .deferred(let retryAfter):
                try await queue.release(taskID: task.id, worker: name, after: retryAfter)
                result = "deferred"
            case .cancelled(let reason):
                try await queue.cancel(taskID: task.id, worker: name, reason: reason)
                result = "cancelled"
            }
        } catch {
            // The lease runs out and the task is taken back: nothing is lost.
            logger.error("cannot record the task's outcome", metadata: ["error": "\(error)"])
            result = "unrecorded"
        }
        count(task, status: result)
        return (false, elapsed, gaveBack)
    }

    /// Watches a running task: renews its lease every third of the lease's duration, and returns
    /// ``RunEvent/stop`` when the lease was lost or once the worker is stopping and the grace period has
    /// passed (the handler is then stopped), ``RunEvent/giveBack`` at `giveBackAt` (the tasks claimed behind
    /// it are due back), and ``RunEvent/nothing`` when cancelled (the handler returned).
    ///
    /// One child task and one timer per task: a stop is noticed within 200 ms.
    private func watch(_ task: ClaimedTask, stopping: Flag, giveBackAt: ContinuousClock.Instant?) async -> RunEvent {
        let renewEvery = queue.leaseDuration / 3
        var nextRenewal = ContinuousClock.now + renewEvery
        var graceEnds: ContinuousClock.Instant?
        // A handler that returns at once ends before this child resumes: no timer is set for it.
        await Task.yield()
        while !Task.isCancelled {
            let now = ContinuousClock.now
            if let giveBackAt, now >= giveBackAt { return .giveBack }
            if graceEnds == nil, stopping.isSet { graceEnds = now + gracePeriod }
            if let graceEnds, now >= graceEnds { return .stop }
            if now >= nextRenewal {
                nextRenewal = now + renewEvery
                if let renewed = try? await queue.renewLease(taskID: task.id, worker: name), !renewed {
                    logger.error("lease lost", metadata: ["task.id": "\(task.id)"])
                    return .stop
                }
                continue
            }
            let wake = min(nextRenewal, graceEnds ?? now + .milliseconds(200), giveBackAt ?? nextRenewal)
            try? await Task.sleep(until: wake, clock: .continuous)
        }
        return .nothing
    }
}
