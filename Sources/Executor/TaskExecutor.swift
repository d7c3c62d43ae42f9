import Foundation
import GitHub
import Logging
import Models
import Queue

/// Runs tasks as a sequence of named steps (under `Steps/`), in order:
///
/// 0. for an automatic fix of failed CI, ``TriageCIFailure``, 1. acknowledge (``TaskProgress``), 2. ``Authorize``, 3. ``LoadSettings``, 4. ``Admit``, 5. ``PlanWork``,
/// 6. ``PrepareWorkspace``, 7. ``RunSetup``, then ``RunAgent`` (for code: ``VerifyLoop``, the agent and
/// ``RunChecks`` until the checks pass or the rounds run out), 8. ``Reply`` or ``Publish`` and ``ReportCheckRun``, then ``Settle``
/// however it ends.
///
/// Every step is appended to `task_events` and shown in the task's one progress comment, which always ends
/// in a final state. The steps share a ``TaskRun``.
public struct TaskExecutor<API: GitHubAPI>: TaskHandling, CustomStringConvertible {
    let api: API
    let store: TaskStore
    let queue: TaskQueue
    let catalog: AgentCatalog
    let settings: ExecutorSettings
    let tokens = TokenLeases()
    let logger: Logger

    let progress: TaskProgress<API>
    let triageCIFailure: TriageCIFailure<API>
    let authorize: Authorize<API>
    let loadSettings: LoadSettings<API>
    let admit: Admit
    let planWork: PlanWork<API>
    let prepareWorkspace: PrepareWorkspace<API>
    let runSetup: RunSetup<API>
    let runAgent: RunAgent<API>
    let verifyLoop: VerifyLoop<API>
    let reply: Reply<API>
    let publish: Publish<API>
    let reportCheckRun: ReportCheckRun<API>
    let settle: Settle<API>

    /// Creates an executor; without `accounting` tasks run free and unlimited; without `pendingComments` a
    /// final comment edit GitHub refuses is not repaired later; without `cluster` no agent may say `runner: kubernetes`.
    public init(
        api: API, store: TaskStore, queue: TaskQueue, catalog: AgentCatalog, settings: ExecutorSettings,
        runner: AgentRunner = AgentRunner(), prompts: PromptBuilder = PromptBuilder(),
        accounting: ExecutorAccounting? = nil, pendingComments: PendingCommentStore? = nil, cluster: AgentCluster? = nil,
        logger: Logger
    ) {
        self.api = api
        self.store = store
        self.queue = queue
        self.catalog = catalog
        self.settings = settings
        self.logger = logger
        let progress = TaskProgress(api: api, store: store, queue: queue, catalog: catalog,
                                    finalEdits: FinalCommentEdits(store: pendingComments), logger: logger, publicURL: settings.publicURL)
        self.progress = progress
        let warnings = PermissionWarnings()
        let configs = RepositoryConfigLoader(api: api, store: store, logger: logger)
        triageCIFailure = TriageCIFailure(api: api, store: store, configs: configs, warnings: warnings)
        authorize = Authorize(
            access: AccessChecker(api: api, store: store, cacheDuration: settings.accessCacheDuration, logger: logger), progress: progress)
        loadSettings = LoadSettings(api: api, store: store, configs: configs, catalog: catalog)
        admit = Admit(accounting: accounting)
        planWork = PlanWork(api: api, store: store)
        prepareWorkspace = PrepareWorkspace(api: api, settings: settings, progress: progress)
        runSetup = RunSetup(runner: runner, settings: settings, progress: progress)
        let runAgent = RunAgent(api: api, store: store, runner: runner, prompts: prompts, settings: settings, progress: progress,
                                cluster: cluster)
        self.runAgent = runAgent
        verifyLoop = VerifyLoop(runAgent: runAgent, runChecks: RunChecks(runner: runner, settings: settings, progress: progress))
        reply = Reply(api: api, store: store, progress: progress)
        publish = Publish(api: api, store: store, settings: settings, progress: progress, identity: BotIdentity(),
                          commitThroughAPI: CommitThroughAPI(api: api))
        reportCheckRun = ReportCheckRun(api: api, queue: queue, warnings: warnings)
        settle = Settle(store: store, queue: queue, accounting: accounting, settings: settings, progress: progress)
    }

