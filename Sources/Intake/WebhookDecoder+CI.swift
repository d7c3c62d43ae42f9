import Models

/// A failed CI run on a pull request: `check_suite` and `workflow_run` (action `completed`).
///
/// Whether it starts anything is not decided here: the writer keeps it only for an open pull request the bot
/// opened (on behalf of whoever asked for that pull request, one task per head commit), and the executor only
/// when the repository's `fixFailingCI` is on and `maxAutomaticFixes` is not used up. The sender is not
/// checked for a bot: CI on the bot's pull request is usually started by the bot's own push.
extension WebhookDecoder {
    /// The events that report CI runs.
    static let ciEvents: Set<String> = ["check_suite", "workflow_run"]
    /// The conclusions that ask for a fix.
    static let failedConclusions: Set<String> = ["failure", "timed_out", "startup_failure"]

    func addCIFix(
        headSHA: String, conclusion: String?, name: String, pulls: [CIPullRequestPayload], envelope: EnvelopePayload, url: String?,
        to plan: inout DeliveryPlan
    ) {
        guard let conclusion, Self.failedConclusions.contains(conclusion) else {
            plan.ignoredReason = "CI ended \(conclusion ?? "without a conclusion"): nothing to fix"
            return
        }
        guard headSHA.utf8.count == 40, headSHA.utf8.allSatisfy({ $0.isHexDigit }) else {
            plan.ignoredReason = "CI run without a commit SHA"
            return
        }
        guard let context = TaskContext(envelope: envelope, author: envelope.sender), let repositoryID = envelope.repository?.id else {
            plan.ignoredReason = "not an App delivery: no installation or repository"
            return
        }
        // The pull requests of this repository (not a fork's) whose head is the commit that failed.
        let ours = pulls.filter { pull in
            pull.head.sha == headSHA && (pull.head.repo?.id ?? repositoryID) == repositoryID && (pull.base.repo?.id ?? repositoryID) == repositoryID
        }
        guard !ours.isEmpty else {
            plan.ignoredReason = "CI failed on a commit that is not the head of a pull request of this repository"
            return
        }
        let label = String(name.prefix(100))
        for pull in ours.prefix(5) {
            let origin = context.origin(issueNumber: pull.number, isPullRequest: true, source: .ciFailure, commentID: nil, commandIndex: 0)
            var task = TaskRequest(
                origin: origin, kind: .code, agent: nil, priority: .medium, baseBranch: nil,
                prompt: "CI failed on this pull request's head commit \(headSHA.prefix(7)) (\(label): \(conclusion)). "
                    + "Find out why from the failing checks below and fix it.",
                sourceURL: url)
            task.requiresOwnPullRequest = true
            task.ciFailure = CIFailure(headSHA: headSHA, name: label, conclusion: conclusion)
            plan.tasks.append(task)
        }
    }
}

private extension UInt8 {
    var isHexDigit: Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(self)
    }
}
