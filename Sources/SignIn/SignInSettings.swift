import Foundation
import OpenSSLCrypto

/// What "Sign in with GitHub" needs: the App's OAuth client (`GITHUB_CLIENT_ID`, `GITHUB_CLIENT_SECRET`), this
/// server's public address (`ASYNCCODE_PUBLIC_URL`, for the callback), GitHub's addresses, and the keys that
/// encrypt user tokens at rest (`ASYNCCODE_ENCRYPTION_KEYS`).
public struct SignInSettings: Sendable {
    public var clientID: String
    public var clientSecret: String
    /// This server as browsers reach it, without a trailing slash.
    public var publicURL: String
    /// GitHub's web address (`https://github.com`, or a GitHub Enterprise Server host), for `/login/oauth/…`.
    public var webURL: String
    /// GitHub's REST address (`GITHUB_API_URL`).
    public var apiURL: String
    public var keys: KeyRing
    /// How long a sign-in may take between `/login` and the callback.
    public var stateLifetime: Duration = .seconds(600)
    /// A session ends after this long unused, and after ``sessionLifetime`` in any case.
    public var sessionIdle: Duration = .seconds(24 * 3600)
    public var sessionLifetime: Duration = .seconds(14 * 24 * 3600)
    /// A user token is refreshed when it expires within this.
    public var refreshMargin: Duration = .seconds(15 * 60)
    /// The `User-Agent` version.
    public var version = "0.1.0"

    public init(clientID: String, clientSecret: String, publicURL: String, webURL: String, apiURL: String, keys: KeyRing) {
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.publicURL = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
        self.webURL = webURL.hasSuffix("/") ? String(webURL.dropLast()) : webURL
        self.apiURL = apiURL.hasSuffix("/") ? String(apiURL.dropLast()) : apiURL
        self.keys = keys
    }

    /// Where GitHub sends the browser back: `<public URL>/auth/callback`.
    public var callbackURL: String { publicURL + "/auth/callback" }
    /// Whether cookies get `Secure` (the public address is https).
    public var secureCookies: Bool { publicURL.lowercased().hasPrefix("https://") }
}

/// Why signing in or a signed-in request did not work. The description is safe to show: it never holds a
/// token, a code, a state or a key.
public struct SignInError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The callback's state is missing, reused, expired or not this browser's.
        case invalidState = "invalid-state"
        /// GitHub refused the code or the refresh token.
        case refused
        /// GitHub could not be reached or answered something unexpected.
        case githubUnavailable = "github-unavailable"
        /// A stored token cannot be decrypted (a key is missing from `ASYNCCODE_ENCRYPTION_KEYS`).
        case undecryptable
    }

    public var code: Code
    public var description: String

    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}
