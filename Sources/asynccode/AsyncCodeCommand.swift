import ArgumentParser
import AsyncCodeApp
import Database
import Demo
import Foundation
import Logging

/// Starts the command line, with Swift concurrency on NIO's event loops (``adoptEventLoopsAsConcurrencyExecutor(environment:)``).
@main
enum Entrypoint {
    static func main() async {
        do {
            // `.env` too; a bad `.env` is reported by the command itself.
            try adoptEventLoopsAsConcurrencyExecutor(
                environment: (try? AppConfiguration.settings()) ?? ProcessInfo.processInfo.environment)
        } catch {
            fail("configuration error: \(error)")
        }
        await AsyncCodeCommand.main()
    }
}

/// The `asynccode` command line.
struct AsyncCodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "asynccode",
        abstract: "A self-hosted GitHub App that turns /asynccode commands on issues into pull requests.",
        subcommands: [Serve.self, Worker.self, Migrate.self, Credits.self, Keys.self, DemoCommand.self, Receive.self],
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

/// Returns the raw settings (`.env` and the environment), or exits with one line naming the bad `.env`.
func loadSettings() -> [String: String] {
    do {
        return try AppConfiguration.settings()
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
        let configuration = loadConfiguration(requireWebhookSecret: false)
        let logger = makeLogger(configuration)
        if !configuration.hasAppCredentials {
            FileHandle.standardError.write(Data("""
                asynccode: no GitHub App is configured yet. To register one, open
                  \(configuration.setupPageURL(withToken: true))
                (ASYNCCODE_PUBLIC_URL sets the address GitHub and your browser use; see app-manifest/README.md to register by hand)

                """.utf8))
        }
        await runOrFail {
            try await DatabaseProbe.check(configuration.databaseURL, logger: logger)
            let app = try await buildApplication(configuration: configuration, logger: logger) { port in
                logger.info("serving", metadata: ["http.host": "\(configuration.host)", "http.port": "\(port)"])
            }
            try await app.runService()
        }
    }
}

struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run task workers only; any number of processes may share one database. ASYNCCODE_WORKER_METRICS_PORT serves their /metrics.")

    func run() async throws {
        let configuration = loadConfiguration(requireWebhookSecret: false)
        let logger = makeLogger(configuration)
        await runOrFail {
            try await DatabaseProbe.check(configuration.databaseURL, logger: logger)
            logger.info("working", metadata: ["workers": "\(configuration.workers)"])
            try await runWorkers(configuration: configuration, logger: logger) { port in
                logger.info("serving metrics", metadata: ["http.host": "\(configuration.host)", "http.port": "\(port)"])
            }
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

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the whole pipeline offline: a local GitHub simulator, the bot and a demo agent; no GitHub account needed.",
        discussion: "Needs DATABASE_URL (scripts/run demo starts the local PostgreSQL and sets it); the demo makes and drops its own database there.")

    @Flag(help: "Leave the bot and the simulator running (until Ctrl-C) and print how to send more commands.")
    var keep = false

    @Option(help: "Where the log, the demo agent and the workspaces go.")
    var folder = ".local/demo"

    func run() async throws {
        let settings = loadSettings()
        guard let raw = settings["DATABASE_URL"], !raw.isEmpty else {
            fail("demo: DATABASE_URL is not set; `scripts/run demo` starts the local PostgreSQL and sets it")
        }
        let server: DatabaseURL
        do {
            server = try DatabaseURL(raw)
        } catch {
            fail("configuration error: DATABASE_URL: is malformed: \(error.message)")
        }
        let folder = URL(fileURLWithPath: folder, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL.path
        var options = Demo.Options(server: server, folder: folder)
        options.keep = keep
        let demo = Demo(options: options)
        do {
            try await demo.run()
        } catch {
            fail("demo failed: \(describe(error))\n  logs: \(folder)/demo.log")
        }
    }
}

struct Receive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign a webhook payload file with GITHUB_WEBHOOK_SECRET and deliver it to a running bot, printing its answer.")

    @Option(help: "The event, sent as X-GitHub-Event (issue_comment, issues, pull_request, ...).")
    var event: String

    @Option(help: "The JSON payload file.")
    var payload: String

    @Option(help: "Where to deliver (default: the local bot, http://127.0.0.1:$PORT/webhooks/github).")
    var url: String?

    @Option(help: "The delivery GUID, sent as X-GitHub-Delivery (default: a new one; repeat one to see duplicates refused).")
    var delivery: String?

    func run() async throws {
        let settings = loadSettings()
        guard let secret = settings["GITHUB_WEBHOOK_SECRET"], !secret.isEmpty else {
            fail("configuration error: GITHUB_WEBHOOK_SECRET: is not set (the secret the bot checks signatures with)")
        }
        let target = url ?? "http://127.0.0.1:\(settings["PORT"].flatMap { $0.isEmpty ? nil : $0 } ?? "3000")/webhooks/github"
        var replay = WebhookReplay(url: target, event: event, secret: secret)
        if let delivery { replay.deliveryID = delivery }
        do {
            let answer = try await replay.deliver(payloadAt: payload)
            print("POST \(target) (X-GitHub-Event: \(event), X-GitHub-Delivery: \(replay.deliveryID))")
            print("HTTP \(answer.status) \(answer.reason)")
            if !answer.body.isEmpty { print(answer.body.hasSuffix("\n") ? String(answer.body.dropLast()) : answer.body) }
            if !(200..<300).contains(answer.status) { throw ExitCode(1) }
        } catch let failure as WebhookReplay.Failure {
            fail("receive: \(failure)")
        }
    }
}

