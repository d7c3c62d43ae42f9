import Logging
import NIOCore
import PostgresNIO

/// One connection attempt with a short timeout, for a clear error at start-up instead of silent retries.
public enum DatabaseProbe {
    /// Connects once to `url` and runs `SELECT 1`.
    ///
    /// - Throws: ``DatabaseError`` with `.unreachable`, naming the host (never the password) and the reason.
    public static func check(_ url: DatabaseURL, timeout: TimeAmount = .seconds(5), logger: Logger) async throws(DatabaseError) {
        let configuration = url.connectionConfiguration(connectTimeout: timeout)
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

    /// Returns a short reason for a database failure: the server's message, or why the connection failed.
    /// Transaction errors are unwrapped. Never holds a password.
    public static func reason(_ error: any Error) -> String {
        if let error = error as? PostgresTransactionError {
            if let closureError = error.closureError { return reason(closureError) }
            if let commitError = error.commitError { return reason(commitError) }
            if let beginError = error.beginError { return reason(beginError) }
        }
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            if let underlying = error.underlying { return "\(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }
}
