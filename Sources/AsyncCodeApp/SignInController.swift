import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import OpenSSLCrypto
import SignIn

/// "Sign in with GitHub" and who is signed in:
///
/// - `GET /login`: a new sign-in state (single use, 10 minutes, in an HttpOnly cookie) and a redirect to GitHub's
///   authorize page for the App's OAuth client, with PKCE S256.
/// - `GET /auth/callback`: the state checked against the cookie (missing, reused, expired or mismatched → 400,
///   nothing stored), the code exchanged, the user read, the account and its tokens (encrypted) recorded, a
///   session opened; then back to `/` (the pages, ``PagesController``).
/// - `POST /logout`: ends the session (from this site only).
/// - `GET /api/auth/user`, `PUT /api/auth/user` (`{"display_name": …}`): the signed-in user.
///
/// Requests are signed in by the session cookie, or by `Authorization: Bearer <GitHub user token>` (asked of
/// GitHub, remembered for a minute). Without sign-in settings the routes answer 503 naming what is missing.
struct SignInController: Sendable {
    static let sessionCookie = "asynccode_session"
    static let stateCookie = "asynccode_oauth_state"
    /// Where to go back after signing in (a path of this site), kept beside the state.
    static let returnCookie = "asynccode_return_to"

    let signIn: Result<SignIn, ConfigurationError>
    /// Who sees what, synced right at sign-in.
    let access: RepositoryAccess?
    let bearers: BearerCache
    let limiter: RateLimiter
    let logger: Logger

    init(signIn: Result<SignIn, ConfigurationError>, limits: RateLimiter.Limits = .init(perUser: 300, perAddress: 600), logger: Logger) {
        self.signIn = signIn
        access = try? signIn.map { RepositoryAccess(client: $0.client.client, settings: $0.settings, logger: logger) }.get()
        bearers = BearerCache()
        limiter = RateLimiter(limits)
        self.logger = logger
    }

