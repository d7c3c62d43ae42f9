import Accounting
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GitHub
import Logging
import Metrics
import Models
import Queue
import RepositoryConfiguration
import Synchronization

/// Settings of the executor that are not the agents themselves.
public struct ExecutorSettings: Sendable {
    /// Where task workspaces are made (`ASYNCCODE_WORKSPACE_DIR`).
    public var workspaceRoot: String
    /// The commit author: the App's bot account.
    public var botName: String
    public var botEmail: String
    /// How long a collaborator-permission answer is trusted.
    public var accessCacheDuration: Duration = .seconds(600)
    /// How often a running task looks for a `/asynccode cancel`.
    public var cancelPollInterval: Duration = .seconds(1)
    /// Trust roots for git over HTTPS to GitHub Enterprise Server.
    public var caBundlePath: String?
    /// The most bytes of patch kept in `tasks.git_patch`.
    public var patchLimit: Int = 1024 * 1024
    /// The first retry's delay after a transient failure; doubled per attempt, with jitter.
    public var retryBaseDelay: Duration = .seconds(10)
    /// Values never to show in comments or store (the webhook secret, the database password…).
    public var secretValues = SecretValues([])
    /// Where agent exits are counted (`asynccode_agent_exits_total`).
    public var metrics: any MetricsFactory = NOOPMetricsHandler.instance

    public init(workspaceRoot: String, botName: String = "asynccode[bot]", botEmail: String = "asynccode[bot]@users.noreply.github.com") {
        self.workspaceRoot = workspaceRoot
        self.botName = botName
        self.botEmail = botEmail
    }
}

/// The executor's accounting: the credits ledger, the usage limits and `task_analytics`.
public struct ExecutorAccounting: Sendable {
    public var ledger: CreditLedger
    public var gate: UsageGate
    public var analytics: TaskAnalyticsStore
    public var limits: UsageLimits
    /// How long a task held back by `runningTasksPerRepository` waits before it looks again.
    public var deferral: Duration = .seconds(15)

    public init(ledger: CreditLedger, gate: UsageGate, analytics: TaskAnalyticsStore, limits: UsageLimits) {
        self.ledger = ledger
        self.gate = gate
        self.analytics = analytics
        self.limits = limits
    }
}

/// Runs tasks: acknowledge, authorize, token, workspace, agent, result, finish. Every step is appended to
/// `task_events` and shown in the task's one progress comment, which always ends in a final state.
public struct TaskExecutor<API: GitHubAPI>: TaskHandling, CustomStringConvertible {
    let api: API
    let store: TaskStore
    let queue: TaskQueue
    let catalog: AgentCatalog
    let runner: AgentRunner
    let prompts: PromptBuilder
    let settings: ExecutorSettings
    let access: AccessChecker<API>
    let tokens: TokenLeases
    let configs: RepositoryConfigLoader<API>
    let accounting: ExecutorAccounting?
    /// Final progress-comment edits, recorded so that ``CommentRepair`` finishes those GitHub refuses.
    let finalEdits: FinalCommentEdits
    let logger: Logger

    /// Creates an executor; without `accounting` tasks run free and unlimited; without `pendingComments` a
    /// final comment edit GitHub refuses is not repaired later.
    public init(
        api: API, store: TaskStore, queue: TaskQueue, catalog: AgentCatalog, settings: ExecutorSettings,
        runner: AgentRunner = AgentRunner(), prompts: PromptBuilder = PromptBuilder(),
        accounting: ExecutorAccounting? = nil, pendingComments: PendingCommentStore? = nil, logger: Logger
    ) {
        self.accounting = accounting
        self.finalEdits = FinalCommentEdits(store: pendingComments)
        self.api = api
        self.store = store
        self.queue = queue
        self.catalog = catalog
        self.runner = runner
        self.prompts = prompts
        self.settings = settings
        self.access = AccessChecker(api: api, store: store, cacheDuration: settings.accessCacheDuration, logger: logger)
        self.tokens = TokenLeases()
        self.configs = RepositoryConfigLoader(api: api, store: store, logger: logger)
        self.logger = logger
    }

    public var description: String { "TaskExecutor(agents: \(catalog.names))" }

    // MARK: - TaskHandling

    public var acknowledgesTasks: Bool { true }

    public func acknowledge(taskID: Int64, worker: String) async {
        guard let record = try? await store.record(taskID: taskID), record.status == "pending" else {
            try? await queue.abandonAcknowledgement(taskID: taskID, worker: worker, retryAfter: .seconds(5))
            return
        }
        // No comment where GitHub would refuse it: the worker that claims the task ends it.
        guard record.inactivity == nil else {
            try? await queue.abandonAcknowledgement(taskID: taskID, worker: worker, retryAfter: .seconds(60))
            return
        }
        let repo = Self.repositoryRef(record)
        var report = makeReport(record)
        report.state = .queued(ahead: (try? await store.placeInLine(taskID: taskID)) ?? 0)
        do {
            let commentID = try await createProgressComment(record, repo: repo, report: report)
            if try await store.saveProgressComment(taskID: taskID, commentID: commentID) == "cancelled" {
                report.state = .cancelled(reason: "cancelled before it started")
                await finalEdit(report.render(), commentID: commentID, repo: repo, taskID: taskID, logger: logger)
            }
        } catch {
            logger.debug("cannot acknowledge a task yet", metadata: ["task.id": "\(taskID)", "error": "\(error)"])
            try? await queue.abandonAcknowledgement(taskID: taskID, worker: worker, retryAfter: .seconds(60))
        }
    }

    public func finalizeAbandoned(_ task: ReapedTask) async {
        // Our crash, not the agent's doing: the reservation goes back.
        let settlement = try? await accounting?.ledger.release(taskID: task.id, reason: "its worker stopped")
        guard let record = try? await store.record(taskID: task.id) else { return }
        try? await accounting?.analytics.record(TaskAnalytics(
            taskID: task.id, status: task.status, agent: record.agent, executionTime: .zero, usage: nil,
            errorCount: record.attempts, creditsUsed: settlement?.charged ?? 0))
        guard let commentID = record.progressCommentID else { return }
        var report = makeReport(record)
        report.state = task.status == "cancelled"
            ? .cancelled(reason: "a collaborator asked to cancel (`/asynccode cancel`)")
            : .failed(reason: "the worker running it stopped and no attempts remain")
        if let settlement { report.credits = Self.creditsLine(settlement) }
        await finalEdit(report.render(), commentID: commentID, repo: Self.repositoryRef(record), taskID: task.id, logger: logger)
    }

