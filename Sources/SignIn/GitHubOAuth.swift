import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A GitHub account as `GET /user` returns it (the fields asynccode keeps).
public struct GitHubAccount: Decodable, Sendable, Hashable {
    public var id: Int64
    public var login: String
    public var type: String?
    public var name: String?
    public var avatarURL: String?

    enum CodingKeys: String, CodingKey {
        case id, login, type, name
        case avatarURL = "avatar_url"
    }
}

/// The App's OAuth client for user-to-server tokens: the authorize address (with PKCE S256), the code exchange,
/// the refresh, and who a user token belongs to (`GET /user`).
public struct GitHubOAuth: Sendable {
    let settings: SignInSettings
    let http: HTTPClient

    public init(settings: SignInSettings, http: HTTPClient = .shared) {
        self.settings = settings
        self.http = http
    }

    /// Returns the address of GitHub's authorize page for a sign-in.
    public func authorizeURL(state: String, challenge: String) -> String {
        settings.webURL + "/login/oauth/authorize?" + Self.form([
            ("client_id", settings.clientID), ("redirect_uri", settings.callbackURL), ("state", state),
            ("code_challenge", challenge), ("code_challenge_method", "S256"),
        ])
    }

    /// Exchanges the code GitHub's redirect carried (with the PKCE verifier) for a user token.
    public func exchange(code: String, verifier: String) async throws -> TokenGrant {
        try await token([("client_id", settings.clientID), ("client_secret", settings.clientSecret), ("code", code),
                         ("redirect_uri", settings.callbackURL), ("code_verifier", verifier)])
    }

    /// Trades a refresh token for a new user token (and a new refresh token; the old one stops working).
    public func refresh(_ refreshToken: String) async throws -> TokenGrant {
        try await token([("client_id", settings.clientID), ("client_secret", settings.clientSecret),
                         ("grant_type", "refresh_token"), ("refresh_token", refreshToken)])
    }

    /// Returns the account a user token belongs to (`GET /user`).
    public func user(token: String) async throws -> GitHubAccount {
        let (status, body) = try await send(Self.apiRequest(settings.apiURL + "/user", token: token, version: settings.version))
        if status == 401 { throw SignInError(.refused, "GitHub does not accept the user token any more") }
        guard status == 200 else { throw SignInError(.githubUnavailable, "GitHub answered GET /user with \(status)") }
        do {
            return try JSONDecoder().decode(GitHubAccount.self, from: Data(body.readableBytesView))
        } catch {
            throw SignInError(.githubUnavailable, "GitHub's answer to GET /user is not a user")
        }
    }

    /// Returns a REST request made with a user token, with the headers GitHub's API asks for.
    static func apiRequest(_ url: String, token: String, version: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/vnd.github+json")
        request.headers.add(name: "X-GitHub-Api-Version", value: "2022-11-28")
        request.headers.add(name: "User-Agent", value: "asynccode/\(version)")
        request.headers.add(name: "Authorization", value: "Bearer " + token)
        return request
    }

    private func token(_ fields: [(String, String)]) async throws -> TokenGrant {
        var request = HTTPClientRequest(url: settings.webURL + "/login/oauth/access_token")
        request.method = .POST
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "User-Agent", value: "asynccode/\(settings.version)")
        request.body = .bytes(ByteBuffer(string: Self.form(fields)))
        let (status, body) = try await send(request)
        guard status == 200, let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
            throw SignInError(.githubUnavailable, "GitHub answered the token request with \(status)")
        }
        if let error = object["error"] as? String {
            // GitHub's own words (`bad_verification_code`, `bad_refresh_token`…); they hold no secret.
            let words = (object["error_description"] as? String).map { ": " + String($0.prefix(200)) } ?? ""
            throw SignInError(.refused, "GitHub refused the sign-in (\(String(error.prefix(64)))\(words))")
        }
        guard let access = object["access_token"] as? String, !access.isEmpty else {
            throw SignInError(.githubUnavailable, "GitHub's token answer holds no token")
        }
        return TokenGrant(accessToken: access, expiresIn: Self.integer(object["expires_in"]),
                          refreshToken: (object["refresh_token"] as? String).flatMap { $0.isEmpty ? nil : $0 },
                          refreshTokenExpiresIn: Self.integer(object["refresh_token_expires_in"]))
    }

    private func send(_ request: HTTPClientRequest) async throws -> (Int, ByteBuffer) {
        do {
            let response = try await http.execute(request, timeout: .seconds(30))
            return (Int(response.status.code), try await response.body.collect(upTo: 1024 * 1024))
        } catch let error as SignInError {
            throw error
        } catch {
            throw SignInError(.githubUnavailable, "cannot reach GitHub (\(type(of: error)))")
        }
    }

    static func integer(_ value: Any?) -> Int? {
        if let number = value as? NSNumber { return number.intValue }
        return (value as? String).flatMap { Int($0) }
    }

    /// Returns `application/x-www-form-urlencoded` text.
    static func form(_ fields: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
    }
}
