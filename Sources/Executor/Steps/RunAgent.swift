import Accounting
import Foundation
import Metrics
import Models
import Queue

/// What the agent left for the steps after it: its summary (redacted) and the thread's title.
struct AgentAnswer: Sendable {
    var summary: String
    var issueTitle: String
}

/// Step 7: builds the prompt (the request, the thread and the repository's instructions, and in a fix round
/// the failing checks, fenced as data), runs the agent as a Kubernetes Job when it says `runner: kubernetes`
/// (``ClusterJail``: its change comes back as a checked patch), otherwise in its bubblewrap jail (``TaskJail``), as its own user
/// when the bot runs as root (the checkout is chowned to it before and back to the bot after, however it
/// ends), writes its output as it comes (``LiveLog``), records its redacted output and classifies its ending
/// (``AgentVerdict``): only a clean exit goes on to the result.
struct RunAgent<API: GitHubAPI>: Sendable {
    let api: API
    let store: TaskStore
    let runner: AgentRunner
    let prompts: PromptBuilder
    let settings: ExecutorSettings
    let progress: TaskProgress<API>
    /// Where agents with `runner: kubernetes` run (``ClusterJail``).
    let cluster: AgentCluster?

    /// Runs the agent's round `round`; `failing`: the checks that failed after the previous round, added to
    /// the prompt as data.
    func callAsFunction(
        _ run: inout TaskRun, agent: AgentCommand, plan: WorkPlan, in prepared: PreparedWorkspace,
        failing: [CheckResult] = [], round: Int = 1, of rounds: Int = 1
    ) async throws -> AgentAnswer {
        let record = run.record
        let workspace = prepared.git
        // A task started through the API without an issue: the instruction's first line stands for the title.
        let issueTitle: String
        let issueBody: String?
        if record.hasIssue {
            let issue = try await api.issue(number: Int(record.issueNumber), in: run.repo)
            (issueTitle, issueBody) = (issue.title, issue.body)
        } else {
            (issueTitle, issueBody) = (String(record.prompt.split(separator: "\n").first ?? "").trimmingCharacters(in: .whitespaces), nil)
        }
        let conversation = record.isPullRequest ? ((try? await store.conversation(before: record.id)) ?? []) : []
        let ciFailure = run.ciFix.map { PromptBuilder.failingCI($0.failing, headSHA: $0.headSHA, unreadable: $0.unreadable) } ?? ""
        let feedback = ciFailure + (failing.isEmpty ? "" : PromptBuilder.failingChecks(failing.map(\.feedback)))
        var builder = prompts
        builder.maxPromptBytes -= feedback.utf8.count
        let prompt = builder.prompt(for: PromptBuilder.Input(
            kind: record.kind, repositoryFullName: run.repo.fullName, requester: record.requesterLogin,
            issueNumber: record.issueNumber, isPullRequest: record.isPullRequest, instruction: record.prompt,
            issueTitle: issueTitle, issueBody: issueBody,
            conversation: conversation.map { ($0.author ?? $0.role, $0.content) }, baseBranch: plan.baseBranch,
            repositoryInstructions: run.config.instructions)) + feedback
        let again = round > 1 ? " again with the failing checks (round \(round) of \(rounds))" : ""
        let task = ["ASYNCCODE_PROMPT": prompt, "ASYNCCODE_TASK_ID": String(record.id), "ASYNCCODE_TASK_KIND": record.kind.rawValue]
        let result: AgentRunResult
        do {
            let (tokenLimit, timeLimit) = Self.usageLimits(agent: agent, budget: record.budget)
            let cancelRequested = run.cancelRequested
            let secrets = RepositoryCommand.secrets(prepared: prepared, agent: agent, settings: settings)
            if let placement = agent.runner.kubernetes {
                guard let cluster else {
                    throw StepFailure(reason: "agent `\(agent.name)` runs as a Kubernetes Job, but this worker has no cluster settings", retryable: false)
                }
                await progress.step(&run, "Running agent `\(agent.name)`\(again) as a Kubernetes Job in `\(placement.namespace)` (image `\(placement.image)`)")
                let jail = ClusterJail(cluster: cluster, agent: agent, placement: placement, workspace: workspace, taskID: record.id,
                                       logger: run.logger)
                let timeout = min(agent.timeout, timeLimit ?? agent.timeout)
                result = try await run.liveLog.streaming(.agent, redacting: secrets) { observer in
                    try await jail.run(prompt: prompt, environment: ClusterJail.podEnvironment(agent: agent, task: task), timeout: timeout,
                                       cancelRequested: cancelRequested, observer: observer)
                }
            } else {
                let jail = TaskJail(runner: runner, agent: agent, workspace: workspace, taskID: record.id)
                await progress.step(&run, jail.isJailed
                    ? "Running agent `\(agent.name)`\(again) in a bubblewrap jail (network: \(agent.network.rawValue))"
                    : "Running agent `\(agent.name)`\(again), ⚠️ not sandboxed (`sandbox: none`)")
                let environment = jail.environment(task: task)
                result = try await run.liveLog.streaming(.agent, redacting: secrets) { observer in
                    try await jail.run(input: prompt, environment: environment, tokenLimit: tokenLimit, timeLimit: timeLimit,
                                       cancelRequested: cancelRequested, observer: observer)
                }
            }
        } catch is CancelledOnRequest {
            throw CancelledOnRequest()
        } catch let failure as StepFailure {
            throw failure
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // A cluster run fails this way on the database or the cluster's API: its next attempt adopts the Job.
            let clustered = agent.runner.kubernetes != nil
            throw StepFailure(reason: clustered ? "agent `\(agent.name)`'s Kubernetes run failed: \(error)" : "agent `\(agent.name)` could not start: \(error)",
                              retryable: clustered)
        }
        run.agentRounds = round
        return try await conclude(&run, agent: agent, result: result, token: prepared.token, issueTitle: issueTitle)
    }

