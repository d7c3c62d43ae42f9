import Foundation
import GitHub
import Models
import Queue

/// Step 8b, after ``Publish`` pushed a commit in a repository with `checks`: reports the checks' last round on
/// GitHub as the check run `asynccode` on that commit (success or failure, a table of the checks and the tails of
/// those that fail), so that branch protection can require it.
///
/// It needs `checks: write`; an installation that has not granted it gets everything else as before and one
/// warning in the log (``PermissionWarnings``). A failure here never fails the task.
struct ReportCheckRun<API: GitHubAPI>: Sendable {
    /// The check run's name.
    static var name: String { "asynccode" }

    let api: API
    let queue: TaskQueue
    let warnings: PermissionWarnings

    func callAsFunction(_ run: inout TaskRun) async {
        guard let commit = run.pushedCommit, !run.checkResults.isEmpty else { return }
        let checkRun = Self.checkRun(results: run.checkResults, rounds: run.agentRounds, commit: commit, taskID: run.record.id)
        do {
            try await api.createCheckRun(in: run.repo, checkRun)
            try? await queue.appendEvent(taskID: run.record.id, step: "check run", detail: checkRun.conclusion.rawValue)
        } catch {
            await warnings.report(error, permission: "checks", doing: "create the check run on \(commit.prefix(7))",
                                  installationID: run.repo.installationID, logger: run.logger)
        }
    }

    /// Returns the check run for the checks' last round.
    static func checkRun(results: [CheckResult], rounds: Int, commit: String, taskID: Int64) -> NewCheckRun {
        let failing = results.filter { !$0.passed }
        let title = failing.isEmpty
            ? "\(results.count) check\(results.count == 1 ? "" : "s") pass"
            : "\(failing.count) of \(results.count) check\(results.count == 1 ? "" : "s") fail"
        var summary = "The repository's checks (`checks` in `.github/asynccode.yml`) after "
            + VerifyLoop<API>.rounds(max(1, rounds)) + ", in the agent's jail:\n\n| Check | Result | Time |\n|---|---|---|\n"
        for result in results {
            summary += "| `\(CheckResult.quoted(result.name))` | \(result.passed ? "✅ passed" : "❌ \(result.status)") "
                + "| \(Int(result.seconds.rounded())) s |\n"
        }
        summary += "\nasynccode task \(taskID)"
        return NewCheckRun(
            name: name, headSHA: commit, conclusion: failing.isEmpty ? .success : .failure, title: title, summary: summary,
            text: failing.isEmpty ? nil : CheckResult.failureList(failing), externalID: "task-\(taskID)")
    }
}
