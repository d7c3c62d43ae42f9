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
        // Bytes, not characters: `Character.isWhitespace` asks Unicode's tables for every byte of every request.
        var utf8 = Substring(header).utf8
        while let first = utf8.first, isSpace(first) { utf8 = utf8.dropFirst() }
        guard utf8.count >= 71 else { return nil }
        for (byte, expected) in zip(utf8.prefix(7), "sha256=".utf8) where byte != expected {
            // The prefix in either case (`SHA256=` too), as before; only ASCII letters fold.
            guard (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte), byte | 0x20 == expected else { return nil }
        }
        let hex = utf8.dropFirst(7).prefix(while: { !isSpace($0) })
        guard hex.count == 64, let bytes = Hex.decode(utf8: Array(hex)) else { return nil }
        return bytes
    }

    /// Whether `byte` is ASCII white space (space, tab, line feed, vertical tab, form feed, carriage return).
    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }

    /// Returns the `sha256=` header value for `body` under `secret`, as GitHub would send it.
    public static func signature(for body: some ContiguousBytes, secret: String) -> String {
        "sha256=" + Hex.encode(HMACSHA256.authenticationCode(for: body, key: Array(secret.utf8)))
    }
}
