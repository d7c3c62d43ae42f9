#if canImport(Glibc)
import Glibc
#endif
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

/// Step 7: builds the prompt (the request, the thread and the repository's instructions, fenced as data),
/// runs the agent in its bubblewrap jail, as its own user when the bot runs as root (the checkout is
/// chowned to it before and back to the bot after, however it ends), records its redacted output and
/// classifies its ending (``AgentVerdict``): only a clean exit goes on to the result.
struct RunAgent<API: GitHubAPI>: Sendable {
    let api: API
    let store: TaskStore
    let runner: AgentRunner
    let prompts: PromptBuilder
    let settings: ExecutorSettings
    let progress: TaskProgress<API>

    func callAsFunction(_ run: inout TaskRun, agent: AgentCommand, plan: WorkPlan, in prepared: PreparedWorkspace) async throws -> AgentAnswer {
        let record = run.record
        let workspace = prepared.git
        let issue = try await api.issue(number: Int(record.issueNumber), in: run.repo)
        let conversation = record.isPullRequest ? ((try? await store.conversation(before: record.id)) ?? []) : []
        let prompt = prompts.prompt(for: PromptBuilder.Input(
            kind: record.kind, repositoryFullName: run.repo.fullName, requester: record.requesterLogin,
            issueNumber: record.issueNumber, isPullRequest: record.isPullRequest, instruction: record.prompt,
            issueTitle: issue.title, issueBody: issue.body,
            conversation: conversation.map { ($0.author ?? $0.role, $0.content) }, baseBranch: plan.baseBranch,
            repositoryInstructions: run.config.instructions))
        let jailed = agent.sandbox == .bwrap
        await progress.step(&run, jailed
            ? "Running agent `\(agent.name)` in a bubblewrap jail (network: \(agent.network.rawValue))"
            : "Running agent `\(agent.name)`, ⚠️ not sandboxed (`sandbox: none`)")
        let environment = AgentRunner.environment(
            for: agent, home: jailed ? Sandbox.homePath : workspace.agentHome,
            task: ["ASYNCCODE_PROMPT": prompt, "ASYNCCODE_TASK_ID": String(record.id), "ASYNCCODE_TASK_KIND": record.kind.rawValue])
        let user = AgentUser.forTask(record.id, accountFiles: workspace.agentAccounts)
        var runnable = agent
        runnable.command = Sandbox.command(for: agent, checkout: workspace.checkout, home: workspace.agentHome, user: user)
        let jailedCommand = runnable
        let dropsPrivileges = jailed && Sandbox.runsAsRoot
        if dropsPrivileges {
            do {
                try user.writeAccountFiles(into: workspace.agentAccounts)
            } catch {
                throw StepFailure(reason: "cannot write the agent's passwd and group files in its workspace", retryable: true)
            }
            await Sandbox.chownTree(workspace.checkout, uid: user.id, gid: user.id)
            await Sandbox.chownTree(workspace.agentHome, uid: user.id, gid: user.id)
        }
        let result: AgentRunResult
        do {
            let (tokenLimit, timeLimit) = Self.usageLimits(agent: agent, budget: record.budget)
            let ran: Result<AgentRunResult, any Error>
            do {
                ran = .success(try await cancellable(run.cancelRequested) { [runner] in
                    try await runner.run(jailedCommand, prompt: prompt, workingDirectory: workspace.checkout, environment: environment,
                                         tokenLimit: tokenLimit, timeLimit: timeLimit)
                })
            } catch {
                ran = .failure(error)
            }
            // The checkout is the bot's again, however the agent ended.
            if dropsPrivileges { await Sandbox.chownTree(workspace.checkout, uid: getuid(), gid: getgid()) }
            result = try ran.get()
        } catch is CancelledOnRequest {
            throw CancelledOnRequest()
        } catch {
            throw StepFailure(reason: "agent `\(agent.name)` could not start: \(error)", retryable: false)
        }
        return try await conclude(&run, agent: agent, result: result, token: prepared.token, issueTitle: issue.title)
    }

    /// Charges the run, records its redacted output, counts its ending and throws unless it exited cleanly.
    private func conclude(
        _ run: inout TaskRun, agent: AgentCommand, result: AgentRunResult, token: String, issueTitle: String
    ) async throws -> AgentAnswer {
        run.agentRan = true
        run.usage = result.usage
        run.agentCost = agent.pricing.cost(usage: result.usage, duration: result.duration)
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
