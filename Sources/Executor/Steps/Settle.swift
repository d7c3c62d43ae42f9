import Accounting
import Foundation
import Logging
import Metrics
import Models
import Queue

/// The last step, however the task ends: completed, failed (or to be retried), cancelled or waiting for a
/// limit. It settles the credits (the agent's run is paid for when it ran and the ending was its doing;
/// otherwise the reservation goes back), records `task_analytics` and the final `task_events` step, and gives
/// the progress comment its final state.
struct Settle<API: GitHubAPI>: Sendable {
    let store: TaskStore
    let queue: TaskQueue
    let accounting: ExecutorAccounting?
    let settings: ExecutorSettings
    let progress: TaskProgress<API>

    func completed(_ run: inout TaskRun) async -> TaskOutcome {
        run.report.finishRunning(.done)
        run.report.state = .completed
        if run.report.details?.contains("| Duration |") != true {
            let duration = ProgressReport.duration(seconds: (ContinuousClock.now - run.started).inSeconds)
            run.report.details = (run.report.details.map { $0 + "\n\n" } ?? "") + "Took \(duration)."
        }
        try? await queue.appendEvent(taskID: run.record.id, step: "completed")
        await closeAccounts(&run, status: "completed", paid: true, errors: run.task.attempt - 1)
        await progress.publish(&run, final: true)
        return .completed
    }

    func failed(_ run: inout TaskRun, _ failure: StepFailure) async -> TaskOutcome {
        let reason = SecretRedactor.redact(failure.reason)
        let willRetry = failure.retryable && run.task.attempt < run.task.maxAttempts
        run.report.finishRunning(.failed)
        if willRetry {
            run.report.state = .retrying(attempt: run.task.attempt, of: run.task.maxAttempts, reason: reason)
        } else {
            run.report.state = failure.state ?? .failed(reason: reason)
            run.report.outputTail = run.outputTail
        }
        try? await queue.appendEvent(taskID: run.record.id, step: willRetry ? "retrying" : "failed", detail: reason)
        // A retry keeps the reservation for the next attempt.
        if !willRetry { await closeAccounts(&run, status: "failed", paid: failure.agentsFault, errors: run.task.attempt) }
        await progress.publish(&run, final: !willRetry)
        let delay = failure.retryAfter ?? backoff(attempt: run.task.attempt)
        return .failed(reason: reason, retryable: failure.retryable, retryAfter: delay)
    }

    func cancelled(_ run: inout TaskRun) async -> TaskOutcome {
        let reason = "a collaborator asked to cancel (`/asynccode cancel`); nothing was pushed"
        run.report.finishRunning(.skipped)
        run.report.state = .cancelled(reason: reason)
        try? await queue.appendEvent(taskID: run.record.id, step: "cancelled")
        await closeAccounts(&run, status: "cancelled", paid: true, errors: run.task.attempt - 1)
        await progress.publish(&run, final: true)
        return .cancelled(reason: "cancelled on request")
    }

    /// Holds the task back: the comment says why and until when, and the task goes back to the queue until
    /// then (without counting the attempt). A waiting task holds no credits: a reservation an earlier attempt
    /// made goes back.
    func deferred(_ run: inout TaskRun, _ deferred: Deferred) async -> TaskOutcome {
        do {
            try await accounting?.ledger.release(taskID: run.record.id, reason: "waiting for a usage limit")
        } catch {
            run.logger.error("cannot release the credits of a waiting task", metadata: ["error": "\(error)"])
        }
        run.report.finishRunning(.skipped)
        var retryAfter = accounting?.deferral ?? .seconds(15)
        if let until = deferred.until {
            run.report.state = .waitingUntil(Self.when(until), reason: deferred.reason)
            // A second late rather than early: the limit has freed the task when it looks again.
            retryAfter = .milliseconds(Int64(max(1, until.timeIntervalSinceNow + 1) * 1000))
        } else {
            run.report.state = .waiting(reason: deferred.reason)
        }
        try? await queue.appendEvent(taskID: run.record.id, step: "deferred", detail: deferred.reason)
        await progress.publish(&run, final: false)
        return .deferred(retryAfter: retryAfter)
    }

    /// Ends a task whose installation or repository takes no work any more (a race with the event that
    /// said so, or a task given back to the queue since): `cancelled`, its reservation returned, and no call
    /// to GitHub, which would refuse it.
    func inactive(_ record: TaskRecord, _ inactivity: Inactivity, logger: Logger) async -> TaskOutcome {
        do {
            try await accounting?.ledger.release(taskID: record.id, reason: inactivity.reason)
        } catch {
            logger.error("cannot release the task's credits", metadata: ["error": "\(error)"])
        }
        try? await queue.appendEvent(taskID: record.id, step: "cancelled", detail: inactivity.reason)
        logger.notice("cancelled a task that can no longer run", metadata: ["reason": "\(inactivity.reason)"])
        return .cancelled(reason: inactivity.reason)
    }

