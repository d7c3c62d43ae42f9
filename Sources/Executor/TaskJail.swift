#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Queue

/// Runs commands in a task's jail: the agent's own (``Sandbox/command(for:checkout:home:user:)``), with its
/// limits, binds and network, in the checkout, as the task's user when the bot runs as root.
///
/// The agent, the repository's `setup` commands and its `checks` all run through here: the checkout and the
/// agent's home are given to the task's user before a run and the checkout back to the bot after it, however
/// it ends.
struct TaskJail: Sendable {
    let runner: AgentRunner
    /// The agent whose jail, limits and environment allow-list are used.
    let agent: AgentCommand
    let workspace: GitWorkspace
    let taskID: Int64

    /// Whether runs are jailed (`sandbox: bwrap`), not only limited.
    var isJailed: Bool { agent.sandbox == .bwrap }

    /// Returns the environment of a run: the agent's allow-list and `task`'s variables, nothing else.
    func environment(task: [String: String]) -> [String: String] {
        AgentRunner.environment(for: agent, home: isJailed ? Sandbox.homePath : workspace.agentHome, task: task)
    }

    /// Runs `command` (the agent's own when `nil`) in the jail with `input` on standard input, stopped after
    /// `timeout` (the agent's when `nil`) or the usage limits; `observer` sees its output as it streams.
    ///
    /// - Throws: ``StepFailure`` when the user's account files cannot be written; the runner's error when the
    ///   program cannot start; ``CancelledOnRequest`` when the task is cancelled.
    func run(
        _ command: [String]? = nil, input: String, environment: [String: String], timeout: Duration? = nil,
        tokenLimit: Int64? = nil, timeLimit: Duration? = nil, cancelRequested: Flag, observer: OutputObserver? = nil
    ) async throws -> AgentRunResult {
        // An agent that runs as a Kubernetes Job leaves the repository's `setup` and `checks` to the worker's jail.
        if isJailed, agent.runner.kubernetes != nil, let problem = await Sandbox.cachedProblem() {
            throw StepFailure(reason: "the repository's `setup` and `checks` commands run in the worker's bubblewrap jail, which this worker cannot make (\(problem)); give the worker the relaxations deploy/Dockerfile describes, or remove them from `.github/asynccode.yml`",
                              retryable: false)
        }
        var runnable = agent
        if let command { runnable.command = command }
        if let timeout { runnable.timeout = timeout }
        let user = AgentUser.forTask(taskID, accountFiles: workspace.agentAccounts)
        runnable.command = Sandbox.command(for: runnable, checkout: workspace.checkout, home: workspace.agentHome, user: user)
        let jailed = runnable
        let dropsPrivileges = isJailed && Sandbox.runsAsRoot
        if dropsPrivileges {
            do {
                try user.writeAccountFiles(into: workspace.agentAccounts)
            } catch {
                throw StepFailure(reason: "cannot write the agent's passwd and group files in its workspace", retryable: true)
            }
            await Sandbox.chownTree(workspace.checkout, uid: user.id, gid: user.id)
            await Sandbox.chownTree(workspace.agentHome, uid: user.id, gid: user.id)
        }
        let ran: Result<AgentRunResult, any Error>
        do {
            let checkout = workspace.checkout
            ran = .success(try await cancellable(cancelRequested) { [runner] in
                try await runner.run(jailed, prompt: input, workingDirectory: checkout, environment: environment,
                                     tokenLimit: tokenLimit, timeLimit: timeLimit, observer: observer)
            })
        } catch {
            ran = .failure(error)
        }
        // The checkout is the bot's again, however the run ended.
        if dropsPrivileges { await Sandbox.chownTree(workspace.checkout, uid: getuid(), gid: getgid()) }
        return try ran.get()
    }

    /// Runs one shell command of the repository's (`setup` or `checks`) with `sh -c`, its standard error
    /// merged into its output, for at most `timeout`.
    func shell(_ command: String, timeout: Duration, cancelRequested: Flag, observer: OutputObserver? = nil) async throws -> AgentRunResult {
        let environment = environment(task: ["ASYNCCODE_TASK_ID": String(taskID)])
        return try await run(["/bin/sh", "-c", "exec 2>&1\n" + command], input: "", environment: environment,
                             timeout: timeout, cancelRequested: cancelRequested, observer: observer)
    }
}
