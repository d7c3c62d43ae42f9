import Logging
import NIOCore
import PostgresNIO

/// One connection attempt with a short timeout, for a clear error at start-up instead of silent retries.
public enum DatabaseProbe {
    /// Connects once to `url` and runs `SELECT 1`.
    ///
    /// - Throws: ``DatabaseError`` with `.unreachable`, naming the host (never the password) and the reason.
    public static func check(_ url: DatabaseURL, timeout: TimeAmount = .seconds(5), logger: Logger) async throws(DatabaseError) {
        var configuration: PostgresConnection.Configuration
        if let socketPath = url.socketPath {
            configuration = .init(unixSocketPath: socketPath, username: url.username, password: url.password, database: url.database)
        } else {
            configuration = .init(
                host: url.host, port: url.port, username: url.username, password: url.password, database: url.database,
                tls: url.requireTLS ? .require(try! .init(configuration: .makeClientConfiguration())) : .disable)
        }
        configuration.options.connectTimeout = timeout
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            do {
                try await connection.query("SELECT 1", logger: logger)
                try await connection.close()
            } catch {
                try? await connection.close()
                throw error
            }
        } catch {
            throw DatabaseError(.unreachable, "cannot use the database at \(url): \(reason(error))")
        }
    }

    /// Returns a short reason for a connection failure.
    public static func reason(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            if let underlying = error.underlying { return "\(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }
}