struct Credits: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show, grant and list an account's credits (the ledger in DATABASE_URL).",
        subcommands: [Show.self, Grant.self, History.self])

    /// Runs one ledger command and prints its answer, or exits with one line.
    static func run(_ body: @escaping @Sendable (CreditsAdmin) async throws -> String) async {
        let configuration = loadConfiguration(requireWebhookSecret: false)
        let logger = makeLogger(configuration)
        do {
            print(try await body(CreditsAdmin(configuration: configuration, logger: logger)))
        } catch let error as CreditsAdmin.Failure {
            fail("credits: \(error)")
        } catch let error as DatabaseError {
            fail("database error: \(error.message)")
        } catch {
            fail("credits: \(describe(error))")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an account's balance, reserved and used credits.")

        @Argument(help: "The account: a GitHub login or numeric GitHub id.")
        var account: String

        func run() async throws {
            let account = account
            await Credits.run { try await $0.show(account: account) }
        }
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add credits to an account (a negative amount takes some back).")

        @Argument(help: "The account: a GitHub login or numeric GitHub id.")
        var account: String

        @Argument(help: "How many credits (up to 4 decimals; negative to take back).")
        var amount: String

        @Option(help: "Why, recorded in the ledger.")
        var reason: String

        func run() async throws {
            let (account, amount, reason) = (account, amount, reason)
            await Credits.run { try await $0.grant(account: account, amount: amount, reason: reason) }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List an account's ledger, newest first.")

        @Argument(help: "The account: a GitHub login or numeric GitHub id.")
        var account: String

        @Option(help: "How many entries.")
        var limit = 50

        func run() async throws {
            let (account, limit) = (account, limit)
            await Credits.run { try await $0.history(account: account, limit: limit) }
        }
    }
}

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make and rotate the keys that encrypt users' GitHub tokens (ASYNCCODE_ENCRYPTION_KEYS).",
        subcommands: [New.self, Rotate.self])

    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a new key entry (id:base64); put it first in ASYNCCODE_ENCRYPTION_KEYS, keep the old ones until `rotate`.")

        @Option(help: "The key's id (1 to 16 of a-z, 0-9, - and _).")
        var id = "k" + String(Int(Date().timeIntervalSince1970))

        func run() async throws {
            do {
                print(try KeysAdmin.newEntry(id: id))
            } catch {
                fail("keys: \(error)")
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-encrypt every stored user token with the first key of ASYNCCODE_ENCRYPTION_KEYS; then older keys may go.")

        func run() async throws {
            let configuration = loadConfiguration(requireWebhookSecret: false)
            let logger = makeLogger(configuration)
            do {
                print(try await KeysAdmin(configuration: configuration, logger: logger).rotate())
            } catch let error as DatabaseError {
                fail("database error: \(error.message)")
            } catch {
                fail("keys: \(describe(error))")
            }
        }
    }
}
