import Foundation
import OpenSSLCrypto

// GitHub's web application flow for a GitHub App's user access tokens ("Sign in with GitHub"): the browser
// visits `GET /login/oauth/authorize`, GitHub sends it back to the App's callback URL with a one-time `code`
// and the `state`, and the App's server exchanges the code at `POST /login/oauth/access_token` (PKCE S256)
// for a user access token (`ghu_…`, 8 hours) and a refresh token (`ghr_…`, 6 months) that rotate on each refresh.
// These are web paths, not the REST API: failures are pages, redirects, or HTTP 200 with an `error` field.
extension SimulatorAPI {
    /// How long a code from the authorize page can be exchanged (GitHub: ten minutes).
    static let oauthCodeLifetime: TimeInterval = 600

    /// Routes `/login/oauth/…`, or returns nil for another path.
    func handleOAuth(method: String, segments: [String], query: [String: String], headers: [String: String],
                     body: [UInt8]) -> SimResponse? {
        switch (method, segments) {
        case ("GET", ["login", "oauth", "authorize"]): return authorizePage(query: query)
        case ("POST", ["login", "oauth", "access_token"]): return accessToken(query: query, headers: headers, body: body)
        default: return nil
        }
    }

    /// `GET /login/oauth/authorize`: the page where the signed-in user approves the App. Approval is immediate
    /// (as on GitHub for a user who authorized the App before): a 302 to the callback with `code` and `state`.
    func authorizePage(query: [String: String]) -> SimResponse {
        let now = configuration.clock()
        return store.withState { state -> SimResponse in
            guard let clientID = query["client_id"], let app = state.apps.values.first(where: { $0.clientID == clientID }) else {
                return .html(404, "Not Found")
            }
            let given = query["state"].map { [("state", $0)] } ?? []
            let redirect: String
            if let uri = query["redirect_uri"] {
                guard app.callbackURLs.isEmpty || app.callbackURLs.contains(uri) else {
                    // GitHub sends the browser to the registered callback URL, never to an unregistered one.
                    return .redirect(to: app.callbackURLs[0], OAuthError.authorizeRedirectURIMismatch.parameters + given)
                }
                redirect = uri
            } else if let first = app.callbackURLs.first {
                redirect = first
            } else {
                return .html(400, "The redirect_uri is not associated with this application.")
            }
            guard let components = URLComponents(string: redirect), components.scheme != nil, components.host != nil else {
                return .html(400, "The redirect_uri is not a valid URL.")
            }
            let challenge = query["code_challenge"]
            if challenge != nil || query["code_challenge_method"] != nil {
                guard query["code_challenge_method"] == "S256" else {
                    let error = OAuthError.invalidRequest("code_challenge_method must be S256 (plain is not supported).")
                    return .redirect(to: redirect, error.parameters + given)
                }
                guard let challenge, challenge.count == 43, Base64URL.decode(challenge)?.count == 32 else {
                    let error = OAuthError.invalidRequest("code_challenge must be the 43-character base64url SHA-256 of the code_verifier.")
                    return .redirect(to: redirect, error.parameters + given)
                }
            }
            guard let login = query["login"].flatMap({ $0.isEmpty ? nil : $0 }) ?? state.signedInUser else {
                return Self.signInForm(appName: app.name, query: query)
            }
            if state.authorizationDenied {
                return .redirect(to: redirect, OAuthError.accessDenied.parameters + given)
            }
            let code = randomHex(bytes: 10)
            state.oauthCodes[code] = PendingOAuthCode(appID: app.id, login: login, redirectURI: query["redirect_uri"],
                                                      codeChallenge: challenge, createdAt: now)
            state.oauthAuthorizations.append(SimulatedOAuthAuthorization(
                appID: app.id, login: login, redirectURI: redirect, redirectURIGiven: query["redirect_uri"] != nil,
                state: query["state"], codeChallenge: challenge, code: code, authorizedAt: now))
            state.knownUsers.insert(login)
            return .redirect(to: redirect, [("code", code)] + given)
        }
    }

