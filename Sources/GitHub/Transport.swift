import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1

/// A value set once after initialisation (breaks the client ↔ token provider cycle).
final class LateBound<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value?
    func set(_ value: Value) { lock.withLock { self.value = value } }
    func get() -> Value? { lock.withLock { value } }
}

/// Sends one logical request: authorization, retries, rate-limit waits, per-installation ordering.
final class Transport: Sendable {
    enum Auth: Sendable {
        /// The App JWT.
        case app
        /// A cached task token for the repository.
        case installation(RepositoryRef)
        /// A cached token for the repository with only `permissions` (for permissions an installation may lack).
        case scoped(RepositoryRef, permissions: [String: String])
        /// A given installation token.
        case token(String, installationID: Int64?)

        /// The repository whose cached token this uses, if any.
        var repository: RepositoryRef? {
            switch self {
            case .installation(let repo), .scoped(let repo, _): repo
            case .app, .token: nil
            }
        }
    }

    struct Response: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    let apiURL: String
    let userAgent: String
    let policy: RetryPolicy
    let timeout: Duration
    let http: HTTPClient
    let ownsHTTPClient: Bool
    let signer: AppJWTSigner
    let clock: any GitHubClock
    let logger: Logger
    let metrics: any MetricsFactory
    let tokens = LateBound<InstallationTokenProvider>()
    private let gate = KeyedSerialGate<Int64>()

    init(apiURL: String, userAgent: String, policy: RetryPolicy, timeout: Duration, http: HTTPClient, ownsHTTPClient: Bool,
         signer: AppJWTSigner, clock: any GitHubClock, logger: Logger, metrics: any MetricsFactory = NOOPMetricsHandler.instance) {
        self.apiURL = apiURL
        self.userAgent = userAgent
        self.policy = policy
        self.timeout = timeout
        self.http = http
        self.ownsHTTPClient = ownsHTTPClient
        self.signer = signer
        self.clock = clock
        self.logger = logger
        self.metrics = metrics
    }

    /// Counts one answer (or a failure to get one) of `route`, and records the rate limit it reports.
    func count(route: String, status: String, headers: HTTPHeaders?, installationID: Int64?) {
        Counter(label: "asynccode_github_requests_total", dimensions: [("route", route), ("status", status)], factory: metrics)
            .increment()
        if let remaining = headers?.first(name: "x-ratelimit-remaining").flatMap({ Int($0) }) {
            Gauge(label: "asynccode_github_rate_limit_remaining",
                  dimensions: [("installation", installationID.map(String.init) ?? "app")], factory: metrics)
                .record(remaining)
        }
    }

    func createInstallationToken(installationID: Int64, repositoryIDs: [Int64], permissions: [String: String]) async throws -> InstallationToken {
        // Safe to retry: a second mint only makes a second short-lived token.
        try await json(.POST, "/app/installations/\(installationID)/access_tokens",
                       body: ["repository_ids": repositoryIDs, "permissions": permissions],
                       route: "POST /app/installations/{installation_id}/access_tokens", auth: .app, retryable: true)
    }