    /// Charges the run, records its redacted output, counts its ending and throws unless it exited cleanly.
    private func conclude(
        _ run: inout TaskRun, agent: AgentCommand, result: AgentRunResult, token: String, issueTitle: String
    ) async throws -> AgentAnswer {
        run.agentRan = true
        // Every round is charged: the costs and usages add up.
        if let usage = result.usage {
            run.usage = TokenUsage(inputTokens: (run.usage?.inputTokens ?? 0) &+ usage.inputTokens,
                                   outputTokens: (run.usage?.outputTokens ?? 0) &+ usage.outputTokens)
        }
        run.agentCost += agent.pricing.cost(usage: result.usage, duration: result.duration)
        let secrets = [token] + settings.secretValues.values
        let output = SecretRedactor.redact(UsageLine.strip(result.output), also: secrets)
        let tail = SecretRedactor.redact(
            Self.tail(result.errorOutput + (result.errorOutput.isEmpty ? "" : "\n") + UsageLine.strip(result.output)), also: secrets)
        var exitCode: Int?
        if case .exited(let code) = result.ending { exitCode = Int(code) }
        Counter(label: "asynccode_agent_exits_total", dimensions: [("agent", agent.name), ("code", Self.exitLabel(result.ending))],
                factory: settings.metrics)
            .increment()
        try? await store.recordResult(taskID: run.record.id, kind: "agent", content: String(output.prefix(256 * 1024)),
                                      exitCode: exitCode, outputTail: tail)
        switch Self.verdict(result, agent: agent, budget: run.record.budget) {
        case .finished:
            break
        case .cancelled:
            if run.cancelRequested.isSet { throw CancelledOnRequest() }
            throw CancellationError()
        case .failed(let failure, let showsTail):
            if showsTail { run.outputTail = tail }
            throw failure
        }
        run.report.finishRunning(.done)
        return AgentAnswer(summary: output.trimmingCharacters(in: .whitespacesAndNewlines), issueTitle: issueTitle)
    }
}
