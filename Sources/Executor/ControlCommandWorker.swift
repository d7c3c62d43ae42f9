import Accounting
import Commands
import Foundation
import GitHub
import Logging
import Models
import Queue
import ServiceLifecycle

/// Answers control commands: `cancel`, `retry`, `status`, `help`, and commands that could not be read.
/// Only collaborators with write access may use them; others get a polite refusal. Between commands it
/// acknowledges new tasks, so a requester hears back even while every task worker runs a long agent.
public struct ControlCommandWorker<API: GitHubAPI>: Service, CustomStringConvertible {
    let name: String
    let api: API
    let controls: ControlStore
    let store: TaskStore
    let signal: WorkSignal
    let catalog: AgentCatalog
    /// The label that starts a task where `.github/asynccode.yml` names none.
    let triggerLabel: String
    let configs: RepositoryConfigLoader<API>
    /// Gives back the reservations of tasks cancelled before they started (a retried or waiting task holds one).
    let ledger: CreditLedger?
    let access: AccessChecker<API>
    let logger: Logger
    let pollInterval: Duration
    /// Acknowledges new tasks too, so they are answered even while every task worker is busy.
    let acknowledger: (queue: TaskQueue, executor: TaskExecutor<API>)?
    /// The final edit of a task cancelled before it started: finished by ``CommentRepair`` when GitHub refuses it.
    let finalEdits: FinalCommentEdits

    public init(
        name: String, api: API, controls: ControlStore, store: TaskStore, signal: WorkSignal, catalog: AgentCatalog,
        accessCacheDuration: Duration = .seconds(600), triggerLabel: String = "asynccode", ledger: CreditLedger? = nil, logger: Logger,
        pollInterval: Duration = .seconds(5), acknowledging acknowledger: (queue: TaskQueue, executor: TaskExecutor<API>)? = nil,
        pendingComments: PendingCommentStore? = nil
    ) {
        self.finalEdits = FinalCommentEdits(store: pendingComments)
        self.triggerLabel = triggerLabel
        self.ledger = ledger
        self.configs = RepositoryConfigLoader(api: api, store: store, logger: logger)
        self.acknowledger = acknowledger
        self.name = name
        self.api = api
        self.controls = controls
        self.store = store
        self.signal = signal
        self.catalog = catalog
        self.access = AccessChecker(api: api, store: store, cacheDuration: accessCacheDuration, logger: logger)
        self.logger = logger
        self.pollInterval = pollInterval
    }

    public var description: String { "ControlCommandWorker(\(name))" }

    public func run() async throws {
        let stopping = Flag()
        await withGracefulShutdownHandler {
            while !stopping.isSet, !Task.isCancelled {
                let generation = signal.generation
                do {
                    if let control = try await controls.claim(worker: name) {
                        await handle(control)
                        continue
                    }
                    if let (queue, executor) = acknowledger, let taskID = try await queue.claimAcknowledgement(worker: name) {
                        await executor.acknowledge(taskID: taskID, worker: name)
                        continue
                    }
                } catch {
                    logger.error("cannot claim control commands", metadata: ["error": "\(error)"])
                }
                await signal.wait(after: generation, timeout: pollInterval)
            }
        } onGracefulShutdown: {
            stopping.set()
            signal.notify()
        }
    }

    /// Answers one command and records how it went.
    func handle(_ control: ClaimedControl) async {
        var logger = self.logger
        logger[metadataKey: "control.id"] = "\(control.id)"
        logger[metadataKey: "repo.fullName"] = "\(control.ownerLogin)/\(control.repositoryName)"
        let repo = RepositoryRef(owner: control.ownerLogin, name: control.repositoryName, id: control.repositoryGitHubID,
                                 installationID: control.installationGitHubID)
        do {
            if control.verb == .label {
                let result = try await startFromLabel(control, repo: repo)
                try await controls.finish(id: control.id, worker: name, failed: false, result: result)
                return
            }
            let answer = try await answer(control, repo: repo)
            // A task started through the API without an issue has no thread to answer on.
            if control.issueNumber > 0 {
                _ = try await api.createComment(in: repo, issueNumber: Int(control.issueNumber), body: answer)
            }
            try await controls.finish(id: control.id, worker: name, failed: false, result: answer)
        } catch {
            let message = SecretRedactor.redact(String(describing: error))
            if isTransient(error), control.attempt < controls.maxAttempts {
                let delay = Duration.seconds(min(300, 5 << min(control.attempt, 6)))
                try? await controls.postpone(id: control.id, worker: name, delay: delay, error: message)
            } else {
                logger.error("cannot answer a control command", metadata: ["error": "\(message)"])
                try? await controls.finish(id: control.id, worker: name, failed: true, result: message)
            }
        }
    }

    /// Starts a task when the label added is the repository's trigger label (`label` in
    /// `.github/asynccode.yml`, else the bot's); says nothing otherwise: people add labels all day.
    /// Returns what was done, for `control_commands.result`.
    func startFromLabel(_ control: ClaimedControl, repo: RepositoryRef) async throws -> String {
        let (trigger, enabled) = try await trigger(control, repo: repo)
        guard enabled else { return "ignored: asynccode is turned off in this repository" }
        guard control.argument.lowercased() == trigger.lowercased() else {
            return "ignored: `\(control.argument.prefix(100))` is not the trigger label (`\(trigger)`)"
        }
        guard let taskID = try await store.insertLabelTask(controlID: control.id, sourceURL: nil) else {
            return "the label already started a task"
        }
        return "started task \(taskID)"
    }