    /// The page shown when nobody is signed in to the simulated GitHub: a form that asks for a login and comes back to
    /// the same authorize URL with `login=` (a browser in a test types the user's name, as on GitHub's sign-in page).
    static func signInForm(appName: String, query: [String: String]) -> SimResponse {
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        let hidden = query.filter { $0.key != "login" }.sorted { $0.key < $1.key }
            .map { "<input type=\"hidden\" name=\"\(escape($0.key))\" value=\"\(escape($0.value))\">" }.joined(separator: "\n")
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Sign in to GitHub</title></head><body>
            <p>Sign in to GitHub to continue to \(escape(appName)).</p>
            <form method="get" action="/login/oauth/authorize">
            \(hidden)
            <label for="login_field">Username</label> <input id="login_field" name="login" autocomplete="username">
            <button type="submit">Sign in</button>
            </form>
            </body></html>

            """
        return SimResponse(status: 200, headers: [("Content-Type", "text/html; charset=utf-8")], body: Array(html.utf8))
    }

    /// `POST /login/oauth/access_token`: a code (with its PKCE verifier) or a refresh token for a new user access
    /// token and refresh token. Parameters come form-encoded, as JSON or in the query; client credentials in
    /// them or as HTTP Basic. Answers JSON for `Accept: application/json`, else form-encoded; failures are 200.
    func accessToken(query: [String: String], headers: [String: String], body: [UInt8]) -> SimResponse {
        let wantsJSON = (headers["accept"] ?? "").lowercased().contains("json")
        var fields = query.merging(Self.oauthFields(body: body, contentType: headers["content-type"])) { _, fromBody in fromBody }
        if let basic = Self.basicCredentials(headers["authorization"]) {
            fields["client_id"] = fields["client_id"] ?? basic.user
            fields["client_secret"] = fields["client_secret"] ?? basic.password
        }
        let now = configuration.clock()
        let result = store.withState { state -> Result<SimulatedUserToken, OAuthError> in
            guard let clientID = fields["client_id"], let app = state.apps.values.first(where: { $0.clientID == clientID }),
                  let secret = fields["client_secret"], ConstantTime.equals(Array(secret.utf8), Array(app.clientSecret.utf8)) else {
                return .failure(.incorrectClientCredentials)
            }
            switch fields["grant_type"] ?? "authorization_code" {
            case "authorization_code": return state.redeemOAuthCode(app: app, fields: fields, now: now, configuration: configuration)
            case "refresh_token": return state.refreshUserToken(app: app, refreshToken: fields["refresh_token"], now: now, configuration: configuration)
            default: return .failure(.unsupportedGrantType)
            }
        }
        switch result {
        case .success(let token):
            return .oauth([
                ("access_token", token.accessToken), ("expires_in", Int(configuration.userTokenLifetime)),
                ("refresh_token", token.refreshToken), ("refresh_token_expires_in", Int(configuration.userRefreshTokenLifetime)),
                ("scope", ""), ("token_type", "bearer"),
            ], json: wantsJSON)
        case .failure(let error):
            return .oauth(error.parameters.map { ($0.0, $0.1 as Any) }, json: wantsJSON)
        }
    }

    /// The parameters in a form-encoded or JSON body (string, number and boolean values).
    static func oauthFields(body: [UInt8], contentType: String?) -> [String: String] {
        guard !body.isEmpty else { return [:] }
        let isJSON = (contentType ?? "").lowercased().contains("json") || body.first == UInt8(ascii: "{")
        guard isJSON else { return parseForm(String(decoding: body, as: UTF8.self)) }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else { return [:] }
        return object.compactMapValues { value in
            if let text = value as? String { return text }
            if let number = value as? NSNumber { return number.stringValue }
            return nil
        }
    }

    /// `Authorization: Basic base64(client_id:client_secret)`.
    static func basicCredentials(_ authorization: String?) -> (user: String, password: String)? {
        guard let authorization, authorization.lowercased().hasPrefix("basic "),
              let data = Data(base64Encoded: String(authorization.dropFirst("basic ".count)).trimmingCharacters(in: .whitespaces)) else {
            return nil
        }
        let parts = String(decoding: data, as: UTF8.self).split(separator: ":", maxSplits: 1).map(String.init)
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }
}

extension SimulatorStore.State {
    /// The key of a user's authorization of an App (refresh counts are kept by it).
    static func userKey(appID: Int64, login: String) -> String { "\(appID)/\(login.lowercased())" }

    /// Exchanges a code from the authorize page: the App's, under ten minutes old, not used before, the same
    /// `redirect_uri` as the authorize request named, and a `code_verifier` whose S256 is the challenge.
    /// A failed exchange leaves the code usable; a successful one uses it up.
    mutating func redeemOAuthCode(app: SimulatedApp, fields: [String: String], now: Date,
                                  configuration: GitHubSimulator.Configuration) -> Result<SimulatedUserToken, OAuthError> {
        guard let code = fields["code"], let pending = oauthCodes[code], pending.appID == app.id else {
            return .failure(.badVerificationCode)
        }
        guard now.timeIntervalSince(pending.createdAt) < SimulatorAPI.oauthCodeLifetime else {
            oauthCodes[code] = nil
            return .failure(.badVerificationCode)
        }
        if let expected = pending.redirectURI {
            guard fields["redirect_uri"] == expected else { return .failure(.redirectURIMismatch) }
        } else if let given = fields["redirect_uri"], !app.callbackURLs.isEmpty, !app.callbackURLs.contains(given) {
            return .failure(.redirectURIMismatch)
        }
        if let challenge = pending.codeChallenge {
            // RFC 7636: 43 to 128 characters of [A-Za-z0-9-._~]; BASE64URL(SHA256(ASCII(verifier))) == challenge.
            let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
            guard let verifier = fields["code_verifier"], (43...128).contains(verifier.count), verifier.allSatisfy(allowed.contains),
                  Base64URL.encode(SHA256Digest.hash(Array(verifier.utf8))) == challenge else {
                return .failure(.badVerificationCode)
            }
        }
        oauthCodes[code] = nil
        return .success(issueUserToken(appID: app.id, login: pending.login, now: now, configuration: configuration))
    }

    /// Rotates a live refresh token: a new pair; the old refresh token and access token stop working at once.
    mutating func refreshUserToken(app: SimulatedApp, refreshToken: String?, now: Date,
                                   configuration: GitHubSimulator.Configuration) -> Result<SimulatedUserToken, OAuthError> {
        guard let refreshToken,
              let index = userTokens.firstIndex(where: { $0.refreshToken == refreshToken && $0.appID == app.id }),
              !userTokens[index].revoked, !userTokens[index].rotated, userTokens[index].refreshTokenExpiresAt > now else {
            return .failure(.badRefreshToken)
        }
        userTokens[index].rotated = true
        let login = userTokens[index].login
        userTokenRefreshes[Self.userKey(appID: app.id, login: login), default: 0] += 1
        return .success(issueUserToken(appID: app.id, login: login, now: now, configuration: configuration))
    }

    mutating func issueUserToken(appID: Int64, login: String, now: Date, configuration: GitHubSimulator.Configuration) -> SimulatedUserToken {
        let token = SimulatedUserToken(
            accessToken: "ghu_" + randomAlphanumeric(36), refreshToken: "ghr_" + randomAlphanumeric(76), appID: appID, login: login,
            expiresAt: now.addingTimeInterval(configuration.userTokenLifetime),
            refreshTokenExpiresAt: now.addingTimeInterval(configuration.userRefreshTokenLifetime), revoked: false, rotated: false)
        userTokens.append(token)
        return token
    }
}

/// An OAuth error as GitHub words it (`error`, `error_description`, `error_uri`).
struct OAuthError: Error {
    var code: String
    var description: String
    var uri: String

    private static let tokenErrors = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"
    private static let authorizeErrors = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/"

    static let incorrectClientCredentials = OAuthError(
        code: "incorrect_client_credentials", description: "The client_id and/or client_secret passed are incorrect.",
        uri: tokenErrors + "#incorrect-client-credentials")
    static let redirectURIMismatch = OAuthError(
        code: "redirect_uri_mismatch", description: "The redirect_uri MUST match the registered callback URL for this application.",
        uri: tokenErrors + "#redirect-uri-mismatch2")
    static let badVerificationCode = OAuthError(
        code: "bad_verification_code", description: "The code passed is incorrect or expired.", uri: tokenErrors + "#bad-verification-code")
    static let badRefreshToken = OAuthError(
        code: "bad_refresh_token", description: "The refresh token passed is incorrect or expired.",
        uri: "https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens")
    static let unsupportedGrantType = OAuthError(
        code: "unsupported_grant_type", description: "The grant type is not supported.", uri: tokenErrors)
    static let authorizeRedirectURIMismatch = OAuthError(
        code: "redirect_uri_mismatch", description: "The redirect_uri MUST match the registered callback URL for this application.",
        uri: authorizeErrors + "#redirect-uri-mismatch")
    static let accessDenied = OAuthError(
        code: "access_denied", description: "The user has denied your application access.", uri: authorizeErrors + "#access-denied")
    static func invalidRequest(_ description: String) -> OAuthError {
        OAuthError(code: "invalid_request", description: description, uri: authorizeErrors)
    }

    var parameters: [(String, String)] { [("error", code), ("error_description", description), ("error_uri", uri)] }
}

extension SimResponse {
    /// A 302 to `url` with `parameters` added to its query.
    static func redirect(to url: String, _ parameters: [(String, String)]) -> SimResponse {
        let separator = url.contains("?") ? "&" : "?"
        return SimResponse(status: 302, headers: [("Location", url + separator + formEncode(parameters))])
    }

    /// The token endpoint's answer: JSON (numbers stay numbers) or `application/x-www-form-urlencoded`, always 200.
    static func oauth(_ parameters: [(String, Any)], json: Bool) -> SimResponse {
        if json { return .json(200, Dictionary(parameters, uniquingKeysWith: { first, _ in first })) }
        return SimResponse(status: 200, headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
                           body: Array(formEncode(parameters.map { ($0.0, "\($0.1)") }).utf8))
    }
}

/// `name=value&…` with everything but RFC 3986's unreserved characters percent-encoded.
func formEncode(_ parameters: [(String, String)]) -> String {
    let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    func encode(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text }
    return parameters.map { "\(encode($0.0))=\(encode($0.1))" }.joined(separator: "&")
}

/// The pairs of an `application/x-www-form-urlencoded` text (`+` is a space); the first of a repeated name wins.
func parseForm(_ text: String) -> [String: String] {
    var fields: [String: String] = [:]
    for pair in text.split(separator: "&") {
        let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ") }
        let name = parts[0].removingPercentEncoding ?? parts[0]
        if fields[name] == nil { fields[name] = parts.count > 1 ? (parts[1].removingPercentEncoding ?? parts[1]) : "" }
    }
    return fields
}

/// `bytes` random bytes (from the system's secure generator) as lowercase hex.
func randomHex(bytes: Int) -> String {
    var generator = SystemRandomNumberGenerator()
    return Hex.encode((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) })
}
