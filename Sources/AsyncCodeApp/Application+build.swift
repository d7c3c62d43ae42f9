import Database
import Foundation
import Hummingbird
import Intake
import Logging
import PostgresNIO
import Queue
import Recovery
import ServiceLifecycle

/// Builds the `serve` application: HTTP routes, the PostgreSQL client, the delivery store, the task
/// workers (`ASYNCCODE_WORKERS`), and migrations applied before the server starts taking requests.
///
/// Tests call this too, with their own configuration.
public func buildApplication(
    configuration: AppConfiguration,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) throws -> some ApplicationProtocol {
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

    let router = Router()
    WebhookController(
        verifier: WebhookVerifier(secrets: configuration.webhookSecrets),
        decoder: WebhookDecoder(settings: IntakeSettings(triggerLabel: configuration.triggerLabel)),
        store: store,
        logger: logger
    ).addRoutes(to: router)
    HealthController(readiness: DatabaseReadiness(client: client, migrator: migrator, logger: databaseLogger))
        .addRoutes(to: router)

    // Workers start once the migrations are applied.
    let migrated = StartGate()
    var workers: [any Service] = []
    if let github = try makeGitHubClient(configuration: configuration, logger: logger) {
        workers.append(GitHubClientService(client: github))
        workers += try makeWorkerServices(
            configuration: configuration, client: client, github: github, logger: logger, workerPrefix: workerPrefix())
        if let interval = configuration.recoveryInterval {
            var recoveryLogger = logger
            recoveryLogger[metadataKey: "component"] = "recovery"
            workers.append(DeliveryRecovery(log: github, client: client, logger: recoveryLogger, interval: interval))
        }
        workers = workers.map { GatedService(gate: migrated, service: $0) }
    } else if configuration.workers > 0 {
        logger.warning("workers not started: GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY_PATH are needed to run tasks (ASYNCCODE_WORKERS=0 serves webhooks only)")
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
