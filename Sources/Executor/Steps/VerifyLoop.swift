import Queue
import RepositoryConfiguration

/// Steps 7 and 7b for the tasks that change code, as a loop: the agent runs (``RunAgent``), then the
/// repository's checks (``RunChecks``); while a check fails and `fixRounds` remain, the agent runs again in the
/// same checkout with the failures in its prompt. Without `checks` the agent runs once, as it always did.
///
/// Still failing after the last round: with `onChecksFailing: draft` the task goes on to ``Publish`` with
/// ``TaskRun/failingChecks`` set (a draft pull request that lists them); with `fail` it ends here, ❌, with the
/// same list, and nothing is pushed.
struct VerifyLoop<API: GitHubAPI>: Sendable {
    let runAgent: RunAgent<API>
    let runChecks: RunChecks<API>

    func callAsFunction(_ run: inout TaskRun, agent: AgentCommand, plan: WorkPlan, in prepared: PreparedWorkspace) async throws -> AgentAnswer {
        let checks = run.config.checks
        let rounds = checks.isEmpty ? 1 : run.config.fixRounds + 1
        var failing: [CheckResult] = []
        var answer: AgentAnswer?
        for round in 1...rounds {
            answer = try await runAgent(&run, agent: agent, plan: plan, in: prepared, failing: failing, round: round, of: rounds)
            if checks.isEmpty { break }
            run.checkResults = try await runChecks(&run, agent: agent, in: prepared, round: round, of: rounds)
            failing = run.checkResults.filter { !$0.passed }
            if failing.isEmpty { break }
        }
        if !failing.isEmpty, run.config.onChecksFailing == .fail {
            run.report.details = Self.failingDetails(failing, rounds: run.agentRounds)
            let names = failing.map { "`\(CheckResult.quoted($0.name))` (\($0.status))" }.joined(separator: ", ")
            throw StepFailure(reason: "the checks still fail after \(Self.rounds(run.agentRounds)): \(names); nothing was pushed "
                + "(`onChecksFailing: fail`)", retryable: false, agentsFault: true)
        }
        guard let answer else { throw StepFailure(reason: "the agent did not run", retryable: false) }
        return answer
    }

    /// Returns "1 agent round", "3 agent rounds".
    static func rounds(_ count: Int) -> String {
        "\(count) agent round\(count == 1 ? "" : "s")"
    }

    /// Returns the Markdown that lists the checks still failing after `rounds` agent rounds.
    static func failingDetails(_ failing: [CheckResult], rounds: Int) -> String {
        "**Checks still failing** after \(Self.rounds(rounds)):\n\n" + CheckResult.failureList(failing)
    }
}