    func json<T: Decodable>(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: [String: Any]? = nil,
        route: String, auth: Auth, retryable: Bool? = nil
    ) async throws -> T {
        let bytes = try body.map { [UInt8](try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys])) }
        let response = try await send(method, path, query: query, bodyBytes: bytes, route: route, auth: auth, retryable: retryable)
        return try decode(response, route: "\(method.rawValue) \(path)")
    }

    func decode<T: Decodable>(_ response: Response, route: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(T.self, from: Data(response.body.readableBytesView))
        } catch {
            throw GitHubError(.decoding, status: response.status, route: route,
                              message: "cannot decode \(T.self): \(Self.describeDecodingError(error))")
        }
    }

    func send(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], bodyBytes: [UInt8]? = nil,
        route: String, auth: Auth, retryable: Bool? = nil
    ) async throws -> Response {
        let canRetry = retryable ?? (method != .POST)
        let installationID: Int64?
        switch auth {
        case .app: installationID = nil
        case .installation(let repo), .scoped(let repo, _): installationID = repo.installationID
        case .token(_, let id): installationID = id
        }
        let isMutating = method != .GET && method != .HEAD
        if isMutating, let installationID {
            return try await gate.withTurn(for: installationID) {
                try await self.exchange(method, path, query: query, body: bodyBytes, route: route, auth: auth,
                                        canRetry: canRetry, installationID: installationID)
            }
        }
        return try await exchange(method, path, query: query, body: bodyBytes, route: route, auth: auth,
                                  canRetry: canRetry, installationID: installationID)
    }

    private func exchange(
        _ method: HTTPMethod, _ path: String, query: [(String, String)], body: [UInt8]?, route: String, auth: Auth,
        canRetry: Bool, installationID: Int64?
    ) async throws -> Response {
        var url = apiURL + path
        if !query.isEmpty {
            url += "?" + query.map { Self.escapeSegment($0.0) + "=" + Self.escapeSegment($0.1) }.joined(separator: "&")
        }
        let display = "\(method.rawValue) \(path)"
        var logger = self.logger
        logger[metadataKey: "github.route"] = "\(route)"
        if let installationID { logger[metadataKey: "github.installation"] = "\(installationID)" }

        var failures = 0
        var rateLimitHits = 0
        var refreshedToken = false
        while true {
            let (authorization, usedToken) = try await authorizationHeader(auth)
            var request = HTTPClientRequest(url: url)
            request.method = method
            request.headers.add(name: "Accept", value: "application/vnd.github+json")
            request.headers.add(name: "X-GitHub-Api-Version", value: "2022-11-28")
            request.headers.add(name: "User-Agent", value: userAgent)
            request.headers.add(name: "Authorization", value: authorization)
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: body))
            }

            let response: HTTPClientResponse
            let responseBody: ByteBuffer
            do {
                response = try await http.execute(request, timeout: .milliseconds(Int64(timeout.seconds * 1000)))
                responseBody = try await response.body.collect(upTo: 32 * 1024 * 1024)
            } catch let error as CancellationError {
                throw error
            } catch {
                failures += 1
                count(route: route, status: "error", headers: nil, installationID: installationID)
                logger.debug("GitHub request failed to complete", metadata: [
                    "github.error": "\(String(describing: type(of: error)))", "github.attempt": "\(failures)",
                ])
                if canRetry && failures < policy.maxAttempts {
                    try await clock.sleep(for: policy.backoff(retry: failures))
                    continue
                }
                throw GitHubError(.transport, route: display, message: String(describing: error))
            }

            let status = Int(response.status.code)
            count(route: route, status: String(status), headers: response.headers, installationID: installationID)
            logger.debug("GitHub response", metadata: ["github.status": "\(status)"])
            if (200..<300).contains(status) {
                return Response(status: status, headers: response.headers, body: responseBody)
            }
            let message = Self.githubMessage(responseBody) ?? response.status.reasonPhrase

            if let wait = rateLimitWait(status: status, headers: response.headers, message: message) {
                rateLimitHits += 1
                var total = wait
                if rateLimitHits > 1 { total += policy.backoff(retry: rateLimitHits - 1) }
                if rateLimitHits > policy.maxRateLimitRetries || total > policy.maxRateLimitWait {
                    throw GitHubError(.rateLimited, status: status, route: display, message: message, retryAfter: total)
                }
                logger.debug("GitHub rate limit: waiting", metadata: [
                    "github.status": "\(status)", "github.wait_seconds": "\(total.seconds)",
                ])
                try await clock.sleep(for: total)
                continue
            }
            if status == 401, let repo = auth.repository, !refreshedToken, let usedToken, let tokens = tokens.get() {
                // The cached token was revoked or expired early: mint a fresh one once.
                refreshedToken = true
                await tokens.invalidate(installationID: repo.installationID, repositoryID: repo.id, token: usedToken)
                continue
            }
            if status >= 500 && canRetry {
                failures += 1
                if failures < policy.maxAttempts {
                    try await clock.sleep(for: policy.backoff(retry: failures))
                    continue
                }
            }
            throw GitHubError(.httpStatus, status: status, route: display, message: message)
        }
    }

    /// Returns the wait a rate-limit answer asks for, or nil when the answer is not a rate limit.
    func rateLimitWait(status: Int, headers: HTTPHeaders, message: String) -> Duration? {
        guard status == 403 || status == 429 else { return nil }
        if let value = headers.first(name: "retry-after"), let seconds = Int(value.trimmingCharacters(in: .whitespaces)) {
            return .seconds(max(seconds, 0))
        }
        if headers.first(name: "x-ratelimit-remaining") == "0",
           let reset = headers.first(name: "x-ratelimit-reset").flatMap({ Int($0) }) {
            let seconds = Double(reset) - clock.now().timeIntervalSince1970
            return .milliseconds(Int64(max(seconds, 1) * 1000))
        }
        let lowered = message.lowercased()
        if status == 429 || lowered.contains("secondary rate limit") || lowered.contains("abuse") {
            return policy.secondaryRateLimitWait
        }
        return nil
    }

    private func authorizationHeader(_ auth: Auth) async throws -> (String, String?) {
        switch auth {
        case .app:
            return ("Bearer " + (try signer.makeJWT(now: clock.now())), nil)
        case .token(let token, _):
            return ("Bearer " + token, token)
        case .installation(let repo):
            guard let tokens = tokens.get() else {
                throw GitHubError(.invalidConfiguration, message: "no installation token provider")
            }
            let token = try await tokens.token(installationID: repo.installationID, repositoryID: repo.id).token
            return ("Bearer " + token, token)
        case .scoped(let repo, let permissions):
            guard let tokens = tokens.get() else {
                throw GitHubError(.invalidConfiguration, message: "no installation token provider")
            }
            let token = try await tokens.token(installationID: repo.installationID, repositoryID: repo.id, permissions: permissions).token
            return ("Bearer " + token, token)
        }
    }

    static func githubMessage(_ body: ByteBuffer) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
              var message = object["message"] as? String else { return nil }
        if let errors = object["errors"] as? [Any], !errors.isEmpty {
            let details = errors.map { item -> String in
                if let item = item as? [String: Any] {
                    if let text = item["message"] as? String { return text }
                    return [item["resource"], item["field"], item["code"]].compactMap { $0 as? String }.joined(separator: " ")
                }
                return String(describing: item)
            }
            message += " (" + details.joined(separator: "; ") + ")"
        }
        return message
    }

    static func describeDecodingError(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return String(describing: type(of: error)) }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing \(key.stringValue) at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(context.debugDescription) at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        @unknown default:
            return "decoding error"
        }
    }

    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// Percent-encodes everything but RFC 3986 unreserved characters.
    static func escapeSegment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }
}
