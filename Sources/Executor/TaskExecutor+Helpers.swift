import Accounting
import Foundation
import GitHub
import Models
import Queue
import RepositoryConfiguration

/// The executor's helpers, under the names callers and tests know; each lives with the step that uses it.
extension TaskExecutor {
    static func repositoryRef(_ record: TaskRecord) -> RepositoryRef {
        RepositoryRef(owner: record.ownerLogin, name: record.repositoryName, id: record.repositoryGitHubID,
                      installationID: record.installationGitHubID)
    }

    static func oneLine(_ text: String) -> String {
        let line = text.replacingOccurrences(of: "\n", with: " ")
        return line.count > 300 ? String(line.prefix(299)) + "…" : line
    }

    static func branchName(prefix: String = "asynccode/", issueNumber: Int64, text: String) -> String {
        PlanWork<API>.branchName(prefix: prefix, issueNumber: issueNumber, text: text)
    }

    static func configWarning(_ problem: RepositoryConfigurationError, commit: String, repo: RepositoryRef) -> String {
        LoadSettings<API>.configWarning(problem, commit: commit, repo: repo)
    }

    static func usageLimits(agent: AgentCommand, budget: Decimal?) -> (tokens: Int64?, time: Duration?) {
        RunAgent<API>.usageLimits(agent: agent, budget: budget)
    }

    static func overBudgetReason(agent: AgentCommand, budget: Decimal?, usage: TokenUsage?) -> String {
        RunAgent<API>.overBudgetReason(agent: agent, budget: budget, usage: usage)
    }

    static func limitHit(_ limits: ResourceLimits, signal: Int32?, errorOutput: String) -> String {
        RunAgent<API>.limitHit(limits, signal: signal, errorOutput: errorOutput)
    }

    static func tail(_ text: String, lines: Int = 60, characters: Int = 6_000) -> String {
        RunAgent<API>.tail(text, lines: lines, characters: characters)
    }

    static func title(instruction: String, issueTitle: String) -> String {
        Publish<API>.title(instruction: instruction, issueTitle: issueTitle)
    }

    static func pullRequestBody(summary: String, record: TaskRecord, files: [ChangedFile], agent: String) -> String {
        Publish<API>.pullRequestBody(summary: summary, record: record, files: files, agent: agent)
    }

    static func creditsLine(_ settlement: Settlement) -> String {
        Settle<API>.creditsLine(settlement)
    }

    static func when(_ date: Date) -> String {
        Settle<API>.when(date)
    }

    /// Returns the delay before attempt `attempt + 1` (see ``Settle/backoff(attempt:)``).
    func backoff(attempt: Int) -> Duration {
        settle.backoff(attempt: attempt)
    }
}
