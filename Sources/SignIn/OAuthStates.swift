import Database
import Foundation
import Logging
import OpenSSLCrypto
import PostgresNIO

/// Sign-ins in progress: a random `state` (in the browser's cookie and GitHub's redirect) and the PKCE verifier
/// for it. Only the state's SHA-256 is stored, with the verifier sealed; a state is used once, within its lifetime.
public struct OAuthStates: Sendable {
    let client: BoundedClient
    let keys: KeyRing
    let lifetime: Duration
    let logger: Logger

    public init(client: PostgresClient, keys: KeyRing, lifetime: Duration, logger: Logger) {
        self.client = BoundedClient(client)
        self.keys = keys
        self.lifetime = lifetime
        self.logger = logger
    }

    /// A sign-in begun: the state for the cookie and the redirect, and the S256 challenge of its verifier.
    public struct Begun: Sendable {
        public var state: String
        public var challenge: String
    }

    /// Records a new sign-in; returns its state and PKCE challenge.
    public func begin() async throws -> Begun {
        let state = Base64URL.encode(try AESGCM.randomBytes(32))
        let verifier = Base64URL.encode(try AESGCM.randomBytes(32))
        let hash = SHA256Digest.hash(Array(state.utf8))
        let sealed = try keys.seal(Array(verifier.utf8), place: Self.place(hash))
        try await client.query("""
            INSERT INTO oauth_states (state_sha256, verifier, key_id, expires_at)
            VALUES (\(hash.bytea), \(sealed.bytes.bytea), \(sealed.keyID), now() + make_interval(secs => \(lifetime.inSeconds)))
            """, logger: logger)
        // Old, unused ones go (a sign-in abandoned half-way).
        _ = try? await client.query("DELETE FROM oauth_states WHERE expires_at < now() - interval '1 hour'", logger: logger)
        return Begun(state: state, challenge: Base64URL.encode(SHA256Digest.hash(Array(verifier.utf8))))
    }

    /// Uses up `state` when `cookie` holds the same value (compared in constant time) and it is recorded and
    /// unexpired; returns its PKCE verifier. Anything else throws ``SignInError/Code/invalidState`` and stores nothing.
    public func consume(state: String?, cookie: String?) async throws -> String {
        guard let state, let cookie, !state.isEmpty, state.utf8.count <= 128,
              ConstantTime.equals(Array(state.utf8), Array(cookie.utf8)) else {
            throw SignInError(.invalidState, "the sign-in state is missing or is not this browser's; start again at /login")
        }
        let hash = SHA256Digest.hash(Array(state.utf8))
        let rows = try await client.query("""
            DELETE FROM oauth_states WHERE state_sha256 = \(hash.bytea) RETURNING verifier, key_id, expires_at > now()
            """, logger: logger)
        for try await (verifier, keyID, live) in rows.decode((ByteBuffer, String, Bool).self) {
            guard live else { break }
            do {
                return String(decoding: try keys.open(KeyRing.Sealed(keyID: keyID, bytes: Array(verifier.readableBytesView)), place: Self.place(hash)), as: UTF8.self)
            } catch {
                throw SignInError(.undecryptable, "the sign-in state cannot be decrypted: \(error)")
            }
        }
        throw SignInError(.invalidState, "the sign-in state is unknown, used or expired; start again at /login")
    }

    static func place(_ hash: [UInt8]) -> String { "oauth_states.verifier:" + Hex.encode(hash) }
}

extension Array where Element == UInt8 {
    /// The bytes as a `bytea` bind (an array of `UInt8` would bind as `char[]`).
    var bytea: ByteBuffer { ByteBuffer(bytes: self) }
}

extension Duration {
    /// The duration in seconds.
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
