import Models
import Queue

/// Step 8 for the tasks that change nothing: an `ask` or `plan` answer goes into the progress comment, a
/// `review` is posted on the pull request; either is kept in the thread's conversation.
struct Reply<API: GitHubAPI>: Sendable {
    let api: API
    let store: TaskStore
    let progress: TaskProgress<API>

    /// Puts an `ask` answer or a `plan` in the report.
    func answer(_ run: inout TaskRun, _ answer: AgentAnswer) async {
        let summary = answer.summary
        run.report.details = (run.record.kind == .ask ? "**Answer**\n\n" : "**Plan**\n\n")
            + (summary.isEmpty ? "_The agent printed nothing._" : summary)
        await remember(run, summary)
    }

    /// Posts the agent's review on the pull request.
    func review(_ run: inout TaskRun, _ answer: AgentAnswer, plan: WorkPlan) async throws {
        guard let pullNumber = plan.pullNumber else {
            throw StepFailure(reason: "`review` works on pull requests; this is an issue", retryable: false)
        }
        let summary = answer.summary
        await progress.step(&run, "Posting the review")
        try await api.createReview(in: run.repo, pullNumber: pullNumber,
                                   body: summary.isEmpty ? "The agent found nothing to say." : PromptBuilder.capped(summary, bytes: 60_000))
        run.report.details = "Posted the review on #\(pullNumber)."
        await remember(run, summary)
    }

    private func remember(_ run: TaskRun, _ summary: String) async {
        try? await store.appendChatMessage(taskID: run.record.id, ChatMessage(role: "assistant", content: summary, author: "asynccode"))
    }
}
