import ArgumentParser
import AsyncCodeApp
import Database
import Foundation
import Logging

/// The `asynccode` command line.
@main
struct AsyncCodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "asynccode",
        abstract: "A self-hosted GitHub App that turns /asynccode commands on issues into pull requests.",
        subcommands: [Serve.self, Worker.self, Migrate.self],
        defaultSubcommand: Serve.self
    )
}

/// Loads the configuration, or exits with one line naming the bad setting.
func loadConfiguration(requireWebhookSecret: Bool) -> AppConfiguration {
    do {
        return try AppConfiguration.load(requireWebhookSecret: requireWebhookSecret)
    } catch {
        fail("configuration error: \(error)")
    }
}

/// Prints `message` to standard error and exits with status 1.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("asynccode: " + message + "\n").utf8))
    exit(1)
}

func makeLogger(_ configuration: AppConfiguration) -> Logger {
    let level = configuration.logLevel
    switch configuration.logFormat {
    case .text:
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    case .json:
        LoggingSystem.bootstrap { label in
            var handler = JSONLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
    }
    return Logger(label: "asynccode")
}

/// Runs a long-lived command; a failure exits with one line saying what kind it was.
func runOrFail(_ body: () async throws -> Void) async {
    do {
        try await body()
    } catch let error as ConfigurationError {
        fail("configuration error: \(error)")
    } catch let error as DatabaseError {
        fail("database error: \(error.message)")
    } catch {
        fail("stopped: \(describe(error))")
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve webhooks and run ASYNCCODE_WORKERS task workers (default 2). Applies migrations first.")

    func run() async throws {
        let configuration = loadConfiguration(requireWebhookSecret: true)
        let logger = makeLogger(configuration)
        await runOrFail {
            try await DatabaseProbe.check(configuration.databaseURL, logger: logger)
            let app = try buildApplication(configuration: configuration, logger: logger) { port in
                logger.info("serving", metadata: ["http.host": "\(configuration.host)", "http.port": "\(port)"])
            }
            try await app.runService()
        }
    }
}

struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run task workers only (no HTTP server); any number of processes may share one database.")

    func run() async throws {
        let configuration = loadConfiguration(requireWebhookSecret: false)
        let logger = makeLogger(configuration)
        await runOrFail {
            try await DatabaseProbe.check(configuration.databaseURL, logger: logger)
            logger.info("working", metadata: ["workers": "\(configuration.workers)"])
            try await runWorkers(configuration: configuration, logger: logger)
        }
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the database migrations and exit.")

    func run() async throws {
        let configuration = loadConfiguration(requireWebhookSecret: false)
        let logger = makeLogger(configuration)
        do {
            let applied = try await runMigrations(configuration: configuration, logger: logger)
            print(applied.isEmpty ? "migrations: up to date" : "migrations: applied \(applied.map(String.init).joined(separator: ", "))")
        } catch let error as DatabaseError {
            fail("database error: \(error.message)")
        } catch {
            fail("migrate failed: \(describe(error))")
        }
    }
}
