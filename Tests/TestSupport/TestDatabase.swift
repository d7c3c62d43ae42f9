import Database
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Where the test suite finds the package, its fixtures and its PostgreSQL.
public enum TestEnvironment {
    /// The package root, found from this file's path.
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static var migrationsDirectory: URL { packageRoot.appendingPathComponent("migrations") }

    public static var fixturesDirectory: URL { packageRoot.appendingPathComponent("Tests/Fixtures") }

    /// Returns the bytes of `Tests/Fixtures/<path>`.
    public static func fixture(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: fixturesDirectory.appendingPathComponent(path)))
    }

    /// Returns the payload examples of the events the intake handles, as `event/file`.
    public static func handledWebhookExamples() -> [String] {
        let events = ["ping", "installation", "installation_repositories", "issue_comment", "issues", "pull_request",
                      "pull_request_review", "pull_request_review_comment", "check_suite", "workflow_run"]
        var paths: [String] = []
        for event in events {
            let folder = fixturesDirectory.appendingPathComponent("webhooks/\(event)")
            let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            paths += files.filter { $0.hasSuffix(".json") }.sorted().map { "\(event)/\($0)" }
        }
        return paths
    }

    /// Returns `name` from the process environment, else from the env file `scripts/setup` wrote.
    public static func setupValue(_ name: String) -> String? {
        if let value = ProcessInfo.processInfo.environment[name], !value.isEmpty { return value }
        let envFile = packageRoot.appendingPathComponent(".local/postgres/env")
        guard let text = try? String(contentsOf: envFile, encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.contains(" \(name)=") }),
              let start = line.firstIndex(of: "'"), let end = line.lastIndex(of: "'"), start < end else { return nil }
        return String(line[line.index(after: start)..<end])
    }

    /// The administrative URL: `ASYNCCODE_TEST_DATABASE_URL`, or the one `scripts/setup` wrote.
    public static func adminURL() throws -> DatabaseURL {
        if let url = setupValue("ASYNCCODE_TEST_DATABASE_URL") { return try DatabaseURL(url) }
        throw TestSetupError("no test database: run scripts/test (it starts PostgreSQL and sets ASYNCCODE_TEST_DATABASE_URL)")
    }

    public static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }()
}

public struct TestSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// How many migrated test databases this process made.
private let databasesMade = Atomic<Int64>(0)

/// A database of its own for one test, dropped when the test ends.
public struct TestDatabase: Sendable {
    public var url: DatabaseURL
    public var client: PostgresClient
    public var logger: Logger { TestEnvironment.logger }

    /// Runs `body` with a fresh database; migrated unless `migrated` is false.
    public static func with<T: Sendable>(
        migrated: Bool = true, _ body: @Sendable (TestDatabase) async throws -> T
    ) async throws -> T {
        let admin = try TestEnvironment.adminURL()
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        if migrated {
            let template = try await TemplateDatabase.shared.name(admin: admin)
            try await Admin.execute("CREATE DATABASE \(name) TEMPLATE \(template)", admin: admin, retries: 5)
        } else {
            try await Admin.execute("CREATE DATABASE \(name)", admin: admin, retries: 5)
        }
        let url = admin.with(database: String(name))
        let client = PostgresClient(configuration: url.clientConfiguration(), backgroundLogger: TestEnvironment.logger)
        let result: Result<T, any Error>
        do {
            result = .success(try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                if migrated {
                    // Task ids of their own: an agent's user follows from its task's id, and tests running
                    // at once must not share one (nor its process limit).
                    let start = (databasesMade.add(1, ordering: .relaxed).newValue % 999) * 1_000_000 + 1
                    try await client.query("ALTER SEQUENCE tasks_id_seq RESTART WITH \(unescaped: String(start))",
                                           logger: TestEnvironment.logger)
                }
                return try await body(TestDatabase(url: url, client: client))
            })
        } catch {
            result = .failure(error)
        }
        try? await Admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)", admin: admin, retries: 1)
        return try result.get()
    }

    /// Returns the first column of the first row of `sql` as `T`.
    public func scalar<T: PostgresDecodable & Sendable>(_ sql: String, as type: T.Type = T.self) async throws -> T? {
        let rows = try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        for try await value in rows.decode(T.self) { return value }
        return nil
    }

    /// Returns the count `SELECT count(*) FROM <fromClause>` gives.
    public func count(_ fromClause: String) async throws -> Int {
        try await scalar("SELECT count(*)::int8 FROM \(fromClause)", as: Int64.self).map(Int.init) ?? 0
    }
}

/// Administrative statements on the `postgres` database, one connection each.
enum Admin {
    static func execute(_ sql: String, admin: DatabaseURL, retries: Int) async throws {
        var attempt = 0
        while true {
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: admin.connectionConfiguration(), id: 1, logger: TestEnvironment.logger)
                do {
                    try await connection.query(PostgresQuery(unsafeSQL: sql), logger: TestEnvironment.logger)
                    try await connection.close()
                } catch {
                    try? await connection.close()
                    throw error
                }
                return
            } catch {
                attempt += 1
                // CREATE DATABASE ... TEMPLATE fails while another session is copying the same template.
                if attempt > retries { throw error }
                try await Task.sleep(for: .milliseconds(50 * attempt))
            }
        }
    }
}

/// A database migrated once per test process, cloned for each test.
actor TemplateDatabase {
    static let shared = TemplateDatabase()
    private var created: String?

    func name(admin: DatabaseURL) async throws -> String {
        if let created { return created }
        await Self.dropAbandoned(admin: admin)
        let name = "tpl_\(getpid())_" + UUID().uuidString.prefix(8).lowercased()
        try await Admin.execute("CREATE DATABASE \(name)", admin: admin, retries: 2)
        let url = admin.with(database: name)
        let client = PostgresClient(configuration: url.clientConfiguration(), backgroundLogger: TestEnvironment.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            let migrations = try Migration.load(from: TestEnvironment.migrationsDirectory)
            try await Migrator(client: client, migrations: migrations, logger: TestEnvironment.logger).migrate()
        }
        // Let the pool's connections close before the template is cloned.
        try await Admin.execute("""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(name)' AND pid <> pg_backend_pid()
            """, admin: admin, retries: 0)
        created = name
        return name
    }

    /// Drops the templates of test processes that have ended (each process leaves its own behind, since nothing
    /// runs when it exits): without this a local cluster grows by one migrated database per test run.
    static func dropAbandoned(admin: DatabaseURL) async {
        guard let connection = try? await PostgresConnection.connect(
            configuration: admin.connectionConfiguration(), id: 1, logger: TestEnvironment.logger) else { return }
        var abandoned: [String] = []
        if let rows = try? await connection.query("SELECT datname FROM pg_database WHERE datname LIKE 'tpl\\_%'", logger: TestEnvironment.logger),
           let names = try? await rows.collect() {
            for row in names {
                guard let name = try? row.decode(String.self), let pid = Int32(name.split(separator: "_").dropFirst().first ?? "") else { continue }
                if kill(pid, 0) != 0, errno == ESRCH { abandoned.append(name) }
            }
        }
        try? await connection.close()
        for name in abandoned where name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
            try? await Admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)", admin: admin, retries: 0)
        }
    }
}
