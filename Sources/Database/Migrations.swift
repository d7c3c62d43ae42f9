import Foundation
import Logging
import OpenSSLCrypto
import PostgresNIO

/// One numbered SQL file from `migrations/`.
public struct Migration: Sendable, Hashable {
    public var version: Int
    public var name: String
    public var sql: String
    /// The SHA-256 of the file, in hexadecimal.
    public var checksum: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
        self.checksum = SHA256Digest.hexHash(sql)
    }

    /// Loads `NNNN_name.sql` files from `directory`, ordered by number.
    ///
    /// - Throws: ``DatabaseError`` when the folder is missing, a name does not follow the pattern, or two files
    ///   share a number.
    public static func load(from directory: URL) throws(DatabaseError) -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw DatabaseError(.migrationsNotFound, "no migrations folder at \(directory.path)")
        }
        var migrations: [Migration] = []
        for file in names.sorted() where file.hasSuffix(".sql") {
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]), version > 0 else {
                throw DatabaseError(.invalidMigrationName, "migration \(file) must be named NNNN_name.sql")
            }
            guard let sql = try? String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8) else {
                throw DatabaseError(.migrationsNotFound, "cannot read migration \(file)")
            }
            if migrations.contains(where: { $0.version == version }) {
                throw DatabaseError(.invalidMigrationName, "two migrations are numbered \(version)")
            }
            migrations.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        guard !migrations.isEmpty else {
            throw DatabaseError(.migrationsNotFound, "no migrations in \(directory.path)")
        }
        return migrations.sorted { $0.version < $1.version }
    }

    /// Returns the migrations folder: `ASYNCCODE_MIGRATIONS_DIR`, `./migrations`, or one beside or above the
    /// executable (a source checkout's `.build/...` or an installed `share/asynccode/migrations`).
    public static func locateDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
        if let explicit = environment["ASYNCCODE_MIGRATIONS_DIR"], !explicit.isEmpty {
            return URL(fileURLWithPath: explicit)
        }
        return ProjectResources.locate("migrations/0001_init.sql")?.deletingLastPathComponent()
    }
}

/// Finds the files shipped beside the binary (`migrations/`, `app-manifest/`).
public enum ProjectResources {
    /// Returns the first existing `relativePath` under the working directory, the binary's folder or one
    /// of its five parents, or their `share/asynccode/`.
    public static func locate(_ relativePath: String) -> URL? {
        var candidates = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(relativePath)]
        var folder = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            candidates.append(folder.appendingPathComponent(relativePath))
            candidates.append(folder.appendingPathComponent("share/asynccode/" + relativePath))
            folder = folder.deletingLastPathComponent()
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0.path) }
    }
}

/// Applies migrations in order, once, across any number of processes.
public struct Migrator: Sendable {
    /// The advisory lock every migrating process takes first.
    static let lockKey: Int64 = 0x6173_796e_6363_6f64 // "asynccod"

    private let client: PostgresClient
    private let migrations: [Migration]
    private let logger: Logger

    public init(client: PostgresClient, migrations: [Migration], logger: Logger) {
        self.client = client
        self.migrations = migrations
        self.logger = logger
    }

    /// Applies the migrations not yet applied, each in its own transaction; returns their versions.
    ///
    /// - Throws: ``DatabaseError`` with `.migrationChanged` when an applied file's checksum differs, or
    ///   `.migrationFailed` naming the file whose SQL failed.
    @discardableResult
    public func migrate() async throws -> [Int] {
        try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
            do {
                let applied = try await apply(on: connection)
                try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                return applied
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                throw error
            }
        }
    }

    private func apply(on connection: PostgresConnection) async throws -> [Int] {
        try await connection.query("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        let recorded = try await Self.recorded(on: connection, logger: logger)
        try verify(recorded)
        var applied: [Int] = []
        for migration in migrations where recorded[migration.version] == nil {
            let statements = SQLStatementSplitter.split(migration.sql)
            do {
                try await connection.withTransaction(logger: logger) { connection in
                    for statement in statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query("""
                        INSERT INTO schema_migrations (version, name, checksum)
                        VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                        """, logger: logger)
                }
            } catch {
                throw DatabaseError(.migrationFailed,
                    "migration \(migration.version)_\(migration.name) failed: \(DatabaseProbe.reason(error))")
            }
            logger.info("applied migration", metadata: ["migration.version": "\(migration.version)", "migration.name": "\(migration.name)"])
            applied.append(migration.version)
        }
        return applied
    }

    /// Returns the versions not yet applied, read within `timeout`; throws when an applied one changed.
    public func pending(within timeout: Duration = .seconds(30)) async throws -> [Int] {
        let logger = self.logger
        // Read within the deadline (a database that does not answer fails it, with its connection closed).
        let recorded = try await BoundedClient(client, timeout: timeout).withTransaction(logger: logger) { connection in
            try await Self.recorded { try await connection.query($0, logger: logger).rows }
        }
        try verify(recorded)
        return migrations.map(\.version).filter { recorded[$0] == nil }
    }

    private func verify(_ recorded: [Int: String]) throws(DatabaseError) {
        for migration in migrations {
            if let checksum = recorded[migration.version], checksum != migration.checksum {
                throw DatabaseError(.migrationChanged,
                    "migration \(migration.version)_\(migration.name) was changed after it was applied "
                    + "(checksum \(checksum.prefix(12)) in the database, \(migration.checksum.prefix(12)) on disk); "
                    + "add a new migration instead of editing an applied one")
            }
        }
        for version in recorded.keys where !migrations.contains(where: { $0.version == version }) {
            throw DatabaseError(.migrationMissingFile,
                "the database has migration \(version) applied but no file provides it; is this binary older than the database?")
        }
    }

    private static func recorded(on connection: PostgresConnection, logger: Logger) async throws -> [Int: String] {
        try await recorded { try await connection.query($0, logger: logger).collect() }
    }

    /// Returns the applied versions and their checksums, read with `query`.
    private static func recorded(query: (PostgresQuery) async throws -> [PostgresRow]) async throws -> [Int: String] {
        let present = try await query("SELECT to_regclass('schema_migrations') IS NOT NULL").first?.decode(Bool.self) ?? false
        guard present else { return [:] }
        var recorded: [Int: String] = [:]
        for row in try await query("SELECT version, checksum FROM schema_migrations") {
            let (version, checksum) = try row.decode((Int, String).self)
            recorded[version] = checksum
        }
        return recorded
    }
}
