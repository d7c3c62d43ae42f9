import Accounting
import Foundation

/// Step 4: admits the task past the usage limits, then reserves its credits (nothing without
/// ``ExecutorAccounting``: tasks then run free and unlimited).
///
/// A task over a limit waits (``Deferred``): it goes back to the queue until the limit frees it, holding no
/// reservation (so waiting tasks never use up the daily limit of the others), and starts by itself then. A
/// task that can never fit (its estimate is over the daily limit), or that the account cannot pay for, is
/// refused at once with what would fit.
struct Admit: Sendable {
    let accounting: ExecutorAccounting?

    func callAsFunction(_ run: inout TaskRun, agent: AgentCommand) async throws {
        guard let accounting else { return }
        let record = run.record
        let limits = accounting.limits
        let owner = run.repo.owner
        let accountID = try await accounting.ledger.payingAccount(taskID: record.id)
        let estimate = agent.pricing.estimate(timeout: agent.timeout, budget: record.budget)
        if accountID != nil, let daily = limits.creditsPerAccountPerDay, estimate > daily {
            let reason = Self.overADay(estimate: estimate, daily: daily, owner: owner)
            throw StepFailure(reason: reason, retryable: false, state: .notStarted(reason: reason))
        }
        let admission = try await accounting.gate.admit(
            taskID: record.id, requesterID: record.requesterID, repositoryID: record.repositoryID, limits: limits)
        if let waiting = Self.waiting(admission, repository: run.repo.fullName, requester: record.requesterLogin) { throw waiting }
        guard let accountID else { return }
        switch try await accounting.ledger.reserve(
            taskID: record.id, accountID: accountID, amount: estimate, dailyLimit: limits.creditsPerAccountPerDay) {
        case .reserved(let amount, let balance):
            if amount > 0 {
                run.report.record("Reserved \(CreditFormat.string(amount)) credits (\(CreditFormat.string(balance)) left)")
            }
        case .insufficient(let needed, let balance):
            // Not started: it does not count toward the requester's hourly limit.
            try await accounting.gate.withdraw(taskID: record.id)
            let reason = Self.notEnoughCredits(needed: needed, balance: balance, budget: record.budget, agent: agent.name, owner: owner)
            throw StepFailure(reason: reason, retryable: false, state: .notStarted(reason: reason))
        case .dailyLimit(let limit, let used, let freesAt):
            try await accounting.gate.withdraw(taskID: record.id)
            throw Self.dailyLimit(limit, used: used, estimate: estimate, owner: owner, freesAt: freesAt)
        }
    }

    /// Returns why a task whose estimate is over the daily limit can never start.
    static func overADay(estimate: Decimal, daily: Decimal, owner: String) -> String {
        "this task may use up to \(CreditFormat.string(estimate)) credits, more than \(owner) may spend in a day "
            + "(limit `creditsPerAccountPerDay: \(CreditFormat.string(daily))`). Ask with `--budget \(CreditFormat.string(daily))` or less."
    }

    /// Returns the wait an admission decision means, or `nil` when the task is admitted.
    static func waiting(_ admission: Admission, repository: String, requester: String) -> Deferred? {
        switch admission {
        case .admitted:
            return nil
        case .repositoryBusy(let running, let limit):
            return Deferred(reason: "\(repository) already runs \(running) task\(running == 1 ? "" : "s"), "
                + "the most it may (limit `runningTasksPerRepository: \(limit)`); this one starts when one of them ends.")
        case .requesterHourly(let limit, let freesAt):
            return Deferred(reason: "\(limit) task\(limit == 1 ? "" : "s") an hour for @\(requester) "
                + "(limit `tasksPerRequesterPerHour: \(limit)`)", until: freesAt)
        }
    }

    /// Returns why the account cannot pay for the task, and what to ask for instead.
    static func notEnoughCredits(needed: Decimal, balance: Decimal, budget: Decimal?, agent: String, owner: String) -> String {
        "not enough credits: this task may use up to \(CreditFormat.string(needed)) credits"
            + (budget == nil ? " (agent `\(agent)`)" : " (its `--budget`)")
            + " and \(owner) has \(CreditFormat.string(balance)) left. "
            + (budget == nil && balance > 0 ? "Ask with `--budget \(CreditFormat.string(balance))` or less, or ask an operator to add credits." : "Ask an operator to add credits (`asynccode credits grant`).")
    }

    /// Returns the wait for the account's daily credit limit.
    static func dailyLimit(_ limit: Decimal, used: Decimal, estimate: Decimal, owner: String, freesAt: Date) -> Deferred {
        Deferred(reason: "\(CreditFormat.string(limit)) credits a day for \(owner) (limit `creditsPerAccountPerDay: "
            + "\(CreditFormat.string(limit))`); \(CreditFormat.string(used)) used in the last 24 hours and this task may need "
            + "\(CreditFormat.string(estimate))", until: freesAt)
    }
}