    public func handle(_ task: ClaimedTask) async -> TaskOutcome {
        var logger = self.logger
        logger[metadataKey: "task.id"] = "\(task.id)"
        let record: TaskRecord
        do {
            guard let found = try await store.record(taskID: task.id) else {
                return .failed(reason: "the task is gone from the database", retryable: false, retryAfter: .zero)
            }
            record = found
        } catch {
            return .failed(reason: "cannot read the task: \(error)", retryable: true, retryAfter: .seconds(5))
        }
        logger[metadataKey: "repo.fullName"] = "\(record.ownerLogin)/\(record.repositoryName)"
        if let inactivity = record.inactivity { return await stopInactive(record, inactivity, logger: logger) }
        let repo = Self.repositoryRef(record)
        let cancelRequested = Flag()
        let runLogger = logger
        await tokens.acquire(repo)
        let outcome = await withTaskGroup(of: TaskOutcome?.self) { group in
            group.addTask {
                var run = TaskRun(record: record, task: task, repo: repo, report: makeReport(record),
                                  commentID: record.progressCommentID, cancelRequested: cancelRequested, logger: runLogger)
                return await execute(&run)
            }
            group.addTask {
                await watchForCancel(taskID: task.id, flag: cancelRequested)
                return nil
            }
            defer { group.cancelAll() }
            while let result = await group.next() {
                if let result { return result }
            }
            return .interrupted
        }
        if await tokens.release(repo), !Task.isCancelled {
            do {
                try await api.revokeInstallationToken(for: repo)
            } catch {
                logger.debug("cannot revoke the installation token", metadata: ["error": "\(error)"])
            }
        }
        return outcome
    }

    // MARK: - The steps

    /// A task's run: what the steps share.
    struct TaskRun {
        var record: TaskRecord
        var task: ClaimedTask
        var repo: RepositoryRef
        var report: ProgressReport
        var commentID: Int64?
        let cancelRequested: Flag
        var logger: Logger
        let started = ContinuousClock.now
        var outputTail: String?
        /// Whether the agent ran (its cost is then the agent's to settle, not ours to release).
        var agentRan = false
        var agentCost: Decimal = 0
        var usage: TokenUsage?
        var files: [ChangedFile] = []
        /// The repository's `.github/asynccode.yml` (the defaults until it is read).
        var config = RepositoryConfiguration()
    }

    /// The task waits: a limit holds it back for now.
    struct Deferred: Error {
        var reason: String
        /// When the limit frees the task; `nil`: it looks again after ``ExecutorAccounting/deferral``.
        var until: Date? = nil
    }

