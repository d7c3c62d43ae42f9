import Accounting
import Database
import Foundation
import Hummingbird
import Intake
import Logging
import PostgresNIO
import Queue
import Recovery
import ServiceLifecycle
import SignIn

/// Builds the `serve` application: HTTP routes, the PostgreSQL client, the delivery store, the task
/// workers (`ASYNCCODE_WORKERS`), and migrations applied before the server starts taking requests.
///
/// Tests call this too, with their own configuration.
public func buildApplication(
    configuration: AppConfiguration,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    let migrations: [Migration]
    do {
        migrations = try Migration.load(from: configuration.migrationsDirectory)
    } catch {
        throw ConfigurationError(setting: "ASYNCCODE_MIGRATIONS_DIR", problem: error.message)
    }
    var databaseLogger = logger
    databaseLogger[metadataKey: "component"] = "database"
    let client = PostgresClient(configuration: configuration.databaseURL.clientConfiguration(), backgroundLogger: databaseLogger)
    let migrator = Migrator(client: client, migrations: migrations, logger: databaseLogger)
    let store = DeliveryStore(
        client: client, logger: databaseLogger, flushers: configuration.intakeFlushers, fallbackURL: configuration.databaseURL)

    let router = Router(context: AppRequestContext.self)
    let secrets = WebhookSecrets(configuration.webhookSecrets)
    let metrics = AppMetrics()
    WebhookController(
        secrets: secrets,
        decoder: WebhookDecoder(settings: IntakeSettings(triggerLabel: configuration.triggerLabel, appID: configuration.appID.flatMap { Int64($0) })),
        store: store,
        logger: logger,
        metrics: metrics.factory
    ).addRoutes(to: router)
    APIDescriptionController().addRoutes(to: router)
    HealthController(readiness: DatabaseReadiness(client: client, migrator: migrator, logger: databaseLogger))
        .addRoutes(to: router)
    MetricsController(metrics: metrics, client: client, token: configuration.metricsToken, logger: databaseLogger)
        .addRoutes(to: router)

    // Workers start once the migrations are applied, and once the App is registered when the setup
    // wizard is still to run.
    let migrated = StartGate()
    var workers: [any Service] = []
    if configuration.hasAppCredentials {
        guard !configuration.webhookSecrets.isEmpty else {
            throw ConfigurationError(setting: "GITHUB_WEBHOOK_SECRET", problem: "is not set (the App's webhook secret)")
        }
        workers = try await makeAppServices(configuration: configuration, client: client, logger: logger, metrics: metrics.factory)
            .map { GatedService(gate: migrated, service: $0) }
        let signIn = configuration.signInSettings.map { SignIn(settings: $0, client: client, logger: logger) }
        let session = SignInController(signIn: signIn, limits: .init(perUser: configuration.apiRequestsPerMinute, perAddress: configuration.apiRequestsPerMinute * 2), logger: logger)
        session.addRoutes(to: router)
        // The API's own GitHub client (reads with installation tokens), stopped with the server.
        let apiGitHub = try makeGitHubClient(configuration: configuration, logger: logger, metrics: metrics.factory)
        if let apiGitHub { workers.append(GitHubClientService(client: apiGitHub)) }
        let api = APIController(
            session: session, access: try? signIn.map { RepositoryAccess(client: client, settings: $0.settings, logger: logger) }.get(),
            store: APIStore(client: BoundedClient(client), logger: logger), ledger: CreditLedger(client: client, logger: logger),
            github: apiGitHub)
        api.addRoutes(to: router)
        // Live events: one reader of task_events per process, and the streams it feeds.
        var eventsLogger = logger
        eventsLogger[metadataKey: "component"] = "events"
        let eventLog = EventLog(client: BoundedClient(client), logger: eventsLogger)
        let hub = EventHub(log: eventLog, url: configuration.databaseURL, logger: eventsLogger, metrics: metrics.factory)
        EventsController(api: api, hub: hub, log: eventLog, heartbeat: configuration.eventHeartbeat,
                         streamsPerUser: configuration.eventStreamsPerUser, recheck: configuration.eventAccessRecheck, logger: eventsLogger)
            .addRoutes(to: router)
        // What agents' pods download and upload (agents as Kubernetes Jobs), with their task attempt's tokens.
        AgentJobController(store: AgentJobStore(client: BoundedClient(client), logger: logger), logger: logger).addRoutes(to: router)
        workers.append(GatedService(gate: migrated, service: hub))
        workers.append(GatedService(gate: migrated, service: EventPruner(log: eventLog, retention: configuration.eventRetention, logger: eventsLogger)))
        // The web pages read what the API reads; a page is rendered at the reader's final event id and its script
        // resumes the stream after it.
        PagesController(session: session, api: api, agents: configuration.agents, lastEventID: {
            await hub.waitUntilReady()
            // The reader's final cursor, once it has read what was committed before this request (at most 1 s).
            return await hub.caughtUp(to: try await eventLog.newest(), within: .seconds(1))
        }).addRoutes(to: router)
    } else {
        let completion = SetupCompletion()
        SetupWizard(configuration: configuration, secrets: secrets, completion: completion, logger: logger).addRoutes(to: router)
        workers = [DeferredAppServices(completion: completion, migrated: migrated, client: client, logger: logger, metrics: metrics.factory)]
        logger.notice("no GitHub App configured: open the setup page (its address and token are printed at start) to register one; webhooks answer 503 until then", metadata: [
            "setup.url": "\(configuration.setupPageURL(withToken: false))",
        ])
    }
    var app = Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        services: [client, store] + workers,
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger
    )
    app.beforeServerStarts {
        let applied = try await migrator.migrate()
        migrated.open()
        if !applied.isEmpty {
            logger.info("migrations applied", metadata: ["migrations": "\(applied.map(String.init).joined(separator: ","))"])
        }
    }
    return app
}

/// Applies the migrations and returns the versions applied (`asynccode migrate`).
public func runMigrations(configuration: AppConfiguration, logger: Logger) async throws -> [Int] {
    let migrations = try Migration.load(from: configuration.migrationsDirectory)
    try await DatabaseProbe.check(configuration.databaseURL, logger: logger)
    let client = PostgresClient(configuration: configuration.databaseURL.clientConfiguration(), backgroundLogger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        defer { group.cancelAll() }
        return try await Migrator(client: client, migrations: migrations, logger: logger).migrate()
    }
}
