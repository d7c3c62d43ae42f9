import Foundation
import NIOCore
import PostgresNIO

/// A parsed `postgres://user:password@host:port/database` URL.
///
/// `host` may be a socket folder given as `?host=/path` (libpq's form); `sslmode=require` turns TLS on.
public struct DatabaseURL: Sendable, CustomStringConvertible {
    public var username: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var socketPath: String?
    public var requireTLS: Bool

    /// Parses `string`.
    ///
    /// - Throws: ``DatabaseError`` naming what is wrong, never echoing the password.
    public init(_ string: String) throws(DatabaseError) {
        guard let components = URLComponents(string: string),
              let scheme = components.scheme, scheme == "postgres" || scheme == "postgresql" else {
            throw DatabaseError(.invalidURL, "DATABASE_URL must look like postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        }
        guard let user = components.percentEncodedUser.flatMap({ $0.removingPercentEncoding }), !user.isEmpty else {
            throw DatabaseError(.invalidURL, "DATABASE_URL has no user name")
        }
        username = user
        password = components.percentEncodedPassword?.removingPercentEncoding
        host = components.host ?? ""
        port = components.port ?? 5432
        database = String(components.path.drop(while: { $0 == "/" }))
        if database.isEmpty { database = user }
        let query = components.queryItems ?? []
        if let socketFolder = query.first(where: { $0.name == "host" })?.value, socketFolder.hasPrefix("/") {
            socketPath = socketFolder + "/.s.PGSQL.\(port)"
        }
        guard !host.isEmpty || socketPath != nil else {
            throw DatabaseError(.invalidURL, "DATABASE_URL has no host")
        }
        requireTLS = ["require", "verify-ca", "verify-full"].contains(query.first(where: { $0.name == "sslmode" })?.value ?? "")
    }

    /// Returns the configuration for a `PostgresClient` connecting with this URL.
    public func clientConfiguration() -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let socketPath {
            configuration = .init(unixSocketPath: socketPath, username: username, password: password, database: database)
        } else {
            configuration = .init(
                host: host, port: port, username: username, password: password, database: database,
                tls: requireTLS ? .require(.makeClientConfiguration()) : .disable)
        }
        configuration.options.minimumConnections = 0
        configuration.options.maximumConnections = 20
        return configuration
    }

    /// Returns the configuration for the task queue's own pool, whose sessions plan a prepared statement
    /// once (`plan_cache_mode = force_generic_plan`) instead of before every run.
    ///
    /// The queue's batched claim costs more to plan than to run: planning it before every run took about
    /// 1 ms of the 2.4 ms one worker's task cost here, and PostgreSQL's own choice between planning each run
    /// and keeping one plan changes with the data. The queue's other statements are lookups by key, for
    /// which one plan is as good.
    public func queueClientConfiguration(maximumConnections: Int = 8) -> PostgresClient.Configuration {
        var configuration = clientConfiguration()
        configuration.options.maximumConnections = maximumConnections
        configuration.options.additionalStartupParameters = [("plan_cache_mode", "force_generic_plan")]
        return configuration
    }

    /// Returns the configuration for a single `PostgresConnection`.
    public func connectionConfiguration(connectTimeout: TimeAmount = .seconds(10)) -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let socketPath {
            configuration = .init(unixSocketPath: socketPath, username: username, password: password, database: database)
        } else {
            configuration = .init(
                host: host, port: port, username: username, password: password, database: database,
                tls: requireTLS ? .require(try! .init(configuration: .makeClientConfiguration())) : .disable)
        }
        configuration.options.connectTimeout = connectTimeout
        return configuration
    }

    /// Returns the URL with `database` swapped, for tests and administration.
    public func with(database: String) -> DatabaseURL {
        var copy = self
        copy.database = database
        return copy
    }

    /// The URL without its password.
    public var description: String {
        "postgres://\(username)@\(socketPath ?? "\(host):\(port)")/\(database)"
    }
}
