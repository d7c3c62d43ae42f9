import Logging
import PostgresNIO

/// A database made for one run (the demo, a benchmark) on a server where the user may create databases,
/// and dropped after it.
public struct ScratchDatabase: Sendable {
    /// The server it lives on.
    public let server: DatabaseURL
    /// Its name: the prefix and a random number.
    public let name: String

    /// The URL to connect to it.
    public var url: DatabaseURL { server.with(database: name) }

    /// Creates a database named `prefix` and a random number on `server`.
    public static func create(on server: DatabaseURL, prefix: String, logger: Logger) async throws -> ScratchDatabase {
        let scratch = ScratchDatabase(server: server, name: "\(prefix)_\(UInt32.random(in: 0...UInt32.max))")
        try await execute("CREATE DATABASE \(scratch.name)", on: server, logger: logger)
        return scratch
    }

    /// Drops the database, disconnecting whoever still uses it.
    public func drop(logger: Logger) async throws {
        try await Self.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)", on: server, logger: logger)
    }

    /// Runs `body` with a fresh database and drops it afterwards, also when `body` throws.
    public static func with<T>(
        on server: DatabaseURL, prefix: String, logger: Logger, _ body: (DatabaseURL) async throws -> T
    ) async throws -> T {
        let scratch = try await create(on: server, prefix: prefix, logger: logger)
        do {
            let result = try await body(scratch.url)
            try? await scratch.drop(logger: logger)
            return result
        } catch {
            try? await scratch.drop(logger: logger)
            throw error
        }
    }

    private static func execute(_ sql: String, on server: DatabaseURL, logger: Logger) async throws {
        let connection = try await PostgresConnection.connect(
            configuration: server.connectionConfiguration(connectTimeout: .seconds(10)), id: 1, logger: logger)
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}
