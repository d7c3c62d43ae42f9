import GitHub

/// Removes secrets from text that leaves the bot (comments, logs, the database): anything shaped like a
/// GitHub token, a JWT or a PEM block, and the exact values given.
public enum SecretRedactor {
    /// Returns `text` with secrets replaced by `[REDACTED]`.
    public static func redact(_ text: String, also values: [String] = []) -> String {
        var result = text
        for value in values where value.count >= 6 {
            result = result.replacingOccurrences(of: value, with: "[REDACTED]")
        }
        return GitHubError.redactingSecrets(result)
    }
}

/// Secret values kept for redaction; printing them shows nothing of them.
public struct SecretValues: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public let values: [String]

    public init(_ values: [String]) {
        self.values = values.filter { !$0.isEmpty }
    }

    public var description: String { "[\(values.count) secret values, redacted]" }
    public var debugDescription: String { description }
}
