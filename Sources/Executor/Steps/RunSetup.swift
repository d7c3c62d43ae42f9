import Models
import Queue
import RepositoryConfiguration

/// Step 7a: runs the repository's `setup` commands (`.github/asynccode.yml`) in the checkout before the agent,
/// each with `sh -c` in the agent's jail (``TaskJail``: its user, environment allow-list and limits) for at most
/// a check's default timeout. The first that fails ends the task, naming the command, its status and the end
/// of its output (redacted); the agent then never runs.
struct RunSetup<API: GitHubAPI>: Sendable {
    let runner: AgentRunner
    let settings: ExecutorSettings
    let progress: TaskProgress<API>

    func callAsFunction(_ run: inout TaskRun, agent: AgentCommand, in prepared: PreparedWorkspace) async throws {
        let jail = TaskJail(runner: runner, agent: agent, workspace: prepared.git, taskID: run.record.id)
        let timeout = RepositoryConfiguration.defaultCheckTimeout
        for command in run.config.setup {
            await progress.step(&run, "Setup: `\(CheckResult.quoted(String(command.prefix(200))))`")
            let result: CheckResult
            do {
                result = try await RepositoryCommand.run(name: "setup", command: command, timeout: timeout, in: jail,
                                                redacting: RepositoryCommand.secrets(prepared: prepared, agent: agent, settings: settings),
                                                cancelRequested: run.cancelRequested, liveLog: run.liveLog, source: .setup)
            } catch let stop as CancelledOnRequest {
                throw stop
            } catch let failure as StepFailure {
                throw failure
            } catch {
                throw StepFailure(reason: "the setup command could not start: \(error)", retryable: false)
            }
            if !result.passed {
                run.report.details = "**Setup output** (last part)\n\n" + ProgressReport.fenced(result.tail.isEmpty ? "(no output)" : result.tail)
                throw StepFailure(reason: "the setup command `\(CheckResult.quoted(String(command.prefix(200))))` "
                    + "(`setup` in `.github/asynccode.yml`) ended with \(result.status); the agent did not run", retryable: false)
            }
        }
    }
}
