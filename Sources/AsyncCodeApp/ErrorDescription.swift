import PostgresNIO

/// Returns a one-line description of `error` for operators: the server's message or the connection
/// failure, never a password or a payload.
public func describe(_ error: any Error) -> String {
    if let error = error as? PSQLError {
        if let message = error.serverInfo?[.message] {
            return "database: \(message)"
        }
        if let underlying = error.underlying {
            return "database \(error.code): \(underlying)"
        }
        return "database \(error.code)"
    }
    return "\(error)"
}