    public var description: String { "TaskExecutor(agents: \(catalog.names))" }

    // MARK: - What a task does, in order

    private func steps(_ run: inout TaskRun) async throws -> TaskOutcome {
        try await triageCIFailure(&run)
        try await progress.acknowledge(&run)
        try await authorize(&run)
        let agent = try await loadSettings(&run)
        try await admit(&run, agent: agent)
        let plan = try await planWork(&run)
        return try await prepareWorkspace(&run, plan: plan) { run, workspace in
            try await runSetup(&run, agent: agent, in: workspace)
            switch run.record.kind {
            case .ask, .plan:
                let answer = try await runAgent(&run, agent: agent, plan: plan, in: workspace)
                await reply.answer(&run, answer)
            case .review:
                let answer = try await runAgent(&run, agent: agent, plan: plan, in: workspace)
                try await reply.review(&run, answer, plan: plan)
            case .code, .docs, .debug:
                let answer = try await verifyLoop(&run, agent: agent, plan: plan, in: workspace)
                try await publish(&run, answer, plan: plan, in: workspace)
                await reportCheckRun(&run)
            }
            return await settle.completed(&run)
        }
    }

    /// Runs the steps and settles the task however they end: a wait for a limit, a cancellation, a failure.
    private func execute(_ run: inout TaskRun) async -> TaskOutcome {
        do {
            return try await steps(&run)
        } catch is CancelledOnRequest {
            return await settle.cancelled(&run)
        } catch let end as QuietEnd {
            return await settle.quiet(&run, end)
        } catch let deferred as Deferred {
            return await settle.deferred(&run, deferred)
        } catch {
            if run.cancelRequested.isSet { return await settle.cancelled(&run) }
            if Task.isCancelled { return .interrupted }
            let failure = error as? StepFailure ?? StepFailure(
                reason: Self.oneLine(String(describing: error)), retryable: isTransient(error),
                retryAfter: (error as? GitHubError)?.retryAfter)
            return await settle.failed(&run, failure)
        }
    }

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
        var report = progress.makeReport(record)
        report.state = .queued(ahead: (try? await store.placeInLine(taskID: taskID)) ?? 0)
        do {
            let commentID = try await progress.createComment(record, repo: repo, report: report)
            if try await store.saveProgressComment(taskID: taskID, commentID: commentID) == "cancelled" {
                report.state = .cancelled(reason: "cancelled before it started")
                await progress.finalEdit(report.render(), commentID: commentID, repo: repo, taskID: taskID, logger: logger)
            }
        } catch {
            logger.debug("cannot acknowledge a task yet", metadata: ["task.id": "\(taskID)", "error": "\(error)"])
            try? await queue.abandonAcknowledgement(taskID: taskID, worker: worker, retryAfter: .seconds(60))
        }
    }

    public func finalizeAbandoned(_ task: ReapedTask) async {
        await settle.abandoned(task)
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
        if let inactivity = record.inactivity { return await settle.inactive(record, inactivity, logger: logger) }
        let repo = Self.repositoryRef(record)
        let cancelRequested = Flag()
        let runLogger = logger
        await tokens.acquire(repo)
        let outcome = await withTaskGroup(of: TaskOutcome?.self) { group in
            group.addTask {
                var run = TaskRun(record: record, task: task, repo: repo, report: progress.makeReport(record),
                                  commentID: record.progressCommentID, cancelRequested: cancelRequested, logger: runLogger,
                                  liveLog: LiveLog(taskID: task.id, writer: queue, logger: runLogger))
                return await execute(&run)
            }
            group.addTask {
                await watchForCancel(taskID: task.id, flag: cancelRequested, queue: queue, every: settings.cancelPollInterval)
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
}