    /// Ends a task whose installation or repository takes no work any more (a race with the event that
    /// said so, or a task given back to the queue since): `cancelled`, its reservation returned, and no call
    /// to GitHub, which would refuse it.
    private func stopInactive(_ record: TaskRecord, _ inactivity: Inactivity, logger: Logger) async -> TaskOutcome {
        do {
            try await accounting?.ledger.release(taskID: record.id, reason: inactivity.reason)
        } catch {
            logger.error("cannot release the task's credits", metadata: ["error": "\(error)"])
        }
        try? await queue.appendEvent(taskID: record.id, step: "cancelled", detail: inactivity.reason)
        logger.notice("cancelled a task that can no longer run", metadata: ["reason": "\(inactivity.reason)"])
        return .cancelled(reason: inactivity.reason)
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

    /// The task was cancelled on request.
    struct CancelledOnRequest: Error {}

    private func execute(_ run: inout TaskRun) async -> TaskOutcome {
        do {
            return try await steps(&run)
        } catch is CancelledOnRequest {
            return await finishCancelled(&run)
        } catch let deferred as Deferred {
            return await finishDeferred(&run, deferred)
        } catch {
            if run.cancelRequested.isSet { return await finishCancelled(&run) }
            if Task.isCancelled { return .interrupted }
            let failure = error as? StepFailure ?? StepFailure(
                reason: Self.oneLine(String(describing: error)), retryable: isTransient(error),
                retryAfter: (error as? GitHubError)?.retryAfter)
            return await finishFailed(&run, failure)
        }
    }

    private func steps(_ run: inout TaskRun) async throws -> TaskOutcome {
        let record = run.record
        // 1. Acknowledge (when the acknowledgement pass did not).
        if run.commentID == nil {
            let commentID = try await createProgressComment(record, repo: run.repo, report: run.report)
            run.commentID = commentID
            _ = try await store.saveProgressComment(taskID: record.id, commentID: commentID)
        }
        run.report.state = .working
        run.report.record("Acknowledged")
        // 2. Authorize.
        await step(&run, "Checking @\(record.requesterLogin)'s permission")
        let level = try await access.accessLevel(
            accountID: record.requesterID, login: record.requesterLogin, repositoryID: record.repositoryID, repo: run.repo)
        guard AccessChecker<API>.writeLevels.contains(level) else {
            throw StepFailure(reason: "not permitted: @\(record.requesterLogin) has \(level) access", retryable: false,
                              state: .notPermitted)
        }
        // The repository's own settings.
        let config = try await repositoryConfig(&run)
        run.config = config
        guard config.enabled else {
            let reason = "asynccode is turned off in this repository (`enabled: false` in `\(RepositoryConfiguration.path)`)"
            throw StepFailure(reason: reason, retryable: false, state: .notStarted(reason: reason))
        }
        let requested = record.agent ?? config.defaultAgent
        guard let agent = catalog.agent(named: requested) else {
            let known = catalog.names.compactMap { catalog.agents[$0] }
                .map { "`\($0.name)`" + ($0.displayName == $0.name ? "" : " (\($0.displayName))") }.joined(separator: ", ")
            let reason = requested.map { "there is no agent `\($0)`; the agents are: \(known.isEmpty ? "none" : known)" }
                ?? "no agent is configured (set `agents` and `defaultAgent` in the ASYNCCODE_CONFIG file)"
            throw StepFailure(reason: reason, retryable: false)
        }
        if let allowed = config.allowedAgents, !allowed.contains(where: { $0.lowercased() == agent.name.lowercased() }) {
            throw StepFailure(
                reason: "agent `\(agent.name)` is not allowed in this repository (`allowedAgents` in `\(RepositoryConfiguration.path)`: "
                    + allowed.map { "`\($0)`" }.joined(separator: ", ") + ")", retryable: false)
        }
        run.report.agent = agent.name
        // The tasks row names the agent that runs, the default one included (`status`, analytics).
        if record.agent != agent.name {
            try await store.recordAgent(taskID: record.id, agent: agent.name)
            run.record.agent = agent.name
        }
        try await admit(&run, agent: agent)
        // Where the work starts and goes (a fork's branch or `review` on an issue is refused here, before any clone).
        let plan = try await workPlan(&run)
        // 3. Token.
        await step(&run, "Getting an installation token for \(run.repo.fullName)")
        let token = try await api.installationToken(for: run.repo)
        // 4. Workspace.
        let workspace: GitWorkspace
        do {
            workspace = try GitWorkspace.create(in: settings.workspaceRoot, taskID: record.id, caBundlePath: settings.caBundlePath)
        } catch {
            throw StepFailure(reason: "cannot create a workspace under \(settings.workspaceRoot)", retryable: true)
        }
        // Removed on every way out; the walk runs off the event loops, and whether or not the task was cancelled.
        do {
            let outcome = try await steps(&run, in: workspace, plan: plan, token: token, agent: agent, config: config)
            await workspace.remove()
            return outcome
        } catch {
            await workspace.remove()
            throw error
        }
    }

    /// The steps from the clone on, in `workspace`.
    private func steps(
        _ run: inout TaskRun, in workspace: GitWorkspace, plan: WorkPlan, token: String, agent: AgentCommand,
        config: RepositoryConfiguration
    ) async throws -> TaskOutcome {
        let record = run.record
        await step(&run, "Cloning `\(plan.cloneBranch)`")
        try await cancellable(run.cancelRequested) {
            try await workspace.clone(url: plan.cloneURL, branch: plan.cloneBranch, token: token)
            if record.kind == .review, plan.baseBranch != plan.cloneBranch {
                try await workspace.fetch(url: plan.cloneURL, branch: plan.baseBranch, token: token)
            }
        }
        if plan.pushes, !plan.followUp { try await workspace.createBranch(plan.workBranch) }
        // The agent works on a copy of the repository; the bot's own stays outside the jail.
        try await workspace.giveAgentItsRepository()
        // 5. Agent.
        let issue = try await api.issue(number: Int(record.issueNumber), in: run.repo)
        let conversation = record.isPullRequest ? ((try? await store.conversation(before: record.id)) ?? []) : []
        let prompt = prompts.prompt(for: PromptBuilder.Input(
            kind: record.kind, repositoryFullName: run.repo.fullName, requester: record.requesterLogin,
            issueNumber: record.issueNumber, isPullRequest: record.isPullRequest, instruction: record.prompt,
            issueTitle: issue.title, issueBody: issue.body,
            conversation: conversation.map { ($0.author ?? $0.role, $0.content) }, baseBranch: plan.baseBranch,
            repositoryInstructions: config.instructions))
        let jailed = agent.sandbox == .bwrap
        await step(&run, jailed
            ? "Running agent `\(agent.name)` in a bubblewrap jail (network: \(agent.network.rawValue))"
            : "Running agent `\(agent.name)`, ⚠️ not sandboxed (`sandbox: none`)")
        let environment = AgentRunner.environment(
            for: agent, home: jailed ? Sandbox.homePath : workspace.agentHome,
            task: ["ASYNCCODE_PROMPT": prompt, "ASYNCCODE_TASK_ID": String(record.id), "ASYNCCODE_TASK_KIND": record.kind.rawValue])
        let user = AgentUser.forTask(record.id, accountFiles: workspace.agentAccounts)
        let runnable = { () -> AgentCommand in
            var wrapped = agent
            wrapped.command = Sandbox.command(for: agent, checkout: workspace.checkout, home: workspace.agentHome, user: user)
            return wrapped
        }()
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
                ran = .success(try await cancellable(run.cancelRequested) {
                    try await runner.run(runnable, prompt: prompt, workingDirectory: workspace.checkout, environment: environment,
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
        run.agentRan = true
        run.usage = result.usage
        run.agentCost = agent.pricing.cost(usage: result.usage, duration: result.duration)
        let secrets = [token] + settings.secretValues.values
        let output = SecretRedactor.redact(UsageLine.strip(result.output), also: secrets)
        let tail = SecretRedactor.redact(
            Self.tail(result.errorOutput + (result.errorOutput.isEmpty ? "" : "\n") + UsageLine.strip(result.output)), also: secrets)
        var exitCode: Int?
        if case .exited(let code) = result.ending { exitCode = Int(code) }
        let ending: String = switch result.ending {
        case .exited(let code): String(code)
        case .signalled(let signal): "signal_\(signal)"
        case .timedOut: "timeout"
        case .cancelled: "cancelled"
        case .overBudget: "over_budget"
        }
        Counter(label: "asynccode_agent_exits_total", dimensions: [("agent", agent.name), ("code", ending)], factory: settings.metrics)
            .increment()
        try? await store.recordResult(taskID: record.id, kind: "agent", content: String(output.prefix(256 * 1024)),
                                      exitCode: exitCode, outputTail: tail)
        switch result.ending {
        case .cancelled:
            if run.cancelRequested.isSet { throw CancelledOnRequest() }
            throw CancellationError()
        case .timedOut:
            run.outputTail = tail
            let seconds = Int(agent.timeout.components.seconds)
            throw StepFailure(reason: "the agent timed out after \(seconds) s", retryable: false, state: .timedOut(seconds: seconds),
                              agentsFault: true)
        case .overBudget:
            throw StepFailure(reason: Self.overBudgetReason(agent: agent, budget: record.budget, usage: result.usage),
                              retryable: false, agentsFault: true)
        case .signalled(let signal):
            run.outputTail = tail
            throw StepFailure(reason: "agent `\(agent.name)` was killed by signal \(signal)"
                + Self.limitHit(agent.limits, signal: signal, errorOutput: result.errorOutput), retryable: false, agentsFault: true)
        case .exited(let code) where code != 0:
            run.outputTail = tail
            throw StepFailure(reason: "agent `\(agent.name)` exited with code \(code)"
                + Self.limitHit(agent.limits, signal: code > 128 ? code - 128 : nil, errorOutput: result.errorOutput), retryable: false,
                agentsFault: true)
        case .exited:
            break
        }
        let summary = output.trimmingCharacters(in: .whitespacesAndNewlines)
        run.report.finishRunning(.done)
        // 6. Result.
        switch record.kind {
        case .ask, .plan:
            run.report.details = (record.kind == .ask ? "**Answer**\n\n" : "**Plan**\n\n")
                + (summary.isEmpty ? "_The agent printed nothing._" : summary)
            try? await store.appendChatMessage(taskID: record.id, ChatMessage(role: "assistant", content: summary, author: "asynccode"))
            return await finishCompleted(&run)
        case .review:
            guard let pullNumber = plan.pullNumber else {
                throw StepFailure(reason: "`review` works on pull requests; this is an issue", retryable: false)
            }
            await step(&run, "Posting the review")
            try await api.createReview(in: run.repo, pullNumber: pullNumber,
                                       body: summary.isEmpty ? "The agent found nothing to say." : PromptBuilder.capped(summary, bytes: 60_000))
            run.report.details = "Posted the review on #\(pullNumber)."
            try? await store.appendChatMessage(taskID: record.id, ChatMessage(role: "assistant", content: summary, author: "asynccode"))
            return await finishCompleted(&run)
        case .code, .docs, .debug:
            return try await publishChanges(&run, workspace: workspace, plan: plan, token: token, summary: summary, issueTitle: issue.title)
        }
    }

    // MARK: - Repository settings

    /// Reads the repository's `.github/asynccode.yml`; an invalid file gets one comment on the thread (per
    /// commit) that names the line and the problem, and the defaults apply.
    private func repositoryConfig(_ run: inout TaskRun) async throws -> RepositoryConfiguration {
        let record = run.record
        var branch = record.defaultBranch
        if branch == nil { branch = try await api.repository(run.repo).defaultBranch }
        let loaded = try await configs.load(repositoryID: record.repositoryID, repo: run.repo, branch: branch ?? "main")
        if let problem = loaded.problem {
            run.report.record("`\(RepositoryConfiguration.path)` is invalid (\(problem)); using the defaults", .failed)
            if (try? await store.claimConfigWarning(
                repositoryID: record.repositoryID, commit: loaded.commit, issueNumber: record.issueNumber)) == true {
                let body = Self.configWarning(problem, commit: loaded.commit, repo: run.repo)
                do {
                    _ = try await api.createComment(in: run.repo, issueNumber: Int(record.issueNumber), body: body)
                } catch {
                    try? await store.releaseConfigWarning(
                        repositoryID: record.repositoryID, commit: loaded.commit, issueNumber: record.issueNumber)
                }
            }
        }
        return loaded.configuration
    }

    /// Returns the comment about an invalid `.github/asynccode.yml`.
    static func configWarning(_ problem: RepositoryConfigurationError, commit: String, repo: RepositoryRef) -> String {
        """
        ⚠️ **asynccode**: `\(RepositoryConfiguration.path)` at \(commit.prefix(7)) cannot be used: \(problem).

        asynccode goes on with the default settings until the file on the default branch is fixed.
        """
    }

    // MARK: - Credits and limits

    /// Admits the task past the usage limits, then reserves its credits. A task over a limit waits: it goes
    /// back to the queue until the limit frees it, holding no reservation (so waiting tasks never use up
    /// the daily limit of the others), and starts by itself then. A task that can never fit (its estimate
    /// is over the daily limit), or that the account cannot pay for, is refused at once with what would fit.
    private func admit(_ run: inout TaskRun, agent: AgentCommand) async throws {
        guard let accounting else { return }
        let record = run.record
        let limits = accounting.limits
        let accountID = try await accounting.ledger.payingAccount(taskID: record.id)
        let estimate = agent.pricing.estimate(timeout: agent.timeout, budget: record.budget)
        if accountID != nil, let daily = limits.creditsPerAccountPerDay, estimate > daily {
            let reason = "this task may use up to \(CreditFormat.string(estimate)) credits, more than \(run.repo.owner) may spend in a day "
                + "(limit `creditsPerAccountPerDay: \(CreditFormat.string(daily))`). Ask with `--budget \(CreditFormat.string(daily))` or less."
            throw StepFailure(reason: reason, retryable: false, state: .notStarted(reason: reason))
        }
        switch try await accounting.gate.admit(
            taskID: record.id, requesterID: record.requesterID, repositoryID: record.repositoryID, limits: limits) {
        case .admitted:
            break
        case .repositoryBusy(let running, let limit):
            throw Deferred(reason: "\(run.repo.fullName) already runs \(running) task\(running == 1 ? "" : "s"), "
                + "the most it may (limit `runningTasksPerRepository: \(limit)`); this one starts when one of them ends.")
        case .requesterHourly(let limit, let freesAt):
            throw Deferred(reason: "\(limit) task\(limit == 1 ? "" : "s") an hour for @\(record.requesterLogin) "
                + "(limit `tasksPerRequesterPerHour: \(limit)`)", until: freesAt)
        }
        guard let accountID else { return }
        switch try await accounting.ledger.reserve(
            taskID: record.id, accountID: accountID, amount: estimate, dailyLimit: limits.creditsPerAccountPerDay) {
        case .reserved(let amount, let balance):
            if amount > 0 {
                run.report.record("Reserved \(CreditFormat.string(amount)) credits (\(CreditFormat.string(balance)) left)")
            }
        case .insufficient(let needed, let balance):
            // Not started: it does not count toward the requester's hourly limit.
            try await accounting.gate.withdraw(taskID: record.id)
            let reason = "not enough credits: this task may use up to \(CreditFormat.string(needed)) credits"
                + (record.budget == nil ? " (agent `\(agent.name)`)" : " (its `--budget`)")
                + " and \(run.repo.owner) has \(CreditFormat.string(balance)) left. "
                + (record.budget == nil && balance > 0 ? "Ask with `--budget \(CreditFormat.string(balance))` or less, or ask an operator to add credits." : "Ask an operator to add credits (`asynccode credits grant`).")
            throw StepFailure(reason: reason, retryable: false, state: .notStarted(reason: reason))
        case .dailyLimit(let limit, let used, let freesAt):
            try await accounting.gate.withdraw(taskID: record.id)
            throw Deferred(reason: "\(CreditFormat.string(limit)) credits a day for \(run.repo.owner) (limit `creditsPerAccountPerDay: "
                + "\(CreditFormat.string(limit))`); \(CreditFormat.string(used)) used in the last 24 hours and this task may need "
                + "\(CreditFormat.string(estimate))", until: freesAt)
        }
    }

    /// Returns the token and time limits a run gets from the agent's `maxTokens` and the task's budget.
    static func usageLimits(agent: AgentCommand, budget: Decimal?) -> (tokens: Int64?, time: Duration?) {
        var tokens = agent.pricing.maxTokens.map(Int64.init)
        var time: Duration?
        if let budget {
            if agent.pricing.costPerToken > 0 {
                let affordable = NSDecimalNumber(decimal: budget / agent.pricing.costPerToken).int64Value
                tokens = min(tokens ?? .max, max(0, affordable))
            } else if agent.pricing.costPerMinute > 0 {
                let minutes = NSDecimalNumber(decimal: budget / agent.pricing.costPerMinute).doubleValue
                time = .milliseconds(Int64(max(0, minutes) * 60_000))
            }
        }
        return (tokens, time)
    }

    static func overBudgetReason(agent: AgentCommand, budget: Decimal?, usage: TokenUsage?) -> String {
        let used = usage.map { " after reporting \($0.total) tokens" } ?? ""
        if let budget {
            return "the agent was stopped\(used): it passed the task's budget of \(CreditFormat.string(budget)) credits (`--budget`); nothing was pushed"
        }
        return "the agent was stopped\(used): it passed its limit of \(agent.pricing.maxTokens ?? 0) tokens (`maxTokens`); nothing was pushed"
    }

    /// Returns "14:05 UTC (in 12 min)" (with the date when it is not today, in UTC).
    static func when(_ date: Date) -> String {
        let utc = TimeZone(identifier: "UTC") ?? TimeZone(secondsFromGMT: 0) ?? .current
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = utc
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = utc
        formatter.dateFormat = calendar.isDate(date, inSameDayAs: Date()) ? "HH:mm" : "yyyy-MM-dd HH:mm"
        let minutes = max(1, Int((date.timeIntervalSinceNow / 60).rounded(.up)))
        let wait = minutes < 120 ? "\(minutes) min" : "\(minutes / 60) h \(minutes % 60) min"
        return "\(formatter.string(from: date)) UTC (in \(wait))"
    }

    /// Where the work starts and where it goes.
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

    private func workPlan(_ run: inout TaskRun) async throws -> WorkPlan {
        let record = run.record
        // What can be refused without the code is refused before anything is cloned or run.
        if record.kind == .review, !record.isPullRequest {
            let reason = "`review` works on pull requests and this is an issue; ask for it on the pull request"
            throw StepFailure(reason: reason, retryable: false, state: .notStarted(reason: reason))
        }
        var cloneURL = record.cloneURL
        var defaultBranch = record.defaultBranch
        if cloneURL == nil || (defaultBranch == nil && record.targetBranch == nil && !record.isPullRequest) {
            let repository = try await api.repository(run.repo)
            cloneURL = cloneURL ?? repository.cloneUrl
            defaultBranch = defaultBranch ?? repository.defaultBranch
        }
        guard let cloneURL else { throw StepFailure(reason: "GitHub gave no clone URL for \(run.repo.fullName)", retryable: false) }
        let pushes = [.code, .docs, .debug].contains(record.kind)
        if record.isPullRequest {
            let pull = try await api.pullRequest(number: Int(record.issueNumber), in: run.repo)
            let sameRepository = pull.head.label.map { $0.lowercased().hasPrefix(run.repo.owner.lowercased() + ":") } ?? true
            if pushes, !sameRepository {
                // Policy: commits go to branches of this repository only, never to a fork's (README, "Follow-ups").
                let owner = pull.head.label?.split(separator: ":").first.map { "`\($0)`'s fork" } ?? "a fork"
                let reason = "asynccode cannot push to forks: this pull request's branch is in \(owner). "
                    + "`ask`, `plan` and `review` work here; for changes, ask on an issue or on a pull request from a branch of "
                    + "\(run.repo.fullName)"
                throw StepFailure(reason: reason, retryable: false, state: .notStarted(reason: reason))
            }
            if pushes, pull.state != "open" {
                throw StepFailure(reason: "the pull request is \(pull.state); reopen it first", retryable: false)
            }
            return WorkPlan(cloneURL: cloneURL, cloneBranch: sameRepository ? pull.head.ref : pull.base.ref,
                            baseBranch: pull.base.ref, workBranch: pull.head.ref, followUp: true, pullNumber: pull.number,
                            pullURL: pull.htmlUrl, pushes: pushes)
        }
        let base = record.targetBranch ?? defaultBranch ?? "main"
        var branch = record.prBranch
        if branch == nil, pushes {
            var candidate = Self.branchName(prefix: run.config.branchPrefix, issueNumber: record.issueNumber, text: record.prompt)
            if try await store.isBranchTaken(repositoryID: record.repositoryID, branch: candidate, exceptTaskID: record.id) {
                candidate += "-t\(record.id)"
            }
            branch = try await store.assignBranch(taskID: record.id, branch: candidate)
        }
        return WorkPlan(cloneURL: cloneURL, cloneBranch: base, baseBranch: base, workBranch: branch ?? base,
                        followUp: false, pullNumber: nil, pullURL: nil, pushes: pushes)
    }

    private func publishChanges(
        _ run: inout TaskRun, workspace: GitWorkspace, plan: WorkPlan, token: String, summary: String, issueTitle: String
    ) async throws -> TaskOutcome {
        let record = run.record
        await step(&run, "Committing the changes")
        // Nothing the agent left under a `.git` is read: its repositories go, and the bot's own git directory,
        // which the agent never saw, stages the checkout's files against the commit the bot checked out.
        let discarded = try await workspace.discardAgentRepositories()
        if !discarded.isEmpty {
            run.logger.info("removed what the agent left under .git", metadata: [
                "workspace.removed": "\(discarded.prefix(20).joined(separator: ", "))", "workspace.removedCount": "\(discarded.count)"])
        }
        let files = try await workspace.stageAll()
        run.files = files
        let protected = run.config.protectedChanges(in: files.map(\.path))
        if !protected.isEmpty {
            let listed = protected.prefix(20).map { "`\($0.replacingOccurrences(of: "`", with: "'"))`" }.joined(separator: ", ")
                + (protected.count > 20 ? " and \(protected.count - 20) more" : "")
            throw StepFailure(
                reason: "the agent changed protected paths (`protectedPaths` in `\(RepositoryConfiguration.path)`): \(listed); nothing was pushed",
                retryable: false, agentsFault: true)
        }
        if files.isEmpty {
            run.report.finishRunning(.skipped)
            run.report.details = "The agent changed nothing, so there is nothing to push"
                + (plan.followUp ? "." : " and no pull request.")
                + (summary.isEmpty ? "" : "\n\n**Agent's summary**\n\n" + summary)
            try? await store.appendChatMessage(taskID: record.id, ChatMessage(role: "assistant", content: summary, author: "asynccode"))
            return await finishCompleted(&run)
        }
        let title = Self.title(instruction: record.prompt, issueTitle: issueTitle)
        let coauthor = "\(record.requesterLogin) <\(record.requesterGitHubID)+\(record.requesterLogin)@users.noreply.github.com>"
        let message = "\(title)\n\nAsked by @\(record.requesterLogin) in #\(record.issueNumber) (asynccode task \(record.id)).\n\nCo-authored-by: \(coauthor)\n"
        let diffStat = try await workspace.stagedDiffStat()
        let patch = SecretRedactor.redact(try await workspace.stagedPatch(limit: settings.patchLimit), also: [token] + settings.secretValues.values)
        let hash = try await workspace.commit(message: message, authorName: settings.botName, authorEmail: settings.botEmail)
        let filesJSON = (try? String(decoding: JSONEncoder().encode(files), as: UTF8.self)) ?? "[]"
        if run.cancelRequested.isSet { throw CancelledOnRequest() }
        await step(&run, "Pushing `\(plan.workBranch)`")
        try await cancellable(run.cancelRequested) {
            try await workspace.push(url: plan.cloneURL, branch: plan.workBranch, token: token, force: !plan.followUp)
        }
        try await store.recordCommit(taskID: record.id, commit: CommitRecord(
            hash: hash, branch: plan.workBranch, diffStat: diffStat, patch: patch, changedFilesJSON: filesJSON))
        let additions = files.reduce(0) { $0 + $1.additions }
        let deletions = files.reduce(0) { $0 + $1.deletions }
        var pullNumber = plan.pullNumber
        var pullURL = plan.pullURL
        if !plan.followUp {
            await step(&run, "Opening the pull request")
            let body = Self.pullRequestBody(
                summary: summary, record: record, files: files, agent: run.report.agent ?? "")
            let existing = try await api.openPullRequests(in: run.repo, head: "\(run.repo.owner):\(plan.workBranch)")
            let pull: PullRequest
            if let reused = existing.first {
                pull = reused
            } else {
                pull = try await api.openPullRequest(in: run.repo, title: title, head: plan.workBranch, base: plan.baseBranch,
                                                       body: body, draft: run.config.draft)
                var reviewers: [String] = []
                for login in [record.requesterLogin] + run.config.reviewers
                where !reviewers.contains(where: { $0.lowercased() == login.lowercased() }) && !login.hasSuffix("[bot]") {
                    reviewers.append(login)
                }
                for reviewer in reviewers {
                    do {
                        try await api.requestReview(in: run.repo, pullNumber: pull.number, from: reviewer)
                    } catch {
                        run.logger.debug("cannot request a review", metadata: ["error": "\(error)", "reviewer": "\(reviewer)"])
                    }
                }
            }
            pullNumber = pull.number
            pullURL = pull.htmlUrl
            try await store.recordPullRequest(
                taskID: record.id, repositoryID: record.repositoryID, githubID: pull.id, number: Int64(pull.number),
                title: pull.title, body: pull.body, sourceBranch: plan.workBranch, targetBranch: plan.baseBranch, url: pull.htmlUrl)
        } else if let pullNumber {
            try? await store.recordPullRequestLink(taskID: record.id, number: Int64(pullNumber), url: pullURL)
        }
        let link = pullNumber.map { number in pullURL.map { "[#\(number)](\($0))" } ?? "#\(number)" } ?? "`\(plan.workBranch)`"
        let duration = ProgressReport.duration(seconds: (ContinuousClock.now - run.started).inSeconds)
        var details = plan.followUp
            ? "Pushed \(String(hash.prefix(7))) to \(link)."
            : "Opened \(link)."
        details += "\n\n| Files changed | Lines | Duration | Agent |\n|---|---|---|---|\n"
        details += "| \(files.count) | +\(additions) −\(deletions) | \(duration) | `\(run.report.agent ?? "")` |"
        if !summary.isEmpty { details += "\n\n**Agent's summary**\n\n" + PromptBuilder.capped(summary, bytes: 20_000) }
        run.report.details = details
        try? await store.appendChatMessage(taskID: record.id, ChatMessage(role: "assistant", content: summary, author: "asynccode"))
        return await finishCompleted(&run)
    }

    // MARK: - Endings

    private func finishCompleted(_ run: inout TaskRun) async -> TaskOutcome {
        run.report.finishRunning(.done)
        run.report.state = .completed
        if run.report.details?.contains("| Duration |") != true {
            let duration = ProgressReport.duration(seconds: (ContinuousClock.now - run.started).inSeconds)
            run.report.details = (run.report.details.map { $0 + "\n\n" } ?? "") + "Took \(duration)."
        }
        try? await queue.appendEvent(taskID: run.record.id, step: "completed")
        await closeAccounts(&run, status: "completed", paid: true, errors: run.task.attempt - 1)
        await publish(&run, final: true)
        return .completed
    }

    /// Settles the task's reservation (`paid`: the agent ran and its run is charged) or releases it, records
    /// `task_analytics`, and puts the credits used and left in the report.
    private func closeAccounts(_ run: inout TaskRun, status: String, paid: Bool, errors: Int) async {
        guard let accounting else { return }
        let id = run.record.id
        let settlement: Settlement?
        do {
            settlement = paid && run.agentRan
                ? try await accounting.ledger.settle(taskID: id, cost: run.agentCost)
                : try await accounting.ledger.release(taskID: id, reason: status == "cancelled" ? "cancelled before the agent ran" : "a failure that was not the agent's")
        } catch {
            run.logger.error("cannot settle the task's credits", metadata: ["error": "\(error)"])
            settlement = nil
        }
        if let settlement {
            run.report.credits = Self.creditsLine(settlement)
            FloatingPointCounter(label: "asynccode_credits_spent_total", dimensions: [("agent", run.report.agent ?? "default")],
                                 factory: settings.metrics)
                .increment(by: NSDecimalNumber(decimal: settlement.charged).doubleValue)
        }
        do {
            try await accounting.analytics.record(TaskAnalytics(
                taskID: id, status: status, agent: run.report.agent, executionTime: ContinuousClock.now - run.started,
                usage: run.usage, linesAdded: run.files.reduce(0) { $0 + $1.additions },
                linesDeleted: run.files.reduce(0) { $0 + $1.deletions }, filesModified: run.files.count,
                errorCount: max(0, errors), creditsUsed: settlement?.charged ?? 0))
        } catch {
            run.logger.error("cannot record the task's analytics", metadata: ["error": "\(error)"])
        }
    }

    /// Returns the report's credits line.
    static func creditsLine(_ settlement: Settlement) -> String {
        "🪙 Credits: \(CreditFormat.string(settlement.charged)) used · \(CreditFormat.string(settlement.balance)) left"
    }

    /// Holds the task back: the comment says why and until when, and the task goes back to the queue until
    /// then (without counting the attempt). A waiting task holds no credits: a reservation an earlier attempt
    /// made goes back.
    private func finishDeferred(_ run: inout TaskRun, _ deferred: Deferred) async -> TaskOutcome {
        do {
            try await accounting?.ledger.release(taskID: run.record.id, reason: "waiting for a usage limit")
        } catch {
            run.logger.error("cannot release the credits of a waiting task", metadata: ["error": "\(error)"])
        }
        run.report.finishRunning(.skipped)
        var retryAfter = accounting?.deferral ?? .seconds(15)
        if let until = deferred.until {
            run.report.state = .waitingUntil(Self.when(until), reason: deferred.reason)
            // A second late rather than early: the limit has freed the task when it looks again.
            retryAfter = .milliseconds(Int64(max(1, until.timeIntervalSinceNow + 1) * 1000))
        } else {
            run.report.state = .waiting(reason: deferred.reason)
        }
        try? await queue.appendEvent(taskID: run.record.id, step: "deferred", detail: deferred.reason)
        await publish(&run, final: false)
        return .deferred(retryAfter: retryAfter)
    }

    private func finishFailed(_ run: inout TaskRun, _ failure: StepFailure) async -> TaskOutcome {
        let reason = SecretRedactor.redact(failure.reason)
        let willRetry = failure.retryable && run.task.attempt < run.task.maxAttempts
        run.report.finishRunning(.failed)
        if willRetry {
            run.report.state = .retrying(attempt: run.task.attempt, of: run.task.maxAttempts, reason: reason)
        } else {
            run.report.state = failure.state ?? .failed(reason: reason)
            run.report.outputTail = run.outputTail
        }
        try? await queue.appendEvent(taskID: run.record.id, step: willRetry ? "retrying" : "failed", detail: reason)
        // A retry keeps the reservation for the next attempt.
        if !willRetry { await closeAccounts(&run, status: "failed", paid: failure.agentsFault, errors: run.task.attempt) }
        await publish(&run, final: !willRetry)
        let delay = failure.retryAfter ?? backoff(attempt: run.task.attempt)
        return .failed(reason: reason, retryable: failure.retryable, retryAfter: delay)
    }

    private func finishCancelled(_ run: inout TaskRun) async -> TaskOutcome {
        let reason = "a collaborator asked to cancel (`/asynccode cancel`); nothing was pushed"
        run.report.finishRunning(.skipped)
        run.report.state = .cancelled(reason: reason)
        try? await queue.appendEvent(taskID: run.record.id, step: "cancelled")
        await closeAccounts(&run, status: "cancelled", paid: true, errors: run.task.attempt - 1)
        await publish(&run, final: true)
        return .cancelled(reason: "cancelled on request")
    }

    /// Returns the delay before attempt `attempt + 1`: doubling from the base, capped at 10 minutes, with jitter.
    func backoff(attempt: Int) -> Duration {
        let base = settings.retryBaseDelay.inSeconds
        let delay = min(600, base * pow(2, Double(max(0, attempt - 1))))
        return .milliseconds(Int64(delay * Double.random(in: 0.5...1.0) * 1000))
    }

    // MARK: - Progress

    private func makeReport(_ record: TaskRecord) -> ProgressReport {
        ProgressReport(taskID: record.id, kind: record.kind.rawValue, requester: record.requesterLogin,
                       agent: record.agent ?? catalog.defaultAgent)
    }

    /// Adds the `eyes` reaction to the command (or the issue, for a label) and creates the progress comment.
    private func createProgressComment(_ record: TaskRecord, repo: RepositoryRef, report: ProgressReport) async throws -> Int64 {
        do {
            let onComment = record.source == "issue_comment" ? record.commentID : nil
            try await api.react(.eyes, toCommentID: onComment, issueNumber: Int(record.issueNumber), in: repo)
        } catch {
            logger.debug("cannot add the eyes reaction", metadata: ["task.id": "\(record.id)", "error": "\(error)"])
        }
        let commentID = try await api.createComment(in: repo, issueNumber: Int(record.issueNumber), body: report.render())
        try? await queue.appendEvent(taskID: record.id, step: "acknowledged")
        return commentID
    }

    /// Starts a step: records it and edits the comment.
    private func step(_ run: inout TaskRun, _ title: String) async {
        run.report.begin(title)
        try? await queue.appendEvent(taskID: run.record.id, step: title)
        await publish(&run, final: false)
    }

    /// Edits the progress comment; a final edit is recorded first and finished by ``CommentRepair`` when
    /// GitHub refuses it (see ``FinalCommentEdits``).
    private func publish(_ run: inout TaskRun, final: Bool) async {
        guard let commentID = run.commentID else { return }
        let body = run.report.render()
        if final {
            await finalEdit(body, commentID: commentID, repo: run.repo, taskID: run.record.id, logger: run.logger)
            return
        }
        do {
            try await api.updateComment(in: run.repo, commentID: commentID, body: body)
        } catch {
            run.logger.debug("cannot edit the progress comment", metadata: ["error": "\(error)"])
        }
    }

    /// Gives the progress comment its final body, now or through the repair.
    private func finalEdit(_ body: String, commentID: Int64, repo: RepositoryRef, taskID: Int64, logger: Logger) async {
        let api = self.api
        await finalEdits.deliver(body, commentID: commentID, repo: repo, taskID: taskID, logger: logger) { body in
            try await api.updateComment(in: repo, commentID: commentID, body: body)
        }
    }

    // MARK: - Cancellation

    /// Sets `flag` once the task is asked to cancel; returns then, or when cancelled.
    private func watchForCancel(taskID: Int64, flag: Flag) async {
        while !Task.isCancelled {
            if (try? await queue.isCancelRequested(taskID: taskID)) == true {
                flag.set()
                return
            }
            try? await Task.sleep(for: settings.cancelPollInterval)
        }
    }

    /// Runs `operation`, cancelling it once `flag` is set; then throws ``CancelledOnRequest`` unless the
    /// operation returned a value anyway (an agent run reports its own cancellation).
    private func cancellable<T: Sendable>(_ flag: Flag, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        if flag.isSet { throw CancelledOnRequest() }
        let result: Result<T, any Error> = await withTaskGroup(of: Result<T, any Error>?.self) { group in
            group.addTask {
                do { return .success(try await operation()) } catch { return .failure(error) }
            }
            group.addTask {
                while !flag.isSet, !Task.isCancelled { try? await Task.sleep(for: .milliseconds(100)) }
                return nil
            }
            defer { group.cancelAll() }
            while let next = await group.next() {
                if let next { return next }
                // The flag was set: stop the operation and take what it ends with.
                group.cancelAll()
            }
            return .failure(CancellationError())
        }
        switch result {
        case .success(let value):
            return value
        case .failure(let error):
            if flag.isSet { throw CancelledOnRequest() }
            throw error
        }
    }

    // MARK: - Helpers

    static func repositoryRef(_ record: TaskRecord) -> RepositoryRef {
        RepositoryRef(owner: record.ownerLogin, name: record.repositoryName, id: record.repositoryGitHubID,
                      installationID: record.installationGitHubID)
    }

    /// Returns `<prefix><issue>-<slug>` (prefix `asynccode/` by default) with a slug of the instruction's first words.
    static func branchName(prefix: String = "asynccode/", issueNumber: Int64, text: String) -> String {
        var slug = ""
        var lastWasDash = true
        for scalar in text.lowercased().unicodeScalars {
            if slug.count >= 40 { break }
            if ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) {
                slug.unicodeScalars.append(scalar)
                lastWasDash = false
            } else if !lastWasDash {
                slug.append("-")
                lastWasDash = true
            }
        }
        while slug.hasSuffix("-") { slug.removeLast() }
        return "\(prefix)\(issueNumber)" + (slug.isEmpty ? "" : "-\(slug)")
    }

    /// Returns the pull request's title: the instruction's first line, or the issue's title.
    static func title(instruction: String, issueTitle: String) -> String {
        let firstLine = PromptBuilder.sanitize(instruction).split(separator: "\n").first.map(String.init)?
            .trimmingCharacters(in: .whitespaces) ?? ""
        let title = firstLine.isEmpty ? PromptBuilder.sanitize(issueTitle) : firstLine
        let capped = title.count > 72 ? String(title.prefix(71)) + "…" : title
        guard let first = capped.first else { return "Changes by asynccode" }
        return first.uppercased() + capped.dropFirst()
    }

    static func pullRequestBody(summary: String, record: TaskRecord, files: [ChangedFile], agent: String) -> String {
        var body = summary.isEmpty ? "The agent made the changes below." : PromptBuilder.capped(summary, bytes: 30_000)
        if !record.isPullRequest { body += "\n\nCloses #\(record.issueNumber)" }
        let additions = files.reduce(0) { $0 + $1.additions }
        let deletions = files.reduce(0) { $0 + $1.deletions }
        body += "\n\n**Changed files** (\(files.count), +\(additions) −\(deletions))\n\n| File | + | − |\n|---|---|---|\n"
        for file in files.prefix(100) {
            body += "| `\(file.path.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "`", with: "'"))` | \(file.additions) | \(file.deletions) |\n"
        }
        if files.count > 100 { body += "| … \(files.count - 100) more | | |\n" }
        body += "\nasynccode task \(record.id) · asked by @\(record.requesterLogin)"
        if let url = record.sourceURL { body += " in \(url)" }
        body += " · agent `\(agent)`"
        return body
    }

    static func tail(_ text: String, lines: Int = 60, characters: Int = 6_000) -> String {
        let kept = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
        return kept.count > characters ? String(kept.suffix(characters)) : kept
    }

    /// Returns ", after hitting its … limit (…)" when the run's ending points at a resource limit.
    static func limitHit(_ limits: ResourceLimits, signal: Int32?, errorOutput: String) -> String {
        let text = errorOutput.lowercased()
        if let size = limits.fileSizeBytes, signal == SIGXFSZ || text.contains("file size limit exceeded") {
            return " after hitting its file size limit (\(size >> 20) MB)"
        }
        if let processes = limits.processes,
           text.contains("resource temporarily unavailable") || text.contains("cannot fork") || text.contains("fork: retry") {
            return " after hitting its process limit (\(processes))"
        }
        if let memory = limits.memoryBytes,
           text.contains("cannot allocate memory") || text.contains("out of memory") || signal == SIGSEGV || signal == SIGABRT {
            return " after hitting its memory limit (\(memory >> 20) MB)"
        }
        return ""
    }

    static func oneLine(_ text: String) -> String {
        let line = text.replacingOccurrences(of: "\n", with: " ")
        return line.count > 300 ? String(line.prefix(299)) + "…" : line
    }

}

/// Counts the tasks using each repository's installation token in this process, so the token is revoked
/// when the last one ends (tasks of one repository share the cached token).
actor TokenLeases {
    private var counts: [String: Int] = [:]

    func acquire(_ repo: RepositoryRef) {
        counts["\(repo.installationID)/\(repo.id)", default: 0] += 1
    }

    /// Returns whether this was the last task using the token.
    func release(_ repo: RepositoryRef) -> Bool {
        let key = "\(repo.installationID)/\(repo.id)"
        let count = (counts[key] ?? 1) - 1
        counts[key] = count > 0 ? count : nil
        return count <= 0
    }
}
