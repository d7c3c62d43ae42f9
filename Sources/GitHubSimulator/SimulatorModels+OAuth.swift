import Foundation

/// One approval a user gave an App on the simulator's `GET /login/oauth/authorize` page ("Sign in with GitHub").
public struct SimulatedOAuthAuthorization: Sendable {
    /// The App the user authorized.
    public var appID: Int64
    /// The user who approved (the signed-in user, or the `login` query parameter).
    public var login: String
    /// The `redirect_uri` the page sent the browser to (the App's first callback URL when none was given).
    public var redirectURI: String
    /// Whether the request named `redirect_uri` itself (the code exchange must then repeat it).
    public var redirectURIGiven: Bool
    /// The `state` as given, if any.
    public var state: String?
    /// The PKCE `code_challenge` (S256), if any.
    public var codeChallenge: String?
    /// The one-time code the redirect carried.
    public var code: String
    /// When the user approved (on the simulator's clock).
    public var authorizedAt: Date
}

/// A user access token (`ghu_…`) and its refresh token (`ghr_…`), as issued by `POST /login/oauth/access_token`.
public struct SimulatedUserToken: Sendable {
    /// The user access token (`ghu_` and 36 characters).
    public var accessToken: String
    /// The refresh token (`ghr_` and 76 characters).
    public var refreshToken: String
    /// The App the user authorized.
    public var appID: Int64
    /// The user the token acts for.
    public var login: String
    /// When the access token stops working (`expires_in` after it was issued).
    public var expiresAt: Date
    /// When the refresh token stops working (`refresh_token_expires_in` after it was issued).
    public var refreshTokenExpiresAt: Date
    /// The user revoked the App's authorization (both tokens are dead).
    public var revoked: Bool
    /// The refresh token was used: both tokens were replaced by a new pair and are dead.
    public var rotated: Bool

    /// Whether the access token works at `now`.
    public func isLive(at now: Date) -> Bool { !revoked && !rotated && expiresAt > now }
}

/// A code the authorize page handed out, waiting for its exchange.
struct PendingOAuthCode: Sendable {
    var appID: Int64
    var login: String
    /// The `redirect_uri` of the authorize request when it named one (the exchange must send the same).
    var redirectURI: String?
    var codeChallenge: String?
    var createdAt: Date
}

/// A user's profile as `GET /user` shows it (what a test set; everything else is derived from the login).
struct SimulatedUserProfile: Sendable {
    var name: String?
    var email: String?
}
