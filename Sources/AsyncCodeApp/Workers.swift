import Accounting
import Database
import Executor
import Foundation
import GitHub
import Hummingbird
import Logging
import Metrics
import PostgresNIO
import Queue
import Recovery
import ServiceLifecycle
import Synchronization

/// Shuts the GitHub client down when the process stops (after the workers, which are stopped first).
struct GitHubClientService: Service, CustomStringConvertible {
    let client: GitHubClient
    var description: String { "GitHubClientService" }

    func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}

/// Returns the App's GitHub client, or `nil` when the App's id or key is not configured.
func makeGitHubClient(
    configuration: AppConfiguration, logger: Logger, metrics: any MetricsFactory = NOOPMetricsHandler.instance
) throws -> GitHubClient? {
    guard let appID = configuration.appID, let privateKeyPEM = configuration.privateKeyPEM else { return nil }
    do {
        let signer = try AppJWTSigner(issuer: appID, privateKeyPEM: privateKeyPEM)
        var githubLogger = logger
        githubLogger[metadataKey: "component"] = "github"
        return try GitHubClient(
            configuration: .init(apiURL: configuration.githubAPIURL.absoluteString, caBundlePath: configuration.caBundlePath),
            signer: signer, logger: githubLogger, metrics: metrics)
    } catch {
        throw ConfigurationError(setting: "GITHUB_APP_PRIVATE_KEY", problem: error.message)
    }
}

/// Returns the services that need the App's credentials: the GitHub client's owner, the task workers and
/// delivery recovery (when on). Empty when the App's id or key is not configured.
func makeAppServices(
    configuration: AppConfiguration, client: PostgresClient, logger: Logger, metrics: any MetricsFactory
) async throws -> [any Service] {
    guard let github = try makeGitHubClient(configuration: configuration, logger: logger, metrics: metrics) else { return [] }
    var services: [any Service] = [GitHubClientService(client: github)]
    services += try await makeWorkerServices(
        configuration: configuration, client: client, github: github, logger: logger, workerPrefix: workerPrefix(),
        metrics: metrics)
    if let interval = configuration.recoveryInterval {
        var recoveryLogger = logger
        recoveryLogger[metadataKey: "component"] = "recovery"
        services.append(DeliveryRecovery(log: github, client: client, logger: recoveryLogger, interval: interval, metrics: metrics))
    }
    return services
}