    /// Ends a task before it said anything on GitHub (``QuietEnd``: an automatic fix not wanted or not needed):
    /// `cancelled`, with the reason in the log and the task's events.
    func quiet(_ run: inout TaskRun, _ end: QuietEnd) async -> TaskOutcome {
        do {
            try await accounting?.ledger.release(taskID: run.record.id, reason: end.reason)
        } catch {
            run.logger.error("cannot release the task's credits", metadata: ["error": "\(error)"])
        }
        try? await queue.appendEvent(taskID: run.record.id, step: "not started", detail: end.reason)
        run.logger.info("an automatic fix did not start", metadata: ["reason": "\(end.reason)"])
        return .cancelled(reason: "not started: " + end.reason)
    }

    /// Ends a task whose worker stopped (reaped by the queue): our crash, not the agent's doing, so the
    /// reservation goes back.
    func abandoned(_ task: ReapedTask) async {
        let settlement = try? await accounting?.ledger.release(taskID: task.id, reason: "its worker stopped")
        guard let record = try? await store.record(taskID: task.id) else { return }
        try? await accounting?.analytics.record(TaskAnalytics(
            taskID: task.id, status: task.status, agent: record.agent, executionTime: .zero, usage: nil,
            errorCount: record.attempts, creditsUsed: settlement?.charged ?? 0))
        guard let commentID = record.progressCommentID else { return }
        var report = progress.makeReport(record)
        report.state = task.status == "cancelled"
            ? .cancelled(reason: "a collaborator asked to cancel (`/asynccode cancel`)")
            : .failed(reason: "the worker running it stopped and no attempts remain")
        if let settlement { report.credits = Self.creditsLine(settlement) }
        await progress.finalEdit(report.render(), commentID: commentID, repo: TaskExecutor<API>.repositoryRef(record),
                                 taskID: task.id, logger: progress.logger)
    }

    /// Settles the task's reservation (`paid`: the agent ran and its run is charged) or releases it, records
    /// `task_analytics`, and puts the credits used and left in the report.
    private func closeAccounts(_ run: inout TaskRun, status: String, paid: Bool, errors: Int) async {
        guard let accounting else { return }
        let id = run.record.id
        let settlement: Settlement?
        do {
            settlement = paid && run.agentRan
                ? try await accounting.ledger.settle(taskID: id, cost: run.agentCost)
                : try await accounting.ledger.release(taskID: id, reason: status == "cancelled" ? "cancelled before the agent ran" : "a failure that was not the agent's")
        } catch {
            run.logger.error("cannot settle the task's credits", metadata: ["error": "\(error)"])
            settlement = nil
        }
        if let settlement {
            run.report.credits = Self.creditsLine(settlement)
            FloatingPointCounter(label: "asynccode_credits_spent_total", dimensions: [("agent", run.report.agent ?? "default")],
                                 factory: settings.metrics)
                .increment(by: NSDecimalNumber(decimal: settlement.charged).doubleValue)
        }
        do {
            try await accounting.analytics.record(TaskAnalytics(
                taskID: id, status: status, agent: run.report.agent, executionTime: ContinuousClock.now - run.started,
                usage: run.usage, linesAdded: run.files.reduce(0) { $0 + $1.additions },
                linesDeleted: run.files.reduce(0) { $0 + $1.deletions }, filesModified: run.files.count,
                errorCount: max(0, errors), creditsUsed: settlement?.charged ?? 0))
        } catch {
            run.logger.error("cannot record the task's analytics", metadata: ["error": "\(error)"])
        }
    }

    /// Returns the delay before attempt `attempt + 1`: doubling from the base, capped at 10 minutes, with jitter.
    func backoff(attempt: Int) -> Duration {
        let base = settings.retryBaseDelay.inSeconds
        let delay = min(600, base * pow(2, Double(max(0, attempt - 1))))
        return .milliseconds(Int64(delay * Double.random(in: 0.5...1.0) * 1000))
    }

    /// Returns the report's credits line.
    static func creditsLine(_ settlement: Settlement) -> String {
        "🪙 Credits: \(CreditFormat.string(settlement.charged)) used · \(CreditFormat.string(settlement.balance)) left"
    }

    /// Returns "14:05 UTC (in 12 min)" (with the date when it is not today, in UTC).
    static func when(_ date: Date) -> String {
        let utc = TimeZone(identifier: "UTC") ?? TimeZone(secondsFromGMT: 0) ?? .current
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = utc
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = utc
        formatter.dateFormat = calendar.isDate(date, inSameDayAs: Date()) ? "HH:mm" : "yyyy-MM-dd HH:mm"
        let minutes = max(1, Int((date.timeIntervalSinceNow / 60).rounded(.up)))
        let wait = minutes < 120 ? "\(minutes) min" : "\(minutes / 60) h \(minutes % 60) min"
        return "\(formatter.string(from: date)) UTC (in \(wait))"
    }
}
