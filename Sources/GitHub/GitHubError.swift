import Foundation

/// An error from the GitHub layer: a code, the HTTP status and GitHub's message where there is one.
///
/// The description never contains a token, a JWT or a private key: messages are passed through
/// ``GitHubError/redactingSecrets(_:)`` before they are stored.
public struct GitHubError: Error, CustomStringConvertible, Sendable {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        /// The App's private key could not be read or is not an RSA key.
        public static let invalidPrivateKey = Code(raw: "invalidPrivateKey")
        /// The configuration is unusable (bad base URL, unreadable CA bundle).
        public static let invalidConfiguration = Code(raw: "invalidConfiguration")
        /// GitHub answered with an unsuccessful status.
        public static let httpStatus = Code(raw: "httpStatus")
        /// GitHub's rate limit held longer than the client is willing to wait, or too often.
        public static let rateLimited = Code(raw: "rateLimited")
        /// The request could not be sent or the response not received.
        public static let transport = Code(raw: "transport")
        /// The response body did not decode into the expected model.
        public static let decoding = Code(raw: "decoding")
        public var description: String { raw }
    }

    /// The kind of failure.
    public var code: Code
    /// The HTTP status GitHub answered with, if it answered.
    public var status: Int?
    /// The method and path of the request, e.g. `POST /repos/o/r/issues/1/comments`.
    public var route: String?
    /// GitHub's `message` (or a short explanation), with secrets redacted.
    public var message: String
    /// How long GitHub asked us to wait, for ``Code/rateLimited``.
    public var retryAfter: Duration?

    /// Creates an error; `message` is redacted.
    public init(_ code: Code, status: Int? = nil, route: String? = nil, message: String, retryAfter: Duration? = nil) {
        self.code = code
        self.status = status
        self.route = route.map(Self.redactingSecrets)
        self.message = Self.redactingSecrets(message)
        self.retryAfter = retryAfter
    }

    public var description: String {
        var text = "GitHub"
        if let route { text += " \(route)" }
        text += " failed (\(code)"
        if let status { text += ", HTTP \(status)" }
        text += "): \(message)"
        if let retryAfter { text += " (retry after \(retryAfter.components.seconds) s)" }
        return text.replacingOccurrences(of: "\n", with: " ")
    }

    /// Returns `text` with anything that looks like a GitHub token, a JWT or a PEM block replaced
    /// by `[REDACTED]`.
    public static func redactingSecrets(_ text: String) -> String {
        var result = text
        let patterns = [
            #"-----BEGIN [A-Z ]+-----[\s\S]*?(-----END [A-Z ]+-----|$)"#,
            #"\b(ghs|ghp|gho|ghu|ghr|v1)[._][A-Za-z0-9_]{16,}"#,
            #"\bgithub_pat_[A-Za-z0-9_]{16,}"#,
            #"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"#,
            #"(?i)(authorization|token|bearer)([\s:="']+)[A-Za-z0-9_.\-]{16,}"#,
        ]
        for pattern in patterns {
            guard let regex = try? NSRegularExpression(pattern: pattern) else { continue }
            let range = NSRange(result.startIndex..., in: result)
            let template = pattern.hasPrefix("(?i)") ? "$1$2[REDACTED]" : "[REDACTED]"
            result = regex.stringByReplacingMatches(in: result, range: range, withTemplate: template)
        }
        return result
    }
}
