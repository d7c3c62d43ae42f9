import Database
import Foundation
import Logging
import OpenSSLCrypto
import PostgresNIO

/// What GitHub grants on sign-in or refresh: a user token (`ghu_…`), and for expiring tokens a refresh token
/// (`ghr_…`), with their lifetimes in seconds.
public struct TokenGrant: Sendable {
    public var accessToken: String
    public var expiresIn: Int?
    public var refreshToken: String?
    public var refreshTokenExpiresIn: Int?

    public init(accessToken: String, expiresIn: Int?, refreshToken: String?, refreshTokenExpiresIn: Int?) {
        self.accessToken = accessToken
        self.expiresIn = expiresIn
        self.refreshToken = refreshToken
        self.refreshTokenExpiresIn = refreshTokenExpiresIn
    }
}

/// Users' GitHub tokens, encrypted at rest (``KeyRing``): each value sealed for its column and row
/// (`user_tokens.access_token:<account>`), so a value moved to another row does not decrypt.
public struct UserTokens: Sendable {
    let client: BoundedClient
    let keys: KeyRing
    let refreshMargin: Duration
    let logger: Logger

    public init(client: PostgresClient, keys: KeyRing, refreshMargin: Duration, logger: Logger) {
        self.client = BoundedClient(client, timeout: .seconds(60))
        self.keys = keys
        self.refreshMargin = refreshMargin
        self.logger = logger
    }

    /// Stores a grant for the account, replacing what was there.
    public func store(accountID: Int64, grant: TokenGrant) async throws {
        let access = try keys.seal(Array(grant.accessToken.utf8), place: Self.place("access_token", accountID))
        let refresh = try grant.refreshToken.map { try keys.seal(Array($0.utf8), place: Self.place("refresh_token", accountID)) }
        try await client.query(Self.upsert(accountID: accountID, access: access, refresh: refresh, grant: grant), logger: logger)
    }

    /// Returns a live user token for the account, refreshing it first (with `refresh`) when it expires within the
    /// refresh margin. Once across every process: the row is locked, and a second look after the lock finds the
    /// token another process refreshed. `nil` when the account has no token.
    public func accessToken(accountID: Int64, refresh: @escaping @Sendable (String) async throws -> TokenGrant) async throws -> String? {
        let keys = self.keys
        let margin = refreshMargin.inSeconds
        return try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT access_token, access_key_id, refresh_token, refresh_key_id,
                       access_expires_at IS NOT NULL AND access_expires_at < now() + make_interval(secs => \(margin))
                FROM user_tokens WHERE account_id = \(accountID) FOR UPDATE
                """, logger: logger)
            for try await (access, accessKey, refreshBytes, refreshKey, due) in rows.decode((ByteBuffer, String, ByteBuffer?, String?, Bool).self) {
                let current = String(decoding: try Self.open(keys, access, accessKey, place: Self.place("access_token", accountID)), as: UTF8.self)
                guard due else { return current }
                guard let refreshBytes, let refreshKey else { return current }
                let refreshToken = String(decoding: try Self.open(keys, refreshBytes, refreshKey, place: Self.place("refresh_token", accountID)),
                                          as: UTF8.self)
                let grant = try await refresh(refreshToken)
                let sealedAccess = try keys.seal(Array(grant.accessToken.utf8), place: Self.place("access_token", accountID))
                let sealedRefresh = try grant.refreshToken.map { try keys.seal(Array($0.utf8), place: Self.place("refresh_token", accountID)) }
                try await connection.query(Self.upsert(accountID: accountID, access: sealedAccess, refresh: sealedRefresh, grant: grant),
                                           logger: logger)
                return grant.accessToken
            }
            return nil
        }
    }

    /// Forgets the account's tokens.
    public func delete(accountID: Int64) async throws {
        try await client.query("DELETE FROM user_tokens WHERE account_id = \(accountID)", logger: logger)
    }

    /// Re-encrypts every stored token with the ring's current key (`asynccode keys rotate`); returns how many
    /// values were rewritten.
    public func rotate() async throws -> Int {
        let keys = self.keys
        var rewritten = 0
        let ids = try await client.query("SELECT account_id FROM user_tokens WHERE access_key_id <> \(keys.current.id) OR refresh_key_id <> \(keys.current.id)",
                                         logger: logger)
        var accounts: [Int64] = []
        for try await id in ids.decode(Int64.self) { accounts.append(id) }
        for accountID in accounts {
            rewritten += try await client.withTransaction(logger: logger) { connection in
                let rows = try await connection.query("""
                    SELECT access_token, access_key_id, refresh_token, refresh_key_id FROM user_tokens
                    WHERE account_id = \(accountID) FOR UPDATE
                    """, logger: logger)
                for try await (access, accessKey, refresh, refreshKey) in rows.decode((ByteBuffer, String, ByteBuffer?, String?).self) {
                    let accessPlace = Self.place("access_token", accountID)
                    let refreshPlace = Self.place("refresh_token", accountID)
                    let newAccess = try keys.seal(try Self.open(keys, access, accessKey, place: accessPlace), place: accessPlace)
                    var newRefresh: KeyRing.Sealed?
                    if let refresh, let refreshKey {
                        newRefresh = try keys.seal(try Self.open(keys, refresh, refreshKey, place: refreshPlace), place: refreshPlace)
                    }
                    try await connection.query("""
                        UPDATE user_tokens SET access_token = \(newAccess.bytes.bytea), access_key_id = \(newAccess.keyID),
                               refresh_token = \(newRefresh?.bytes.bytea), refresh_key_id = \(newRefresh?.keyID)
                        WHERE account_id = \(accountID)
                        """, logger: logger)
                    return newRefresh == nil ? 1 : 2
                }
                return 0
            }
        }
        return rewritten
    }

    static func place(_ column: String, _ accountID: Int64) -> String { "user_tokens.\(column):\(accountID)" }

    static func open(_ keys: KeyRing, _ bytes: ByteBuffer, _ keyID: String, place: String) throws -> [UInt8] {
        do {
            return try keys.open(KeyRing.Sealed(keyID: keyID, bytes: Array(bytes.readableBytesView)), place: place)
        } catch {
            throw SignInError(.undecryptable, "a stored user token cannot be decrypted: \(error)")
        }
    }

    static func upsert(accountID: Int64, access: KeyRing.Sealed, refresh: KeyRing.Sealed?, grant: TokenGrant) -> PostgresQuery {
        """
        INSERT INTO user_tokens (account_id, access_token, access_key_id, access_expires_at, refresh_token, refresh_key_id,
                                 refresh_expires_at, updated_at)
        VALUES (\(accountID), \(access.bytes.bytea), \(access.keyID),
                now() + make_interval(secs => \(grant.expiresIn.map(Double.init))),
                \(refresh?.bytes.bytea), \(refresh?.keyID),
                now() + make_interval(secs => \(grant.refreshTokenExpiresIn.map(Double.init))), now())
        ON CONFLICT (account_id) DO UPDATE SET
            access_token = excluded.access_token, access_key_id = excluded.access_key_id,
            access_expires_at = excluded.access_expires_at, refresh_token = excluded.refresh_token,
            refresh_key_id = excluded.refresh_key_id, refresh_expires_at = excluded.refresh_expires_at, updated_at = now()
        """
    }
}