    /// Returns the repository's trigger label (`label` in a valid `.github/asynccode.yml`, else the bot's
    /// `triggerLabel`) and whether asynccode is enabled there.
    func trigger(_ control: ClaimedControl, repo: RepositoryRef) async throws -> (label: String, enabled: Bool) {
        let branch = try await api.repository(repo).defaultBranch ?? "main"
        let loaded = try await configs.load(repositoryID: control.repositoryID, repo: repo, branch: branch)
        return (loaded.problem == nil ? (loaded.configuration.label ?? triggerLabel) : triggerLabel, loaded.configuration.enabled)
    }

    /// Returns the help text, naming the repository's trigger label.
    func help(_ control: ClaimedControl, repo: RepositoryRef) async throws -> String {
        CommandGrammar.helpText(models: catalog.modelList(), label: try await trigger(control, repo: repo).label)
    }

    /// Does what the command asks and returns the reply.
    func answer(_ control: ClaimedControl, repo: RepositoryRef) async throws -> String {
        let who = "@\(control.requesterLogin)"
        let level = try await access.accessLevel(
            accountID: control.requesterID, login: control.requesterLogin, repositoryID: control.repositoryID, repo: repo)
        guard AccessChecker<API>.writeLevels.contains(level) else {
            let command = control.verb == .invalid ? "/asynccode" : "/asynccode \(control.verb.rawValue)"
            return "Sorry \(who), only collaborators with write access can use `\(command)`."

        }
        let thread = control.isPullRequest ? "pull request" : "issue"
        switch control.verb {
        case .cancel:
            let (cancelled, stopping) = try await store.cancelThread(
                repositoryID: control.repositoryID, issueNumber: control.issueNumber, reason: "cancelled by \(who)")
            for task in cancelled {
                _ = try? await ledger?.release(taskID: task.id, reason: "cancelled before it started")
                guard let commentID = task.progressCommentID else { continue }
                var report = ProgressReport(taskID: task.id, kind: task.kind, requester: control.requesterLogin, agent: task.agent)
                report.state = .cancelled(reason: "\(who) cancelled it before it started")
                let api = self.api
                await finalEdits.deliver(report.render(), commentID: commentID, repo: repo, taskID: task.id, logger: logger) { body in
                    try await api.updateComment(in: repo, commentID: commentID, body: body)
                }
            }
            if cancelled.isEmpty, stopping.isEmpty {
                return "\(who): nothing to cancel, no task of this \(thread) is pending or running."
            }
            var parts: [String] = []
            if !stopping.isEmpty { parts.append("stopping \(Self.list(stopping)) (running)") }
            if !cancelled.isEmpty { parts.append("cancelled \(Self.list(cancelled.map(\.id))) (not started)") }
            return "\(who): " + parts.joined(separator: "; ") + "."
        case .retry:
            guard let taskID = try await store.retryLast(repositoryID: control.repositoryID, issueNumber: control.issueNumber),
                  let record = try await store.record(taskID: taskID) else {
                return "\(who): nothing to retry, no task of this \(thread) failed or was cancelled."
            }
            if let commentID = record.progressCommentID {
                var report = ProgressReport(taskID: taskID, kind: record.kind.rawValue, requester: record.requesterLogin,
                                            agent: record.agent ?? catalog.defaultAgent)
                report.state = .queued(ahead: (try? await store.placeInLine(taskID: taskID)) ?? 0)
                report.details = "\(who) asked to run it again."
                try? await api.updateComment(in: repo, commentID: commentID, body: report.render())
            }
            return "\(who): task \(taskID) is queued again."
        case .status:
            let tasks = try await store.threadTasks(repositoryID: control.repositoryID, issueNumber: control.issueNumber)
            guard !tasks.isEmpty else { return "\(who): this \(thread) has no asynccode tasks yet." }
            var lines = ["Tasks of this \(thread), oldest first:", "", "| Task | Kind | State | Agent | Pull request | Asked |",
                         "|---|---|---|---|---|---|"]
            let formatter = ISO8601DateFormatter()
            for task in tasks {
                var state = task.status
                if let error = task.error, task.status == "failed" || task.status == "cancelled" {
                    state += ": " + String(SecretRedactor.redact(error).prefix(120)).replacingOccurrences(of: "|", with: "/")
                }
                lines.append("| \(task.id) | `\(task.kind)` | \(state) | \(task.agent.map { "`\($0)`" } ?? "default") | "
                    + "\(task.prURL ?? "") | \(formatter.string(from: task.createdAt)) |")
            }
            return lines.joined(separator: "\n")
        case .help:
            return try await help(control, repo: repo)
        case .label:
            return try await startFromLabel(control, repo: repo)
        case .invalid:
            return "\(who): I could not read that command: \(control.argument)\n\n" + (try await help(control, repo: repo))
        }
    }

    static func list(_ ids: [Int64]) -> String {
        (ids.count == 1 ? "task " : "tasks ") + ids.map(String.init).joined(separator: ", ")
    }
}