    func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/login") { request, _ in await self.respond { try await self.login(request, $0) } }
        router.get("/auth/callback") { request, _ in await self.respond { try await self.callback(request, $0) } }
        router.post("/logout") { request, _ in await self.respond { try await self.logout(request, $0) } }
        router.get("/api/auth/user") { request, context in
            await self.respond(request, context) { signIn in jsonResponse(.ok, Self.userJSON(try await self.user(request, signIn))) }
        }
        router.put("/api/auth/user") { request, context in await self.respond(request, context) { try await self.updateUser(request, $0) } }
    }

    // MARK: - Routes

    private func login(_ request: Request, _ signIn: SignIn) async throws -> Response {
        let (redirect, state) = try await signIn.begin()
        var response = Response(status: .found, headers: [.location: redirect, .cacheControl: "no-store"])
        let lifetime = Int(signIn.settings.stateLifetime.components.seconds)
        response.setCookie(cookie(Self.stateCookie, state, signIn, maxAge: lifetime, path: "/auth"))
        // `?next=/tasks/12`: back there after signing in (a path of this site only, never another site).
        let next = request.uri.queryParameters["next"].flatMap { Self.returnPath(String($0)) }
        response.setCookie(cookie(Self.returnCookie, next.map { Self.percentEncoded($0) } ?? "", signIn, maxAge: next == nil ? 0 : lifetime, path: "/auth"))
        return response
    }

    /// Returns `path` when it is a path of this site (`/…`, not `//…`, no backslash or control character, at most
    /// 512 bytes); `nil` otherwise.
    static func returnPath(_ path: String) -> String? {
        guard path.hasPrefix("/"), !path.hasPrefix("//"), path.utf8.count <= 512,
              !path.unicodeScalars.contains(where: { $0 == "\\" || $0.properties.generalCategory == .control || $0 == " " }) else { return nil }
        return path
    }

    static func percentEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "/-._~"))) ?? ""
    }

    private func callback(_ request: Request, _ signIn: SignIn) async throws -> Response {
        let query = request.uri.queryParameters
        let state = query["state"].map(String.init)
        let cookieState = request.cookies[Self.stateCookie]?.value
        if let error = query["error"] {
            // The user said no on GitHub: the state is still used up.
            _ = try? await signIn.states.consume(state: state, cookie: cookieState)
            throw Problem(slug: "sign-in-refused", title: "Sign-in was not approved", status: .badRequest,
                          detail: "GitHub answered \(String(error.prefix(64))); start again at /login")
        }
        let (session, user, token) = try await signIn.complete(code: query["code"].map(String.init), state: state, cookie: cookieState)
        // What the user may see, from GitHub now (the API reads it again when older than 10 minutes).
        do {
            try await access?.sync(accountID: user.accountID, token: token)
        } catch {
            logger.warning("cannot read the signed-in user's repositories yet", metadata: ["user.login": "\(user.login)", "error": "\(error)"])
        }
        let back = request.cookies[Self.returnCookie]?.value.removingPercentEncoding.flatMap(Self.returnPath) ?? "/"
        var response = Response(status: .found, headers: [.location: back, .cacheControl: "no-store"])
        response.setCookie(cookie(Self.sessionCookie, session, signIn, maxAge: Int(signIn.settings.sessionLifetime.components.seconds), path: "/"))
        response.setCookie(cookie(Self.stateCookie, "", signIn, maxAge: 0, path: "/auth"))
        response.setCookie(cookie(Self.returnCookie, "", signIn, maxAge: 0, path: "/auth"))
        logger.debug("session opened", metadata: ["user.login": "\(user.login)"])
        return response
    }

    private func logout(_ request: Request, _ signIn: SignIn) async throws -> Response {
        try checkOrigin(request, signIn)
        if let session = request.cookies[Self.sessionCookie]?.value { try await signIn.sessions.end(cookie: session) }
        var response = Response(status: .seeOther, headers: [.location: "/", .cacheControl: "no-store"])
        response.setCookie(cookie(Self.sessionCookie, "", signIn, maxAge: 0, path: "/"))
        return response
    }

    private func updateUser(_ request: Request, _ signIn: SignIn) async throws -> Response {
        let user = try await user(request, signIn)
        if request.headers[.authorization] == nil { try checkOrigin(request, signIn) }
        let body = try await request.limitedBody(4096)
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
            throw Problem(slug: "invalid-body", title: "The body is not a JSON object", status: .badRequest)
        }
        if let unknown = object.keys.sorted().first(where: { $0 != "display_name" }) {
            throw Problem(slug: "invalid-body", title: "Unknown field", status: .badRequest, detail: "`\(String(unknown.prefix(64)))` is not a field; known: display_name")
        }
        var name: String?
        switch object["display_name"] {
        case let text as String:
            guard text.count <= 100, !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw Problem(slug: "invalid-body", title: "Invalid display_name", status: .badRequest, detail: "`display_name` is one line of at most 100 characters")
            }
            name = text
        case is NSNull, nil:
            name = nil
        default:
            throw Problem(slug: "invalid-body", title: "Invalid display_name", status: .badRequest, detail: "`display_name` must be a string or null")
        }
        try await signIn.setDisplayName(name, accountID: user.accountID)
        var updated = user
        updated.displayName = name?.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty == false ? name?.trimmingCharacters(in: .whitespacesAndNewlines) : nil
        return jsonResponse(.ok, Self.userJSON(updated))
    }

    // MARK: - Who asks

    /// Returns the signed-in user: the session's, else the bearer token's; 401 otherwise.
    func user(_ request: Request, _ signIn: SignIn) async throws -> SignedInUser {
        try await caller(request, signIn).user
    }

    /// Returns who asks and how to act as them on GitHub: the bearer token they sent, or their stored token
    /// (refreshed when due; GitHub's `bad_refresh_token` ends their sessions).
    func caller(_ request: Request, _ signIn: SignIn) async throws -> Caller {
        let caller = try await authenticate(request, signIn)
        if let wait = await limiter.user(caller.user.accountID) { throw Problem.tooManyRequests(wait) }
        return caller
    }

    private func authenticate(_ request: Request, _ signIn: SignIn) async throws -> Caller {
        if let authorization = request.headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer", parts[1].utf8.count <= 512 else { throw Problem.notSignedIn() }
            let token = String(parts[1])
            return Caller(user: try await bearers.user(token: token, signIn: signIn), viaCookie: false) { token }
        }
        if let session = request.cookies[Self.sessionCookie]?.value, let user = try await signIn.sessions.user(cookie: session) {
            return Caller(user: user, viaCookie: true) {
                do {
                    return try await signIn.tokens.accessToken(accountID: user.accountID) { try await signIn.oauth.refresh($0) }
                } catch let error as SignInError where error.code == .refused {
                    // The refresh token is dead (revoked, expired, used): the session ends; no retry.
                    _ = try? await signIn.forget(githubID: user.githubID)
                    throw Problem.notSignedIn()
                }
            }
        }
        throw Problem.notSignedIn()
    }

    /// Refuses a cookie-authenticated change that does not come from this site's own pages.
    func checkOrigin(_ request: Request, _ signIn: SignIn) throws {
        let expected = Self.origin(signIn.settings.publicURL)
        guard let origin = request.headers[.origin], origin == expected else {
            throw Problem(slug: "cross-site", title: "Refused a request from another site", status: .forbidden,
                          detail: "changes must come from \(expected)")
        }
    }

    static func origin(_ url: String) -> String {
        guard let parsed = URL(string: url), let scheme = parsed.scheme, let host = parsed.host else { return url }
        return "\(scheme)://\(host)" + (parsed.port.map { ":\($0)" } ?? "")
    }

    static func userJSON(_ user: SignedInUser) -> [String: Any] {
        ["id": user.accountID, "github_id": user.githubID, "login": user.login, "display_name": user.displayName ?? NSNull(),
         "avatar_url": user.avatarURL ?? NSNull()]
    }

    private func cookie(_ name: String, _ value: String, _ signIn: SignIn, maxAge: Int, path: String) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: path, secure: signIn.settings.secureCookies, httpOnly: true, sameSite: .lax)
    }

    /// Runs an API request: the client address's rate limit first, then `body` (see ``respond(_:)``).
    func respond<Context: RequestContext>(_ request: Request, _ context: Context, _ body: (SignIn) async throws -> Response) async -> Response {
        if let address = (context as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress,
           let wait = await limiter.address(address) {
            return Problem.tooManyRequests(wait).response
        }
        return await respond(body)
    }

    /// Runs `body` with the sign-in, answering errors as problem documents.
    func respond(_ body: (SignIn) async throws -> Response) async -> Response {
        let signIn: SignIn
        switch self.signIn {
        case .success(let configured): signIn = configured
        case .failure(let missing):
            return Problem(slug: "sign-in-not-configured", title: "Sign-in is not configured", status: .serviceUnavailable,
                           detail: "\(missing.setting) \(missing.problem)").response
        }
        do {
            return try await body(signIn)
        } catch let problem as Problem {
            return problem.response
        } catch let error as SignInError {
            switch error.code {
            case .invalidState:
                return Problem(slug: "invalid-sign-in-state", title: "Invalid sign-in state", status: .badRequest, detail: error.description).response
            case .refused:
                return Problem(slug: "sign-in-refused", title: "GitHub refused the sign-in", status: .badRequest, detail: error.description).response
            case .githubUnavailable:
                return Problem(slug: "github-unavailable", title: "GitHub did not answer as expected", status: .badGateway, detail: error.description).response
            case .undecryptable:
                logger.error("a stored secret cannot be decrypted", metadata: ["error": "\(error)"])
                return Problem(slug: "undecryptable", title: "A stored token cannot be decrypted", status: .serviceUnavailable,
                               detail: "an encryption key is missing from ASYNCCODE_ENCRYPTION_KEYS").response
            }
        } catch {
            logger.error("sign-in request failed", metadata: ["error": "\(String(describing: type(of: error)))"])
            return Problem(slug: "internal", title: "Something went wrong", status: .internalServerError).response
        }
    }
}

/// Who asks: the user, whether by the session cookie (changes then need this site's `Origin`), and their GitHub
/// user token when needed.
struct Caller: Sendable {
    var user: SignedInUser
    var viaCookie: Bool
    var token: @Sendable () async throws -> String?
}

/// Bearer tokens asked of GitHub (`GET /user`), remembered for a minute by their SHA-256 (never the token).
actor BearerCache {
    private var known: [[UInt8]: (user: SignedInUser, until: ContinuousClock.Instant)] = [:]

    func user(token: String, signIn: SignIn) async throws -> SignedInUser {
        let key = SHA256Digest.hash(Array(token.utf8))
        let now = ContinuousClock.now
        if let entry = known[key], entry.until > now { return entry.user }
        let user: SignedInUser
        do {
            user = try await signIn.account(forToken: token)
        } catch let error as SignInError where error.code == .refused {
            throw Problem.notSignedIn()
        }
        if known.count > 10_000 { known = known.filter { $0.value.until > now } }
        known[key] = (user, now + .seconds(60))
        return user
    }
}