/// Returns the services that run tasks: the LISTEN connection, `configuration.workers` task workers and
/// one control-command worker, all sharing `client` and `github`, and the queue's own pool. Empty when there are
/// no workers to run.
func makeWorkerServices(
    configuration: AppConfiguration, client: PostgresClient, github: GitHubClient, logger: Logger, workerPrefix: String,
    metrics: any MetricsFactory = NOOPMetricsHandler.instance
) async throws -> [any Service] {
    guard configuration.workers > 0 else { return [] }
    try await checkSandbox(configuration.agents, logger: logger)
    var workerLogger = logger
    workerLogger[metadataKey: "component"] = "worker"
    let signal = WorkSignal()
    // The queue has a pool of its own, whose sessions keep one plan per prepared statement.
    let queueClient = PostgresClient(
        configuration: configuration.databaseURL.queueClientConfiguration(maximumConnections: min(20, configuration.workers + 2)),
        backgroundLogger: workerLogger)
    let queue = TaskQueue(client: queueClient, logger: workerLogger, leaseDuration: configuration.leaseDuration)
    let store = TaskStore(client: client, logger: workerLogger)
    var settings = ExecutorSettings(workspaceRoot: configuration.workspaceDirectory)
    settings.caBundlePath = configuration.caBundlePath
    settings.retryBaseDelay = configuration.executorRetryBaseDelay
    settings.signedCommits = configuration.signedCommits
    settings.publicURL = configuration.publicURL?.absoluteString
    // What the agents are handed through `passEnv` (API keys) is redacted from what they print, too.
    let environment = ProcessInfo.processInfo.environment
    let passed = configuration.agents.agents.values.flatMap(\.passEnvironment).compactMap { environment[$0] }.filter { $0.count >= 8 }
    settings.metrics = metrics
    var cacheServices: [any Service] = []
    if configuration.repositoryCacheBytes > 0 {
        let cache = RepositoryCache(
            root: configuration.repositoryCacheDirectory ?? configuration.workspaceDirectory + "/repo-cache",
            maxBytes: configuration.repositoryCacheBytes, caBundlePath: configuration.caBundlePath,
            keepsReadyCheckouts: configuration.repositoryCacheReadyCheckouts, metrics: metrics, logger: workerLogger)
        settings.repositoryCache = cache
        cacheServices.append(RepositoryCachePruner(cache: cache, repositories: store, logger: workerLogger))
        if cache.keepsReadyCheckouts { cacheServices.append(ReadyCheckoutService(cache: cache)) }
    }
    settings.secretValues = SecretValues(
        configuration.webhookSecrets + [configuration.databaseURL.password].compactMap { $0 } + passed)
    let accounting = ExecutorAccounting(
        ledger: CreditLedger(client: client, logger: workerLogger), gate: UsageGate(client: client, logger: workerLogger),
        analytics: TaskAnalyticsStore(client: client, logger: workerLogger), limits: configuration.agents.limits)
    // Final progress-comment edits GitHub refused, finished later by `CommentRepair`.
    let pendingComments = PendingCommentStore(client: client, logger: workerLogger)
    // Agents with `runner: kubernetes` run as Jobs in the cluster (issue 22).
    var cluster: AgentCluster?
    var clusterServices: [any Service] = []
    if let kubernetes = configuration.kubernetes {
        let kubeClient = try kubernetes.client(logger: workerLogger)
        var agentCluster = AgentCluster(jobs: kubeClient, store: AgentJobStore(client: BoundedClient(client), logger: workerLogger),
                                    botURL: kubernetes.agentJobURL.absoluteString, toolsImage: kubernetes.toolsImage)
        agentCluster.pollInterval = kubernetes.pollInterval
        agentCluster.startAllowance = kubernetes.startAllowance
        cluster = agentCluster
        clusterServices.append(KubernetesClientService(client: kubeClient))
    }
    let executor = TaskExecutor(
        api: github, store: store, queue: queue, catalog: configuration.agents, settings: settings, accounting: accounting,
        pendingComments: pendingComments, cluster: cluster, logger: workerLogger)
    var services: [any Service] = clusterServices + cacheServices + [
        queueClient,
        WorkListener(url: configuration.databaseURL, signal: signal, logger: workerLogger),
        ModelCatalogSync(store: ModelCatalogStore(client: client, logger: workerLogger), models: configuration.agents.models,
                         source: ModelCatalogStore.source(configFilePath: configuration.configFilePath), logger: workerLogger),
        CommentRepair(editor: github, store: pendingComments, logger: workerLogger),
    ]
    for index in 1...configuration.workers {
        services.append(TaskWorker(
            name: "\(workerPrefix)-\(index)", queue: queue, signal: signal, handler: executor, logger: workerLogger,
            gracePeriod: configuration.shutdownGracePeriod,
            // A dead worker's task is looked for at least twice per lease, so it waits little past the lease.
            reapInterval: min(.seconds(5), configuration.leaseDuration / 2), metrics: metrics,
            runAhead: RunAhead(maxTasks: configuration.runAhead)))
    }
    services.append(ControlCommandWorker(
        name: "\(workerPrefix)-control", api: github, controls: ControlStore(client: client, logger: workerLogger),
        store: store, signal: signal, catalog: configuration.agents, triggerLabel: configuration.triggerLabel,
        ledger: accounting.ledger, logger: workerLogger,
        acknowledging: (queue, executor), pendingComments: pendingComments))
    return services
}

/// Refuses to start workers whose agents need a jail this machine cannot make; warns about agents that
/// run without one.
func checkSandbox(_ catalog: AgentCatalog, logger: Logger) async throws {
    let local = catalog.names.filter { catalog.agents[$0]?.runner == .local }
    let jailed = local.filter { catalog.agents[$0]?.sandbox == .bwrap }
    let open = local.filter { catalog.agents[$0]?.sandbox == SandboxMode.none }
    // Agents running as Kubernetes Jobs need no jail here, but repositories' `setup` and `checks` still do.
    let clustered = catalog.names.filter { catalog.agents[$0]?.runner.kubernetes != nil }
    if !clustered.isEmpty, let problem = await Sandbox.cachedProblem() {
        logger.warning("agents run as Kubernetes Jobs, but repositories' setup and checks commands cannot run on this worker",
                       metadata: ["agents": "\(clustered.joined(separator: ", "))", "problem": "\(problem)"])
    }
    for name in open {
        logger.warning("agent runs without a sandbox (sandbox: none): it can read what the bot's user can read", metadata: ["agent": "\(name)"])
    }
    if !jailed.isEmpty, let problem = await Sandbox.problem() {
        throw ConfigurationError(
            setting: "ASYNCCODE_CONFIG",
            problem: "agents \(jailed.joined(separator: ", ")) run in a bubblewrap jail, but \(problem); install bubblewrap (scripts/setup does) or set `sandbox: none` for them explicitly")
    }
}

