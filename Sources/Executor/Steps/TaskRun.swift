import Accounting
import Foundation
import GitHub
import Logging
import Models
import Queue
import RepositoryConfiguration

/// A task's run: the state its steps share, from the claim to the final comment.
///
/// ``TaskExecutor`` makes one per attempt and hands it, `inout`, to each step in turn; a step reads what
/// the earlier ones found and adds what it finds (the configuration, the agent's cost and usage, the changed
/// files) so that ``Settle`` can finish the task however it ends.
struct TaskRun {
    var record: TaskRecord
    var task: ClaimedTask
    var repo: RepositoryRef
    var report: ProgressReport
    var commentID: Int64?
    let cancelRequested: Flag
    var logger: Logger
    /// What the task's runs print, written as it comes (one for the whole task: its 2 MB cap spans them all).
    let liveLog: LiveLog
    let started = ContinuousClock.now
    var outputTail: String?
    /// Whether the agent ran (its cost is then the agent's to settle, not ours to release).
    var agentRan = false
    var agentCost: Decimal = 0
    var usage: TokenUsage?
    var files: [ChangedFile] = []
    /// How many times the agent ran (more than once when failing checks went back to it).
    var agentRounds = 0
    /// Every check's result after the agent's last round (empty when the repository has no `checks`).
    var checkResults: [CheckResult] = []
    /// The checks still failing after the agent's last round (published in a draft pull request).
    var failingChecks: [CheckResult] { checkResults.filter { !$0.passed } }
    /// The commit pushed, once ``Publish`` pushed one.
    var pushedCommit: String?
    /// For an automatic fix of failed CI: what failed (found by ``TriageCIFailure``).
    var ciFix: CIFix?
    /// The repository's `.github/asynccode.yml` (the defaults until it is read).
    var config = RepositoryConfiguration()
}

/// Where the work starts and where it goes (decided by ``PlanWork``).
struct WorkPlan {
    var cloneURL: String
    var cloneBranch: String
    var baseBranch: String
    var workBranch: String
    /// Work on an existing pull request's branch: push there, no new pull request.
    var followUp: Bool
    var pullNumber: Int?
    var pullURL: String?
    var pushes: Bool
}

/// A step that could not be done: how to say so and whether to try again.
struct StepFailure: Error {
    var reason: String
    var retryable: Bool
    var retryAfter: Duration?
    /// The final state to show instead of `failed`.
    var state: ProgressReport.State?
    /// Whether the agent's own doing caused it (its run is then paid for; otherwise the credits go back).
    var agentsFault = false
}

/// The task waits: a limit holds it back for now.
struct Deferred: Error {
    var reason: String
    /// When the limit frees the task; `nil`: it looks again after ``ExecutorAccounting/deferral``.
    var until: Date? = nil
}

/// The task was cancelled on request.
struct CancelledOnRequest: Error {}

/// The task ends before it says anything on GitHub (an automatic fix that is not wanted or not needed any more):
/// `cancelled`, with `reason` in the log and the task's events, and no comment.
struct QuietEnd: Error {
    var reason: String
}

/// The failed CI an automatic fix works on.
struct CIFix: Sendable {
    /// The commit CI failed on.
    var headSHA: String
    /// This pull request's automatic fix number `number` of at most `limit`.
    var number: Int
    var limit: Int
    /// The failing check runs, with the end of their logs, for the prompt.
    var failing: [PromptBuilder.FailingCheck]
    /// Why the failing runs' details could not be read, if they could not.
    var unreadable: String?
}
