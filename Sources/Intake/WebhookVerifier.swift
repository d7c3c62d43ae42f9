import OpenSSLCrypto

/// Checks `X-Hub-Signature-256` headers against the webhook secrets.
///
/// Only HMAC-SHA256 is accepted: a request signed with the legacy SHA-1 header alone is refused.
public struct WebhookVerifier: Sendable {
    private let keys: [[UInt8]]

    /// Creates a verifier that accepts signatures made with any of `secrets` (current first, then previous).
    public init(secrets: [String]) {
        self.keys = secrets.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    /// Returns whether `signatureHeader` is a valid `sha256=` signature of `body`.
    public func isValid(signatureHeader: String?, body: some ContiguousBytes) -> Bool {
        guard let header = signatureHeader, let code = Self.parse(header) else { return false }
        var valid = false
        for key in keys {
            // Every key is tried so the time taken does not tell which one matched.
            if HMACSHA256.isValid(code: code, for: body, key: key) { valid = true }
        }
        return valid
    }

    /// Returns the 32 bytes a `sha256=<64 hex digits>` header carries.
    static func parse(_ header: String) -> [UInt8]? {
        let trimmed = header.utf8.count == 71 ? Substring(header) : Substring(header).drop(while: \.isWhitespace)
        guard trimmed.utf8.count >= 71, trimmed.prefix(7).lowercased() == "sha256=" else { return nil }
        let hex = trimmed.dropFirst(7).prefix(while: { !$0.isWhitespace })
        guard hex.utf8.count == 64, let bytes = Hex.decode(hex) else { return nil }
        return bytes
    }

    /// Returns the `sha256=` header value for `body` under `secret`, as GitHub would send it.
    public static func signature(for body: some ContiguousBytes, secret: String) -> String {
        "sha256=" + Hex.encode(HMACSHA256.authenticationCode(for: body, key: Array(secret.utf8)))
    }
}