/// Returns a name for this process's workers: host, process id and a random suffix.
func workerPrefix() -> String {
    let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
    return "\(host)-\(ProcessInfo.processInfo.processIdentifier)-\(UInt16.random(in: 0...UInt16.max))"
}

/// Runs workers only (`asynccode worker`): applies migrations, then claims tasks until SIGTERM or SIGINT.
/// With `ASYNCCODE_WORKER_METRICS_PORT` it also serves `GET /metrics` (this process's counts) and `GET /healthz`.
///
/// - Parameter onMetricsServing: called with the bound port once the metrics server listens.
public func runWorkers(
    configuration: AppConfiguration, logger: Logger, onMetricsServing: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws {
    guard configuration.workers > 0 else {
        throw ConfigurationError(setting: "ASYNCCODE_WORKERS", problem: "must be at least 1 for `asynccode worker`")
    }
    _ = try await runMigrations(configuration: configuration, logger: logger)
    var databaseLogger = logger
    databaseLogger[metadataKey: "component"] = "database"
    let client = PostgresClient(configuration: configuration.databaseURL.clientConfiguration(), backgroundLogger: databaseLogger)
    let metrics = AppMetrics()
    guard let github = try makeGitHubClient(configuration: configuration, logger: logger, metrics: metrics.factory) else {
        throw ConfigurationError(
            setting: configuration.appID == nil ? "GITHUB_APP_ID" : "GITHUB_APP_PRIVATE_KEY_PATH",
            problem: "is not set; workers need the App's id and private key")
    }
    let services = [GitHubClientService(client: github)]
        + (try await makeWorkerServices(configuration: configuration, client: client, github: github, logger: logger,
                                  workerPrefix: workerPrefix(), metrics: metrics.factory))
    guard let port = configuration.workerMetricsPort else {
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: client)] + services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        return
    }
    var databaseProbeLogger = logger
    databaseProbeLogger[metadataKey: "component"] = "database"
    let router = Router()
    MetricsController(metrics: metrics, client: client, token: configuration.metricsToken, logger: databaseProbeLogger)
        .addRoutes(to: router)
    router.get("/healthz") { _, _ in "ok\n" }
    let app = Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: port), serverName: nil),
        services: [client] + services,
        onServerRunning: { channel in await onMetricsServing(channel.localAddress?.port ?? port) },
        logger: logger)
    try await app.runService()
}

/// Opens once (the migrations are applied); services behind it start then.
final class StartGate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}

/// Runs `service` once `gate` opens; a stop before that ends it at once.
struct GatedService: Service, CustomStringConvertible {
    let gate: StartGate
    let service: any Service
    var description: String { String(describing: service) }

    func run() async throws {
        let stopped = Flag()
        await withGracefulShutdownHandler {
            await gate.wait()
        } onGracefulShutdown: {
            stopped.set()
            gate.open()
        }
        if stopped.isSet { return }
        try await service.run()
    }
}

/// Syncs the configured agents into `ai_models` once at start (agents this process's configuration no
/// longer lists, and no other process lists, become inactive), then waits for the process to stop.
struct ModelCatalogSync: Service, CustomStringConvertible {
    let store: ModelCatalogStore
    let models: [ModelEntry]
    /// Whose models these are (see ``ModelCatalogStore/source(hostName:configFilePath:)``).
    let source: String
    let logger: Logger
    var description: String { "ModelCatalogSync" }

    func run() async throws {
        for attempt in 1...5 {
            do {
                let deactivated = try await store.sync(models, source: source)
                logger.info("models synced", metadata: [
                    "models.source": "\(source)",
                    "models.active": "\(models.map(\.name).joined(separator: ","))",
                    "models.deactivated": "\(deactivated.joined(separator: ","))",
                ])
                break
            } catch {
                logger.error("cannot sync the models catalogue", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                try? await Task.sleep(for: .seconds(attempt * 2))
                if Task.isCancelled { return }
            }
        }
        try? await gracefulShutdown()
    }
}
