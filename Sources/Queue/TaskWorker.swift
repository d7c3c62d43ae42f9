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

/// A worker: claims tasks one at a time, renews its lease while the handler runs, and records the outcome.
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

    /// Creates a worker; `metrics` receives queue waits, task durations and outcomes. With
    /// `claimsWithCompletion` (the default) a completed task's record also claims the next task, in one
    /// statement, when the worker's pass has nothing else to do first.
    public init(
        name: String, queue: TaskQueue, signal: WorkSignal, handler: Handler, logger: Logger,
        pollInterval: Duration = .seconds(5), gracePeriod: Duration = .seconds(30), reapInterval: Duration = .seconds(5),
        metrics: any MetricsFactory = NOOPMetricsHandler.instance, claimsWithCompletion: Bool = true
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
    }

    static var acknowledgementsPerPass: Int { 10 }

    public var description: String { "TaskWorker(\(name))" }

    public func run() async throws {
        let stopping = Flag()
        var lastReap: ContinuousClock.Instant?
        // A task claimed together with the completion of the one before.
        var handedOn: ClaimedTask?
        try await withGracefulShutdownHandler {
            while !stopping.isSet, !Task.isCancelled {
                let generation = signal.generation
                let task: ClaimedTask?
                if let next = handedOn {
                    handedOn = nil
                    task = next
                } else {
                    do {
                        task = try await claimPass(lastReap: &lastReap, stopping: stopping)
                    } catch {
                        logger.error("cannot claim tasks", metadata: ["error": "\(error)"])
                        await signal.wait(after: generation &+ 1, timeout: pollInterval)
                        continue
                    }
                }
                guard let task else {
                    await signal.wait(after: generation, timeout: pollInterval)
                    continue
                }
                // The next claim may ride on this task's completion when the pass before it has nothing else
                // to do: no reaping due, no acknowledgements to look for.
                let reapDue = lastReap.map { ContinuousClock.now - $0 >= reapInterval } ?? true
                handedOn = await run(task, stopping: stopping, claimNext: claimsWithCompletion && !handler.acknowledgesTasks && !reapDue)
            }
            // Stopped between claiming a task and starting it: it goes back to the queue as it was.
            if let next = handedOn {
                _ = try? await queue.release(taskID: next.id, worker: name)
            }
        } onGracefulShutdown: {
            stopping.set()
            signal.notify()
        }
    }

    /// One pass before a claim: takes back expired leases when due, answers a few new tasks, then claims.
    private func claimPass(lastReap: inout ContinuousClock.Instant?, stopping: Flag) async throws -> ClaimedTask? {
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
        return try await queue.claim(worker: name)
    }

    /// Runs `task` and records its outcome; with `claimNext`, a completion also claims the worker's next
    /// task, which it returns.
    private func run(_ task: ClaimedTask, stopping: Flag, claimNext: Bool) async -> ClaimedTask? {
        var logger = self.logger
        logger[metadataKey: "task.id"] = "\(task.id)"
        let agent = task.agent ?? "default"
        Timer(label: "asynccode_queue_wait_seconds", dimensions: [("kind", task.kind.rawValue)], factory: metrics)
            .record(duration: task.waited)
        let started = ContinuousClock.now
        let outcome = await withTaskGroup(of: TaskOutcome?.self) { group in
            group.addTask { await handler.handle(task) }
            group.addTask { await keepLease(task, stopping: stopping) }
            defer { group.cancelAll() }
            while let result = await group.next() {
                if let result { return result }
                // The lease was lost or the grace period ran out: stop the handler.
                group.cancelAll()
            }
            return .interrupted
        }
        Timer(label: "asynccode_task_duration_seconds", dimensions: [("agent", agent), ("kind", task.kind.rawValue)], factory: metrics)
            .record(duration: ContinuousClock.now - started)
        // The status counted is the one the queue recorded (a retryable failure out of attempts is `failed`).
        var result: String
        var next: ClaimedTask?
        do {
            switch outcome {
            case .completed where claimNext && !stopping.isSet:
                next = try await queue.completeAndClaim(taskID: task.id, worker: name).next
                result = "completed"
            case .completed:
                try await queue.complete(taskID: task.id, worker: name)
                result = "completed"
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
        Counter(label: "asynccode_tasks_total", dimensions: [("status", result), ("kind", task.kind.rawValue), ("agent", agent)],
                factory: metrics).increment()
        return next
    }

    /// Renews the lease every third of its duration while the handler runs; returns `nil` when the lease was
    /// lost, or once the worker is stopping and the grace period has passed (the handler is then stopped).
    ///
    /// One child task and one timer per task: a stop is noticed within 200 ms.
    private func keepLease(_ task: ClaimedTask, stopping: Flag) async -> TaskOutcome? {
        let renewEvery = queue.leaseDuration / 3
        var nextRenewal = ContinuousClock.now + renewEvery
        var graceEnds: ContinuousClock.Instant?
        while !Task.isCancelled {
            let now = ContinuousClock.now
            if graceEnds == nil, stopping.isSet { graceEnds = now + gracePeriod }
            if let graceEnds, now >= graceEnds { return nil }
            if now >= nextRenewal {
                nextRenewal = now + renewEvery
                if let renewed = try? await queue.renewLease(taskID: task.id, worker: name), !renewed {
                    logger.error("lease lost", metadata: ["task.id": "\(task.id)"])
                    return nil
                }
                continue
            }
            let wake = min(nextRenewal, graceEnds ?? now + .milliseconds(200))
            try? await Task.sleep(until: wake, clock: .continuous)
        }
        return nil
    }
}
