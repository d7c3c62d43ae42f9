import AsyncHTTPClient
import Foundation
import GitHubConformance
import GitHubSimulator
import NIOCore
import NIOHTTP1
import OpenSSLCrypto
import Testing
import TestSupport

/// The simulator's "Sign in with GitHub" for a GitHub App (the web flow with PKCE, expiring user tokens rotated by
/// refresh, revocation) and what a user token may read (`GET /user`, `/user/installations`, their repositories),
/// driven over plain HTTP. `withFixture` checks every REST call against GitHub's OpenAPI description at the end.
@Suite(.timeLimit(.minutes(3))) struct OAuthSimulatorTests {
    static let callback = "http://127.0.0.1:9/auth/callback"

    /// An HTTP client that does not follow redirects: each browser step is one request and its `Location`.
    struct Web {
        let http: HTTPClient
        let sim: GitHubSimulator

        struct Reply {
            var status: Int
            var headers: HTTPHeaders
            var text: String
            var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:] }
            var location: String? { headers.first(name: "Location") }
            /// The decoded query of the `Location`.
            var redirectQuery: [String: String] {
                guard let location, let query = location.split(separator: "?", maxSplits: 1).dropFirst().first else { return [:] }
                return Web.decodeForm(String(query))
            }
        }

        /// The pairs of `name=value&…` (percent-decoded).
        static func decodeForm(_ text: String) -> [String: String] {
            var fields: [String: String] = [:]
            for pair in text.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
                fields[parts[0]] = parts.count > 1 ? parts[1] : ""
            }
            return fields
        }

        func send(_ method: HTTPMethod, _ url: String, headers: [(String, String)] = [], body: String? = nil) async throws -> Reply {
            var request = HTTPClientRequest(url: url)
            request.method = method
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            if let body { request.body = .bytes(ByteBuffer(string: body)) }
            let response = try await http.execute(request, timeout: .seconds(30))
            let bytes = try await response.body.collect(upTo: 4 * 1024 * 1024)
            return Reply(status: Int(response.status.code), headers: response.headers, text: String(buffer: bytes))
        }

        /// The browser opens the authorize page.
        func authorize(_ parameters: [(String, String)]) async throws -> Reply {
            try await send(.GET, "\(sim.baseURL)/login/oauth/authorize?" + Self.form(parameters), headers: [("User-Agent", "Mozilla/5.0")])
        }

        /// The App's server posts to the token endpoint (form-encoded unless `json`), asking for JSON unless told.
        func token(_ parameters: [(String, String)], json: Bool = false, accept: String? = "application/json") async throws -> Reply {
            var headers = [("User-Agent", "asynccode/test")]
            if let accept { headers.append(("Accept", accept)) }
            if json {
                headers.append(("Content-Type", "application/json"))
                let data = try JSONSerialization.data(withJSONObject: Dictionary(parameters, uniquingKeysWith: { a, _ in a }))
                return try await send(.POST, "\(sim.baseURL)/login/oauth/access_token", headers: headers, body: String(decoding: data, as: UTF8.self))
            }
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
            return try await send(.POST, "\(sim.baseURL)/login/oauth/access_token", headers: headers, body: Self.form(parameters))
        }

        /// A REST call as asynccode makes it (a full URL is used as is, e.g. from a `Link` header).
        func rest(_ path: String, authorization: String?) async throws -> Reply {
            var headers = [("Accept", "application/vnd.github+json"), ("X-GitHub-Api-Version", "2022-11-28"), ("User-Agent", "asynccode/test")]
            if let authorization { headers.append(("Authorization", authorization)) }
            return try await send(.GET, path.hasPrefix("http") ? path : sim.apiURL + path, headers: headers)
        }

        static func form(_ parameters: [(String, String)]) -> String {
            let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
            return parameters.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: unreserved)!)" }.joined(separator: "&")
        }
    }

    /// `withFixture` (its checks included) with a `Web` client on its simulator.
    static func withWeb(simulator configuration: GitHubSimulator.Configuration = .init(), _ body: (Fixture, Web) async throws -> Void) async throws {
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.redirectConfiguration = .disallow
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
        do {
            try await withFixture(simulator: configuration) { f in try await body(f, Web(http: http, sim: f.sim)) }
            try await http.shutdown()
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    /// A PKCE pair: a 64-character verifier and its S256 challenge.
    static func pkce() -> (verifier: String, challenge: String) {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        let verifier = String((0..<64).map { _ in alphabet.randomElement()! })
        return (verifier, Base64URL.encode(SHA256Digest.hash(Array(verifier.utf8))))
    }

    /// Signs `login` in through the authorize page and exchanges the code; returns the tokens and the whole answer.
    static func signIn(_ f: Fixture, _ web: Web, login: String) async throws -> (access: String, refresh: String, json: [String: Any]) {
        let (verifier, challenge) = pkce()
        let page = try await web.authorize([("client_id", f.app.clientID), ("redirect_uri", callback), ("state", "s"),
                                            ("code_challenge", challenge), ("code_challenge_method", "S256"), ("login", login)])
        let code = try #require(page.redirectQuery["code"], "no code: \(page.status) \(page.location ?? page.text)")
        let reply = try await web.token([("client_id", f.app.clientID), ("client_secret", f.app.clientSecret), ("code", code),
                                         ("redirect_uri", callback), ("code_verifier", verifier)])
        let access = try #require(reply.json["access_token"] as? String, "exchange failed: \(reply.text)")
        return (access, try #require(reply.json["refresh_token"] as? String), reply.json)
    }

    /// Expects every field GitHub's description requires of `schema` (in `components/schemas`) in `object`.
    static func expectFields(_ object: [String: Any], of schema: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: OpenAPIConformance.specPath))
        let schemas = ((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["components"] as? [String: Any])?["schemas"] as? [String: Any]
        let required = try #require((schemas?[schema] as? [String: Any])?["required"] as? [String], "no schema \(schema)")
        let missing = required.filter { object[$0] == nil }
        #expect(missing.isEmpty, "\(schema) lacks \(missing)", sourceLocation: sourceLocation)
    }

    static func error(_ reply: Web.Reply) -> String? { reply.json["error"] as? String }

    // MARK: The web flow

    @Test func theCodeFlowWithPKCEIssuesExpiringTokensOnce() async throws {
        try await Self.withWeb { f, web in
            f.sim.setCallbackURLs(appID: f.app.id, [Self.callback])
            f.sim.setSignedInUser("alice")
            let (verifier, challenge) = Self.pkce()
            let state = "a b&c=d+é/?#%"
            let page = try await web.authorize([("client_id", f.app.clientID), ("redirect_uri", Self.callback), ("state", state),
                                                ("code_challenge", challenge), ("code_challenge_method", "S256")])
            #expect(page.status == 302)
            #expect(page.location?.hasPrefix(Self.callback + "?code=") == true)
            let code = try #require(page.redirectQuery["code"])
            #expect(code.count == 20 && code.allSatisfy { $0.isHexDigit })
            #expect(page.redirectQuery["state"] == state)
            let authorization = try #require(f.sim.oauthAuthorizations.last)
            #expect(authorization.login == "alice" && authorization.appID == f.app.id && authorization.state == state)
            #expect(authorization.codeChallenge == challenge && authorization.code == code)

            let client = [("client_id", f.app.clientID), ("client_secret", f.app.clientSecret)]
            let exchange = client + [("code", code), ("redirect_uri", Self.callback)]
            // Failures answer 200 with GitHub's error fields, and leave the code usable.
            let wrongVerifier = try await web.token(exchange + [("code_verifier", Self.pkce().verifier)])
            #expect(wrongVerifier.status == 200 && Self.error(wrongVerifier) == "bad_verification_code")
            #expect(wrongVerifier.json["error_description"] as? String == "The code passed is incorrect or expired.")
            #expect((wrongVerifier.json["error_uri"] as? String)?.hasPrefix("https://docs.github.com/") == true)
            #expect(try await Self.error(web.token(exchange)) == "bad_verification_code")  // no verifier
            let badSecret = try await web.token([("client_id", f.app.clientID), ("client_secret", (f.app.clientSecret.hasPrefix("0") ? "1" : "0") + f.app.clientSecret.dropFirst()),
                                                 ("code", code), ("redirect_uri", Self.callback), ("code_verifier", verifier)])
            #expect(Self.error(badSecret) == "incorrect_client_credentials")
            let otherRedirect = try await web.token(client + [("code", code), ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
                                                              ("code_verifier", verifier)])
            #expect(Self.error(otherRedirect) == "redirect_uri_mismatch")

            let granted = try await web.token(exchange + [("code_verifier", verifier)])
            #expect(granted.status == 200)
            #expect(granted.headers.first(name: "Content-Type")?.hasPrefix("application/json") == true)
            let access = try #require(granted.json["access_token"] as? String), refresh = try #require(granted.json["refresh_token"] as? String)
            #expect(access.hasPrefix("ghu_") && access.count == 40 && refresh.hasPrefix("ghr_") && refresh.count == 80)
            #expect(granted.json["expires_in"] as? Int == 28_800 && granted.json["refresh_token_expires_in"] as? Int == 15_811_200)
            #expect(granted.json["token_type"] as? String == "bearer" && granted.json["scope"] as? String == "")
            let issued = try #require(f.sim.userTokens.last)
            #expect(issued.accessToken == access && issued.login == "alice" && issued.appID == f.app.id)

            // A code works once.
            #expect(try await Self.error(web.token(exchange + [("code_verifier", verifier)])) == "bad_verification_code")

            // A code lives ten minutes; JSON bodies work too, and without Accept: JSON the answer is form-encoded.
            let late = try await web.authorize([("client_id", f.app.clientID), ("code_challenge", challenge), ("code_challenge_method", "S256")])
            let lateCode = try #require(late.redirectQuery["code"])
            #expect(late.location?.hasPrefix(Self.callback + "?code=") == true)  // no redirect_uri: the first callback URL
            #expect(late.redirectQuery["state"] == nil)
            f.clock.advance(by: 601)
            let expired = try await web.token(client + [("code", lateCode), ("code_verifier", verifier)], json: true, accept: nil)
            #expect(expired.headers.first(name: "Content-Type")?.hasPrefix("application/x-www-form-urlencoded") == true)
            #expect(expired.text.hasPrefix("error=bad_verification_code&error_description=The%20code%20passed"))
            let fresh = try await web.authorize([("client_id", f.app.clientID), ("code_challenge", challenge), ("code_challenge_method", "S256")])
            let formReply = try await web.token(client + [("code", try #require(fresh.redirectQuery["code"])), ("code_verifier", verifier)],
                                                json: true, accept: nil)
            let fields = Web.decodeForm(formReply.text)
            #expect(fields["access_token"]?.hasPrefix("ghu_") == true && fields["refresh_token"]?.hasPrefix("ghr_") == true)
            #expect(fields["expires_in"] == "28800" && fields["token_type"] == "bearer" && fields["scope"] == "")
        }
    }

    @Test func theAuthorizePageRefusesWhatGitHubRefuses() async throws {
        try await Self.withWeb { f, web in
            let challenge = Self.pkce().challenge
            let unknown = try await web.authorize([("client_id", "Iv1.unknown"), ("redirect_uri", Self.callback)])
            #expect(unknown.status == 404)
            // Nobody signed in: the sign-in page; a `login` parameter picks the user.
            let signedOut = try await web.authorize([("client_id", f.app.clientID), ("redirect_uri", Self.callback)])
            #expect(signedOut.status == 200 && signedOut.text.contains("Sign in"))
            #expect(f.sim.oauthAuthorizations.isEmpty)
            let named = try await web.authorize([("client_id", f.app.clientID), ("redirect_uri", "http://127.0.0.1:9/any"), ("login", "bob")])
            #expect(named.status == 302 && named.redirectQuery["code"] != nil)  // no callback URLs registered: any redirect
            #expect(f.sim.oauthAuthorizations.last?.login == "bob")

            f.sim.setCallbackURLs(appID: f.app.id, [Self.callback, "http://127.0.0.1:9/second"])
            f.sim.setSignedInUser("alice")
            let mismatch = try await web.authorize([("client_id", f.app.clientID), ("redirect_uri", "https://evil.example/cb"), ("state", "xyz")])
            #expect(mismatch.status == 302 && mismatch.location?.hasPrefix(Self.callback + "?") == true)
            #expect(mismatch.redirectQuery["error"] == "redirect_uri_mismatch" && mismatch.redirectQuery["state"] == "xyz")
            #expect(mismatch.redirectQuery["code"] == nil)
            let second = try await web.authorize([("client_id", f.app.clientID), ("redirect_uri", "http://127.0.0.1:9/second")])
            #expect(second.location?.hasPrefix("http://127.0.0.1:9/second?code=") == true)
            // PKCE: S256 only, with a 43-character challenge.
            for pkce in [[("code_challenge", challenge), ("code_challenge_method", "plain")], [("code_challenge", challenge)],
                         [("code_challenge_method", "S256")], [("code_challenge", "abc"), ("code_challenge_method", "S256")]] {
                let wrong = try await web.authorize([("client_id", f.app.clientID)] + pkce)
                #expect(wrong.redirectQuery["error"] == "invalid_request" && wrong.redirectQuery["code"] == nil, "\(pkce)")
            }
            f.sim.setAuthorizationDenied(true)
            let denied = try await web.authorize([("client_id", f.app.clientID), ("state", "s1")])
            #expect(denied.redirectQuery["error"] == "access_denied" && denied.redirectQuery["state"] == "s1")
            #expect(f.sim.oauthAuthorizations.count == 2)
        }
    }

    @Test func refreshRotatesThePairAndExpiryFollowsTheClock() async throws {
        var configuration = GitHubSimulator.Configuration()
        configuration.userTokenLifetime = 3600
        configuration.userRefreshTokenLifetime = 7200
        try await Self.withWeb(simulator: configuration) { f, web in
            let (access, refresh, first) = try await Self.signIn(f, web, login: "alice")
            #expect(first["expires_in"] as? Int == 3600 && first["refresh_token_expires_in"] as? Int == 7200)
            #expect(try await web.rest("/user", authorization: "Bearer \(access)").status == 200)

            // The access token expires on the simulator's clock; the refresh token then gets a new pair.
            f.clock.advance(by: 3601)
            let expired = try await web.rest("/user", authorization: "Bearer \(access)")
            #expect(expired.status == 401 && expired.json["message"] as? String == "Bad credentials")
            let client = [("client_id", f.app.clientID), ("client_secret", f.app.clientSecret)]
            let rotated = try await web.token(client + [("grant_type", "refresh_token"), ("refresh_token", refresh)])
            let newAccess = try #require(rotated.json["access_token"] as? String)
            let newRefresh = try #require(rotated.json["refresh_token"] as? String)
            #expect(newAccess != access && newRefresh != refresh && newAccess.hasPrefix("ghu_") && newRefresh.hasPrefix("ghr_"))
            #expect(f.sim.userTokenRefreshCount(login: "alice") == 1)
            #expect(f.sim.userTokenRefreshCount(login: "alice", appID: f.app.id) == 1)

            // The old refresh token is dead at once (HTTP 200 with GitHub's error), and so is the old access token.
            let reused = try await web.token(client + [("grant_type", "refresh_token"), ("refresh_token", refresh)])
            #expect(reused.status == 200 && Self.error(reused) == "bad_refresh_token")
            #expect(reused.json["error_description"] as? String == "The refresh token passed is incorrect or expired.")
            #expect(f.sim.userTokenRefreshCount(login: "alice") == 1)
            #expect(try await web.rest("/user", authorization: "token \(newAccess)").status == 200)

            // A refresh before expiry also retires the access token it came with.
            let third = try await web.token(client + [("grant_type", "refresh_token"), ("refresh_token", newRefresh)])
            #expect(try await web.rest("/user", authorization: "Bearer \(newAccess)").status == 401)
            #expect(f.sim.userTokenRefreshCount(login: "alice") == 2)
            let wrongGrant = try await web.token(client + [("grant_type", "password")])
            #expect(Self.error(wrongGrant) == "unsupported_grant_type")

            // Client credentials as HTTP Basic; the refresh token itself expires after its own lifetime.
            let basic = "Basic " + Data("\(f.app.clientID):\(f.app.clientSecret)".utf8).base64EncodedString()
            let thirdRefresh = try #require(third.json["refresh_token"] as? String)
            let fourth = try await web.send(.POST, "\(f.sim.baseURL)/login/oauth/access_token",
                                            headers: [("Accept", "application/json"), ("Authorization", basic),
                                                      ("Content-Type", "application/x-www-form-urlencoded")],
                                            body: "grant_type=refresh_token&refresh_token=\(thirdRefresh)")
            let fourthRefresh = try #require(fourth.json["refresh_token"] as? String, "\(fourth.text)")
            #expect(f.sim.userTokenRefreshCount(login: "alice") == 3)
            f.clock.advance(by: 7201)
            let stale = try await web.token(client + [("grant_type", "refresh_token"), ("refresh_token", fourthRefresh)])
            #expect(Self.error(stale) == "bad_refresh_token")
            // expireUserTokens: the admin shortcut for an expired access token.
            let again = try await Self.signIn(f, web, login: "alice")
            f.sim.expireUserTokens(login: "alice")
            #expect(try await web.rest("/user", authorization: "Bearer \(again.access)").status == 401)
            let renewed = try await web.token(client + [("grant_type", "refresh_token"), ("refresh_token", again.refresh)])
            #expect((renewed.json["access_token"] as? String)?.hasPrefix("ghu_") == true)
        }
    }

    // MARK: What a user token sees

    @Test func getUserAnswersForTheTokensUserOnly() async throws {
        try await Self.withWeb { f, web in
            f.sim.setUserProfile(login: "alice", name: "Alice Liddell", email: "alice@example.com")
            let access = try await Self.signIn(f, web, login: "alice").access
            let me = try await web.rest("/user", authorization: "Bearer \(access)")
            #expect(me.status == 200)
            try Self.expectFields(me.json, of: "private-user")
            #expect(me.json["login"] as? String == "alice" && me.json["type"] as? String == "User")
            #expect(me.json["name"] as? String == "Alice Liddell" && me.json["email"] as? String == "alice@example.com")
            #expect((me.json["avatar_url"] as? String)?.isEmpty == false)
            let profile = try await web.rest("/users/alice", authorization: "Bearer \(access)")
            #expect(profile.status == 200 && (profile.json["id"] as? Int) == (me.json["id"] as? Int))

            // Not a user token: an installation token or the App's JWT is refused with 403; nothing or junk with 401.
            let installationToken = try await f.client.tokens.token(installationID: f.installationID, repositoryID: f.repository.id).token
            for path in ["/user", "/user/installations", "/user/installations/\(f.installationID)/repositories"] {
                let reply = try await web.rest(path, authorization: "Bearer \(installationToken)")
                #expect(reply.status == 403 && reply.json["message"] as? String == "Resource not accessible by integration", "\(path)")
            }
            #expect(try await web.rest("/user", authorization: nil).status == 401)
            #expect(try await web.rest("/user", authorization: "Bearer ghu_\(String(repeating: "x", count: 36))").status == 401)
        }
    }

    @Test func installationsAndRepositoriesFollowTheUsersAccess() async throws {
        try await Self.withWeb { f, web in
            // acme (the fixture's installation): bob has one role on each of five repositories, none on the rest.
            let roles = ["admin", "maintain", "write", "triage", "read"]
            for role in roles {
                let repo = try await f.sim.createRepository(owner: "acme", name: "r-\(role)", installationID: f.installationID, isPrivate: true)
                f.sim.setCollaborator("bob", role: role, onRepositoryID: repo.id)
            }
            try await f.sim.createRepository(owner: "acme", name: "secret", installationID: f.installationID, isPrivate: true)
            let umbrella = f.sim.createInstallation(appID: f.app.id, account: "umbrella")
            let shared = try await f.sim.createRepository(owner: "umbrella", name: "shared", installationID: umbrella)
            f.sim.setCollaborator("bob", role: "write", onRepositoryID: shared.id)
            let own = f.sim.createInstallation(appID: f.app.id, account: "bob")
            try await f.sim.createRepository(owner: "bob", name: "dotfiles", installationID: own)
            let initech = f.sim.createInstallation(appID: f.app.id, account: "initech")
            try await f.sim.createRepository(owner: "initech", name: "tps", installationID: initech)
            let otherApp = try f.sim.createApp(slug: "other-app")
            let otherInstallation = f.sim.createInstallation(appID: otherApp.id, account: "acme")
            let foreign = try await f.sim.createRepository(owner: "acme", name: "foreign", installationID: otherInstallation)
            f.sim.setCollaborator("bob", role: "admin", onRepositoryID: foreign.id)

            let bob = "Bearer " + (try await Self.signIn(f, web, login: "bob").access)
            // Three installations, one per page, walked through the Link header.
            let installationPages = try await Self.pages(web, "/user/installations?per_page=1", authorization: bob)
            #expect(installationPages.count == 3)
            var seen: [Int64] = []
            for (index, reply) in installationPages.enumerated() {
                #expect(reply.json["total_count"] as? Int == 3)
                let installations = try #require(reply.json["installations"] as? [[String: Any]])
                #expect(installations.count == 1)
                for installation in installations {
                    try Self.expectFields(installation, of: "installation")
                    #expect((installation["app_id"] as? NSNumber)?.int64Value == f.app.id)
                    seen.append(try #require((installation["id"] as? NSNumber)?.int64Value))
                }
                let link = reply.headers.first(name: "Link") ?? ""
                #expect(link.contains("rel=\"last\"") == (index < 2))
                #expect(link.contains("rel=\"prev\"") == (index > 0) && link.contains("rel=\"first\"") == (index > 0))
            }
            #expect(seen == [f.installationID, umbrella, own])
            #expect(try await web.rest("/user/installations?per_page=1&page=9", authorization: bob).json["installations"] as? [Any] != nil)

            // acme's repositories bob can reach, two per page: the five with a role, with GitHub's permissions.
            let repositoryPages = try await Self.pages(web, "/user/installations/\(f.installationID)/repositories?per_page=2", authorization: bob)
            #expect(repositoryPages.count == 3)
            #expect(repositoryPages.allSatisfy { $0.json["total_count"] as? Int == 5 && $0.json["repository_selection"] as? String == "all" })
            let repositories = repositoryPages.flatMap { $0.json["repositories"] as? [[String: Any]] ?? [] }
            #expect(repositories.map { $0["name"] as? String } == roles.map { "r-\($0)" })
            for repository in repositories { try Self.expectFields(repository, of: "repository") }
            let permissions = repositories.map { ($0["permissions"] as? [String: Bool]) ?? [:] }
            let expected: [[String: Bool]] = [
                ["admin": true, "maintain": true, "push": true, "triage": true, "pull": true],
                ["admin": false, "maintain": true, "push": true, "triage": true, "pull": true],
                ["admin": false, "maintain": false, "push": true, "triage": true, "pull": true],
                ["admin": false, "maintain": false, "push": false, "triage": true, "pull": true],
                ["admin": false, "maintain": false, "push": false, "triage": false, "pull": true],
            ]
            #expect(permissions == expected)
            let mine = try await web.rest("/user/installations/\(own)/repositories", authorization: bob)
            #expect((mine.json["repositories"] as? [[String: Any]])?.first?["permissions"] as? [String: Bool]
                    == ["admin": true, "maintain": true, "push": true, "triage": true, "pull": true])  // the owner
            #expect(mine.headers.first(name: "Link") == nil)
            // Installations bob cannot see, or of another App: 404.
            #expect(try await web.rest("/user/installations/\(initech)/repositories", authorization: bob).status == 404)
            #expect(try await web.rest("/user/installations/\(otherInstallation)/repositories", authorization: bob).status == 404)

            // A user with no access sees nothing.
            let carol = "Bearer " + (try await Self.signIn(f, web, login: "carol").access)
            let none = try await web.rest("/user/installations", authorization: carol)
            #expect(none.status == 200 && none.json["total_count"] as? Int == 0 && (none.json["installations"] as? [Any])?.isEmpty == true)
            #expect(none.headers.first(name: "Link") == nil)
            #expect(try await web.rest("/user/installations/\(f.installationID)/repositories", authorization: carol).status == 404)
        }
    }

    @Test func revocationKillsTheTokensAndSendsTheWebhook() async throws {
        try await Self.withWeb { f, web in
            f.sim.configureWebhook(url: f.sim.webhookSinkURL, secret: "s3cret")
            let (access, refresh, _) = try await Self.signIn(f, web, login: "alice")
            let bob = try await Self.signIn(f, web, login: "bob").access
            let pending = try await web.authorize([("client_id", f.app.clientID), ("redirect_uri", Self.callback), ("login", "alice")])

            let delivery = try await f.sim.revokeUserAuthorization(login: "alice", appID: f.app.id)
            #expect(delivery.statusCode == 200 && delivery.event == "github_app_authorization" && delivery.action == "revoked")
            #expect(delivery.installationID == nil)
            let received = try #require(f.sim.requests.last { $0.path == "/_simulator/webhook-sink" })
            #expect(received.headers["x-github-event"] == "github_app_authorization")
            #expect(received.headers["x-hub-signature-256"]?.hasPrefix("sha256=") == true)
            let payload = try #require(received.jsonBody as? [String: Any])
            let example = try #require(try JSONSerialization.jsonObject(
                with: Data(TestEnvironment.fixture("webhooks/github_app_authorization/revoked.payload.json"))) as? [String: Any])
            #expect(Set(payload.keys) == Set(example.keys))
            let sender = try #require(payload["sender"] as? [String: Any])
            #expect(Set(sender.keys) == Set(try #require(example["sender"] as? [String: Any]).keys))
            #expect(sender["login"] as? String == "alice" && sender["type"] as? String == "User")

            // Everything alice held for the App is dead; bob is untouched.
            let dead = try await web.rest("/user", authorization: "Bearer \(access)")
            #expect(dead.status == 401 && dead.json["message"] as? String == "Bad credentials")
            let client = [("client_id", f.app.clientID), ("client_secret", f.app.clientSecret)]
            #expect(try await Self.error(web.token(client + [("grant_type", "refresh_token"), ("refresh_token", refresh)])) == "bad_refresh_token")
            let code = try #require(pending.redirectQuery["code"])
            #expect(try await Self.error(web.token(client + [("code", code), ("redirect_uri", Self.callback)])) == "bad_verification_code")
            #expect(try await web.rest("/user", authorization: "Bearer \(bob)").status == 200)
            #expect(f.sim.userTokens.filter { $0.login == "alice" }.allSatisfy { $0.revoked })
            // Signing in again authorizes anew.
            let again = try await Self.signIn(f, web, login: "alice")
            #expect(try await web.rest("/user", authorization: "Bearer \(again.access)").status == 200)
        }
    }

    /// Every page from `path` on, following `rel="next"` in the `Link` header (at most 20).
    static func pages(_ web: Web, _ path: String, authorization: String) async throws -> [Web.Reply] {
        var replies: [Web.Reply] = []
        var next: String? = path
        while let url = next, replies.count < 20 {
            let reply = try await web.rest(url, authorization: authorization)
            try #require(reply.status == 200, "\(url): \(reply.text)")
            replies.append(reply)
            next = linkTarget(reply.headers.first(name: "Link") ?? "", "next")
        }
        return replies
    }

    /// The URL of `relation` in a `Link` header.
    static func linkTarget(_ header: String, _ relation: String) -> String? {
        header.split(separator: ",").first { $0.contains("rel=\"\(relation)\"") }.flatMap { part in
            part.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "<>")) }
        }
    }
}
