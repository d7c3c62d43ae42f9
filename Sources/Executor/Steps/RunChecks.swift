import Foundation
import Models
import Queue

/// Step 7b, after each agent round of the tasks that change code: runs every one of the repository's `checks`
/// (`.github/asynccode.yml`) in the checkout, each with `sh -c` in the agent's jail (``TaskJail``) for at most
/// its timeout, and shows the round as one line of the progress comment ("Checks: tests ✅ 12 s, lint ❌ 3 s ·
/// round 2 of 3"). Returns every check's result; a check passes when it exits 0.
struct RunChecks<API: GitHubAPI>: Sendable {
    let runner: AgentRunner
    let settings: ExecutorSettings
    let progress: TaskProgress<API>

    func callAsFunction(
        _ run: inout TaskRun, agent: AgentCommand, in prepared: PreparedWorkspace, round: Int, of rounds: Int
    ) async throws -> [CheckResult] {
        let jail = TaskJail(runner: runner, agent: agent, workspace: prepared.git, taskID: run.record.id)
        let secrets = RepositoryCommand.secrets(prepared: prepared, agent: agent, settings: settings)
        var results: [CheckResult] = []
        for check in run.config.checks {
            await progress.step(&run, "Running check `\(CheckResult.quoted(check.name))` · round \(round) of \(rounds)")
            do {
                results.append(try await RepositoryCommand.run(name: check.name, command: check.run, timeout: check.timeout, in: jail,
                                                      redacting: secrets, cancelRequested: run.cancelRequested,
                                                      liveLog: run.liveLog, source: .check))
            } catch let stop as CancelledOnRequest {
                throw stop
            } catch let failure as StepFailure {
                throw failure
            } catch {
                results.append(CheckResult(name: check.name, command: check.run, passed: false,
                                           status: "could not start: \(error)", seconds: 0, tail: ""))
            }
            run.report.steps.removeLast()
        }
        let passed = results.allSatisfy(\.passed)
        run.report.record(CheckResult.summaryLine(results, round: round, of: rounds), passed ? .done : .failed)
        try? await progressEvent(run, passed: passed, round: round)
        try? await progress.store.mergeExecutionMetadata(taskID: run.record.id, json: CheckResult.metadataJSON(results, round: round))
        await progress.publish(&run, final: false)
        return results
    }

    private func progressEvent(_ run: TaskRun, passed: Bool, round: Int) async throws {
        try await progress.queue.appendEvent(taskID: run.record.id, step: passed ? "checks passed" : "checks failed",
                                             detail: "round \(round)")
    }
}

/// One run of a repository command in the task's jail, as a ``CheckResult``.
enum RepositoryCommand {
    /// Runs `command`, writing its output as it comes to `liveLog` as `source`'s.
    static func run(
        name: String, command: String, timeout: Int, in jail: TaskJail, redacting secrets: [String], cancelRequested: Flag,
        liveLog: LiveLog, source: LiveLog.Source
    ) async throws -> CheckResult {
        let result = try await liveLog.streaming(source, redacting: secrets) { observer in
            try await jail.shell(command, timeout: .seconds(timeout), cancelRequested: cancelRequested, observer: observer)
        }
        if result.ending == .cancelled, cancelRequested.isSet { throw CancelledOnRequest() }
        let output = result.output + (result.errorOutput.isEmpty ? "" : "\n" + result.errorOutput)
        return CheckResult(name: name, command: command, passed: result.succeeded,
                           status: CheckResult.status(result.ending, timeout: timeout), seconds: result.duration.inSeconds,
                           tail: CheckResult.tail(SecretRedactor.redact(output, also: secrets)))
    }

    /// Returns the values redacted from a command's output: the installation token, the bot's secrets and
    /// the values of the host variables the agent is given.
    static func secrets(prepared: PreparedWorkspace, agent: AgentCommand, settings: ExecutorSettings) -> [String] {
        let host = ProcessInfo.processInfo.environment
        return [prepared.token] + settings.secretValues.values + agent.passEnvironment.compactMap { host[$0] }
    }
}
