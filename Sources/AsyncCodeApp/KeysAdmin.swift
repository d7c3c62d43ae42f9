import Database
import Foundation
import Logging
import OpenSSLCrypto
import PostgresNIO
import SignIn

/// `asynccode keys new|rotate`: the keys that encrypt users' GitHub tokens at rest (`ASYNCCODE_ENCRYPTION_KEYS`).
public struct KeysAdmin: Sendable {
    /// A refusal to print as one line.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    let configuration: AppConfiguration
    let logger: Logger

    public init(configuration: AppConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Returns a new entry for `ASYNCCODE_ENCRYPTION_KEYS` (put it first; keep the old ones until `rotate`).
    public static func newEntry(id: String) throws -> String {
        let entry = try KeyRing.newEntry(id: id)
        _ = try KeyRing(parsing: entry)
        return entry
    }

    /// Re-encrypts every stored user token with the first key; returns a line saying how many values changed.
    /// Sign-ins in progress (10 minutes at most) are dropped: they start again.
    public func rotate() async throws -> String {
        guard let keys = configuration.encryptionKeys else {
            throw Failure(description: "ASYNCCODE_ENCRYPTION_KEYS is not set")
        }
        return try await withCommandDatabase(configuration, logger: logger) { client, quiet in
            let rewritten = try await UserTokens(client: client, keys: keys, refreshMargin: .seconds(900), logger: quiet).rotate()
            let dropped = try await BoundedClient(client).query("DELETE FROM oauth_states RETURNING 1", logger: quiet).rows.count
            return "keys: \(rewritten) token value(s) re-encrypted with key \(keys.current.id); \(dropped) sign-in(s) in progress dropped"
        }
    }
}
