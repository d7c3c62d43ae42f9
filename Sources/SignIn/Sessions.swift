import Database
import Foundation
import Logging
import OpenSSLCrypto
import PostgresNIO

/// Who a request comes from, once signed in.
public struct SignedInUser: Sendable, Hashable {
    public var accountID: Int64
    public var githubID: Int64
    public var login: String
    public var displayName: String?
    public var avatarURL: String?
}

/// Browser sessions: an opaque 256-bit id in a cookie, of which only the SHA-256 is stored. A session ends when
/// unused for ``SignInSettings/sessionIdle``, after ``SignInSettings/sessionLifetime``, on sign-out, or when
/// GitHub says the user revoked the App.
public struct Sessions: Sendable {
    let client: BoundedClient
    let idle: Duration
    let lifetime: Duration
    let logger: Logger

    public init(client: PostgresClient, idle: Duration, lifetime: Duration, logger: Logger) {
        self.client = BoundedClient(client)
        self.idle = idle
        self.lifetime = lifetime
        self.logger = logger
    }

    /// Opens a session for the account; returns the cookie's value.
    public func open(accountID: Int64) async throws -> String {
        let id = Base64URL.encode(try AESGCM.randomBytes(32))
        try await client.query("""
            INSERT INTO user_sessions (id_sha256, account_id, expires_at)
            VALUES (\(SHA256Digest.hash(Array(id.utf8)).bytea), \(accountID), now() + make_interval(secs => \(lifetime.inSeconds)))
            """, logger: logger)
        return id
    }

    /// Returns the user of a live session (and notes that it was used), or `nil`.
    public func user(cookie: String) async throws -> SignedInUser? {
        guard !cookie.isEmpty, cookie.utf8.count <= 128 else { return nil }
        let hash = SHA256Digest.hash(Array(cookie.utf8)).bytea
        // Read on every request, written at most once a minute (when the session's last use is older).
        let rows = try await client.query("""
            WITH live AS (
                SELECT account_id, last_seen_at FROM user_sessions
                WHERE id_sha256 = \(hash) AND expires_at > now() AND last_seen_at > now() - make_interval(secs => \(idle.inSeconds))
            ), touched AS (
                UPDATE user_sessions SET last_seen_at = now()
                WHERE id_sha256 = \(hash) AND EXISTS (SELECT 1 FROM live WHERE last_seen_at < now() - interval '1 minute')
            )
            SELECT a.id, a.github_id, a.login, a.display_name, a.avatar_url FROM live JOIN accounts a ON a.id = live.account_id
            """, logger: logger)
        for try await (id, githubID, login, name, avatar) in rows.decode((Int64, Int64, String, String?, String?).self) {
            return SignedInUser(accountID: id, githubID: githubID, login: login, displayName: name, avatarURL: avatar)
        }
        return nil
    }

    /// Ends one session.
    public func end(cookie: String) async throws {
        try await client.query("DELETE FROM user_sessions WHERE id_sha256 = \(SHA256Digest.hash(Array(cookie.utf8)).bytea)", logger: logger)
    }

    /// Ends every session of the account; returns how many there were.
    @discardableResult
    public func endAll(accountID: Int64) async throws -> Int {
        let rows = try await client.query("DELETE FROM user_sessions WHERE account_id = \(accountID) RETURNING 1", logger: logger)
        return rows.rows.count
    }
}
