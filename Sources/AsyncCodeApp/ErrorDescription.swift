import Database
import PostgresNIO

/// Returns a one-line description of `error` for operators: the server's message or the connection
/// failure, never a password or a payload.
public func describe(_ error: any Error) -> String {
    if error is PSQLError || error is PostgresTransactionError {
        return "database: " + DatabaseProbe.reason(error)
    }
    return "\(error)"
}
