import APIConformance
import AsyncCodeApp
import AsyncHTTPClient
import Foundation
import Synchronization
import GitHubSimulator
import NIOCore
import NIOHTTP1
import OpenSSLCrypto
import Testing
import TestSupport

/// "Sign in with GitHub" through the simulator's OAuth pages (issue 20): the whole redirect dance with PKCE,
/// states that are missing, forged or reused, the session, a bearer token, sign-out, and GitHub's revocation.
@Suite(.serialized, .timeLimit(.minutes(5))) struct SignInEndToEndTests {
    @Test func aUserSignsInAndOutAndRevocationEndsTheirSessions() async throws {
        let port = try freePort()
        let publicURL = "http://127.0.0.1:\(port)"
        try await EndToEnd.with(configure: { configuration, setup in
            configuration.port = port
            configuration.publicURL = URL(string: publicURL)
            configuration.clientID = setup.app.clientID
            configuration.clientSecret = setup.app.clientSecret
            configuration.encryptionKeys = try KeyRing(parsing: try KeyRing.newEntry(id: "k1"))
        }) { e2e in
            e2e.sim.setCallbackURLs(appID: e2e.setup.app.id, [publicURL + "/auth/callback"])
            let browser = Browser(base: publicURL)

            // Not signed in.
            #expect(try await browser.get("/api/auth/user").status == 401)

            // /login → GitHub's authorize page (alice approves) → /auth/callback → a session.
            e2e.sim.setSignedInUser("alice")
            let callback = try await browser.startSignIn(e2e.sim)
            #expect(callback.hasPrefix(publicURL + "/auth/callback?code="))
            let signedIn = try await browser.get(callback)
            #expect(signedIn.status == 302 && signedIn.location == "/")
            let me = try await browser.get("/api/auth/user")
            #expect(me.status == 200)
            #expect(me.json["login"] as? String == "alice")
            let authorization = try #require(e2e.sim.oauthAuthorizations.last)
            #expect(authorization.codeChallenge?.count == 43)

            // The same redirect again: the state is used up.
            let reused = try await browser.get(callback)
            #expect(reused.status == 400 && reused.json["type"] as? String == "https://asynccode.dev/problems/invalid-sign-in-state")
            // A forged state, and a state without this browser's cookie: refused, nothing stored.
            let sessionsBefore = try await e2e.string("SELECT count(*)::text FROM user_sessions")
            #expect(try await browser.get("/auth/callback?code=abc&state=forged", cookies: ["asynccode_oauth_state": "forged"]).status == 400)
            _ = try await Browser(base: publicURL).startSignIn(e2e.sim)
            let stranger = Browser(base: publicURL)
            let hijacked = try #require(e2e.sim.oauthAuthorizations.last)
            #expect(try await stranger.get("/auth/callback?code=\(hijacked.code)&state=\(hijacked.state ?? "")").status == 400)
            #expect(try await e2e.string("SELECT count(*)::text FROM user_sessions") == sessionsBefore)

            // The token GitHub gave is stored encrypted, and works as a bearer token.
            #expect(try await e2e.string("SELECT count(*)::text FROM user_tokens WHERE position('ghu_'::bytea in access_token) > 0") == "0")
            let token = try #require(e2e.sim.userTokens.last { $0.login == "alice" && !$0.revoked }?.accessToken)
            let bearer = try await Browser(base: publicURL).get("/api/auth/user", headers: ["Authorization": "Bearer \(token)"])
            #expect(bearer.status == 200 && bearer.json["login"] as? String == "alice")
            #expect(try await Browser(base: publicURL).get("/api/auth/user", headers: ["Authorization": "Bearer ghu_nonsense"]).status == 401)

            // A change from this site's page is taken; without its Origin it is refused; unknown fields are named.
            let renamed = try await browser.send(.PUT, "/api/auth/user", json: #"{"display_name":"Alice A."}"#, origin: publicURL)
            #expect(renamed.status == 200 && renamed.json["display_name"] as? String == "Alice A.")
            #expect(try await browser.send(.PUT, "/api/auth/user", json: #"{"display_name":"x"}"#, origin: nil).status == 403)
            let unknown = try await browser.send(.PUT, "/api/auth/user", json: #"{"nick":"x"}"#, origin: publicURL)
            #expect(unknown.status == 400 && (unknown.json["detail"] as? String)?.contains("`nick`") == true)

            // Sign-out ends the session.
            #expect(try await browser.send(.POST, "/logout", json: nil, origin: publicURL).status == 303)
            #expect(try await browser.get("/api/auth/user").status == 401)

            // Signed in again, then alice revokes the App on GitHub: the webhook ends her sessions and tokens.
            _ = try await browser.get(try await browser.startSignIn(e2e.sim))
            #expect(try await browser.get("/api/auth/user").status == 200)
            try await e2e.sim.revokeUserAuthorization(login: "alice", appID: e2e.setup.app.id)
            try await eventually("alice's session ends") { try await browser.get("/api/auth/user").status == 401 }
            #expect(try await e2e.string("SELECT count(*)::text FROM user_tokens") == "0")
            // Every API answer here is one the API description documents.
            let exchanges = Browser.exchanges.withLock { $0.removeValue(forKey: publicURL) ?? [] }.filter { $0.path.hasPrefix("/api/") }
            let description = try APIConformance.shared
            let violations = exchanges.flatMap {
                description.violations(method: $0.method, path: $0.path, status: $0.status, contentType: $0.contentType, body: $0.body)
            }
            #expect(exchanges.count >= 8 && violations.isEmpty, "\(exchanges.count) answers; \(violations.prefix(20).joined(separator: "\n"))")
        }
    }

    @Test func withoutSignInSettingsTheRoutesSayWhatIsMissing() async throws {
        try await EndToEnd.with { e2e in
            let browser = Browser(base: "http://127.0.0.1:\(e2e.port)")
            let login = try await browser.get("/login")
            #expect(login.status == 503)
            #expect((login.json["detail"] as? String)?.hasPrefix("GITHUB_CLIENT_ID is not set") == true)
        }
    }
}

/// A browser without redirects: it keeps cookies per name, as one would for one site.
final class Browser: @unchecked Sendable {
    struct Answer {
        var status: Int
        var location: String?
        var body: String
        var headers: [String: String] = [:]
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]) ?? [:] }
    }

    /// A request a browser made of the bot and what it answered.
    struct Exchange: Sendable {
        var method: String
        var path: String
        var status: Int
        var contentType: String?
        var body: [UInt8]
    }

    /// Every exchange of every browser, by the bot's address (one per test).
    static let exchanges = Mutex<[String: [Exchange]]>([:])

    /// One client for every browser of the test process (it lives as long as the process).
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    let base: String
    var http: HTTPClient { Self.http }
    private var cookies: [String: String] = [:]
    private let lock = NSLock()

    init(base: String) {
        self.base = base
    }

    /// Returns the value of one of this browser's cookies.
    func cookie(_ name: String) -> String? { lock.withLock { cookies[name] } }

    /// Follows /login to GitHub's authorize page; returns where GitHub sends the browser back.
    func startSignIn(_ sim: GitHubSimulator) async throws -> String {
        let login = try await get("/login")
        guard login.status == 302, let authorize = login.location else { throw TestFailure("/login answered \(login.status)") }
        let approved = try await get(authorize)
        guard approved.status == 302, let back = approved.location else { throw TestFailure("GitHub answered \(approved.status)") }
        return back
    }

    func get(_ path: String, cookies extra: [String: String] = [:], headers: [String: String] = [:]) async throws -> Answer {
        try await send(.GET, path, json: nil, origin: nil, cookies: extra, headers: headers)
    }

    /// Posts a form (`application/x-www-form-urlencoded`), as a browser submits one.
    func post(_ path: String, form: [(String, String)], origin: String?) async throws -> Answer {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let encoded = form.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
        return try await send(.POST, path, json: nil, origin: origin, body: (encoded, "application/x-www-form-urlencoded"))
    }

    func send(_ method: HTTPMethod, _ path: String, json: String?, origin: String?, cookies extra: [String: String] = [:],
              headers: [String: String] = [:], body form: (text: String, contentType: String)? = nil) async throws -> Answer {
        let url = path.hasPrefix("http") ? path : base + path
        var request = HTTPClientRequest(url: url)
        request.method = method
        if url.hasPrefix(base) {
            let jar = lock.withLock { cookies }.merging(extra) { $1 }
            if !jar.isEmpty { request.headers.add(name: "Cookie", value: jar.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")) }
        }
        if let origin { request.headers.add(name: "Origin", value: origin) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        } else if let form {
            request.headers.add(name: "Content-Type", value: form.contentType)
            request.body = .bytes(ByteBuffer(string: form.text))
        }
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1024 * 1024)
        if url.hasPrefix(base) {
            let exchange = Exchange(method: method.rawValue, path: String(url.dropFirst(base.count)), status: Int(response.status.code),
                                    contentType: response.headers.first(name: "content-type"), body: Array(body.readableBytesView))
            Self.exchanges.withLock { $0[base, default: []].append(exchange) }
        }
        if url.hasPrefix(base) {
            for header in response.headers[canonicalForm: "set-cookie"] {
                let pair = header.split(separator: ";")[0].split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { continue }
                let maxAge0 = header.lowercased().contains("max-age=0")
                lock.withLock { cookies[String(pair[0])] = maxAge0 ? nil : String(pair[1]) }
            }
        }
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        return Answer(status: Int(response.status.code), location: response.headers.first(name: "location"), body: String(buffer: body),
                      headers: headers)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Returns a TCP port free on 127.0.0.1 now (the test binds it a moment later).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard bound == 0 else { throw TestFailure("bind() failed") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    guard named == 0 else { throw TestFailure("getsockname() failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}
