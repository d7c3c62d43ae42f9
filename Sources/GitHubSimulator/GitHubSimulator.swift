import Foundation
import HTTPTypes
import Hummingbird
import Logging
import OpenSSLCrypto

/// A local GitHub for tests, the demo and benchmarks: a real HTTP server on 127.0.0.1 serving the
/// REST endpoints asynccode uses over in-memory state, and git smart HTTP over local bare
/// repositories.
///
/// ```swift
/// let sim = try await GitHubSimulator.start()
/// defer { Task { await sim.shutdown() } } // or: try await withGitHubSimulator { sim in … }
/// ```
public final class GitHubSimulator: Sendable {
    /// How the simulator behaves.
    public struct Configuration: Sendable {
        /// How long minted installation tokens live (GitHub: one hour).
        public var tokenLifetime: TimeInterval = 3600
        /// How long user access tokens (`ghu_…`) live (GitHub: eight hours, `expires_in` 28800).
        public var userTokenLifetime: TimeInterval = 28_800
        /// How long refresh tokens (`ghr_…`) live (GitHub: six months, `refresh_token_expires_in` 15811200).
        public var userRefreshTokenLifetime: TimeInterval = 15_811_200
        /// A delay added to every repository call (to make concurrency observable).
        public var latency: Duration = .zero
        /// Where bare repositories are created; a fresh temporary folder (removed at shutdown) if nil.
        public var gitRoot: String? = nil
        /// The simulator's notion of now, for JWT checks and token expiry (share a test clock here).
        public var clock: @Sendable () -> Date = { Date() }

        /// Creates the default configuration.
        public init() {}
    }

    /// `http://127.0.0.1:<port>`: the REST base URL (`GITHUB_API_URL`) and the git host.
    public let baseURL: String
    /// The TCP port the server listens on.
    public let port: Int
    /// The folder holding the bare repositories (`<owner>/<name>.git`).
    public let gitRoot: String
    let store: SimulatorStore
    let configuration: Configuration
    let webhooks: WebhookSender
    private let serverTask: Task<Void, any Error>
    private let ownsGitRoot: Bool

    private init(baseURL: String, port: Int, gitRoot: String, ownsGitRoot: Bool, store: SimulatorStore,
                 configuration: Configuration, webhooks: WebhookSender, serverTask: Task<Void, any Error>) {
        self.webhooks = webhooks
        self.baseURL = baseURL
        self.port = port
        self.gitRoot = gitRoot
        self.ownsGitRoot = ownsGitRoot
        self.store = store
        self.configuration = configuration
        self.serverTask = serverTask
    }

    /// The REST base URL to use as `GITHUB_API_URL`.
    public var apiURL: String { baseURL }

    /// Starts a simulator on 127.0.0.1 with an ephemeral port and returns once it accepts connections.
    ///
    /// The server runs in one task owned by the simulator; ``shutdown()`` cancels and awaits it.
    public static func start(
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "asynccode.github-simulator", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws -> GitHubSimulator {
        let fileManager = FileManager.default
        let gitRoot = configuration.gitRoot ?? fileManager.temporaryDirectory.appendingPathComponent("ghsim-\(UUID().uuidString)").path
        try fileManager.createDirectory(atPath: gitRoot, withIntermediateDirectories: true)
        let store = SimulatorStore()
        let webhooks = WebhookSender(store: store)
        let api = SimulatorAPI(store: store, configuration: configuration, webhooks: webhooks)
        let gitBackend = GitHTTPBackend(store: store, api: api, gitRoot: gitRoot)
        let responder = CallbackResponder<BasicRequestContext> { request, _ in
            try await Self.respond(to: request, store: store, api: api, git: gitBackend)
        }
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            responder: responder,
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0), serverName: "GitHubSimulator"),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: logger
        )
        let serverTask = Task {
            defer { portContinuation.finish() }
            try await app.runService()
        }
        var port = 0
        for await value in ports {
            port = value
            break
        }
        guard port > 0 else {
            await webhooks.shutdown()
            serverTask.cancel()
            let failure = await serverTask.result
            throw SimulatorError("GitHub simulator failed to start: \(failure)")
        }
        let baseURL = "http://127.0.0.1:\(port)"
        store.baseURL = baseURL
        let simulator = GitHubSimulator(baseURL: baseURL, port: port, gitRoot: gitRoot, ownsGitRoot: configuration.gitRoot == nil,
                                        store: store, configuration: configuration, webhooks: webhooks, serverTask: serverTask)
        store.simulator = simulator
        return simulator
    }

    /// Stops the server, waits for it to finish and removes a temporary git root.
    public func shutdown() async {
        await webhooks.shutdown()
        serverTask.cancel()
        _ = await serverTask.result
        if ownsGitRoot { try? FileManager.default.removeItem(atPath: gitRoot) }
    }

    // MARK: Serving

    private static func respond(to request: Request, store: SimulatorStore, api: SimulatorAPI, git: GitHTTPBackend) async throws -> Response {
        let method = request.method.rawValue
        // GitHub Enterprise Server serves the REST API under /api/v3; accept both forms.
        let rawPath = request.uri.path.hasPrefix("/api/v3/") ? String(request.uri.path.dropFirst("/api/v3".count)) : request.uri.path
        let query = request.uri.query
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName.lowercased()
            headers[name] = headers[name].map { "\($0), \(field.value)" } ?? field.value
        }
        let buffer = try await request.body.collect(upTo: 512 * 1024 * 1024)
        let body = [UInt8](buffer.readableBytesView)
        let index = store.withState { state -> Int in
            state.requests.append(RecordedRequest(method: method, path: rawPath, query: query, headers: headers, body: body,
                                                  status: 0, injected: false, receivedAt: Date()))
            return state.requests.count - 1
        }
        if let delay = store.withState({ $0.takeDelay(method: method, path: rawPath) }) {
            try? await Task.sleep(for: delay)
        }
        let response: SimResponse
        var injected = false
        if let failure = store.withState({ $0.takeFailure(method: method, path: rawPath) }) {
            response = failure.response
            injected = true
        } else if rawPath == "/_simulator/webhook-sink" {
            response = SimResponse(status: 200)  // a receiver for tests that only inspect `requests`
        } else if rawPath == "/_simulator/comments", method == "POST", let simulator = store.simulator {
            response = await simulator.postCommentAsUser(body)
        } else if rawPath.hasPrefix("/_simulator/job-logs/"), method == "GET" {
            response = api.downloadJobLog(key: String(rawPath.dropFirst("/_simulator/job-logs/".count)), headers: headers)
        } else if rawPath.contains(".git/") {
            response = await git.handle(method: method, path: rawPath, query: query, headers: headers, body: body)
        } else {
            let segments = rawPath.split(separator: "/", omittingEmptySubsequences: true).map { String($0).removingPercentEncoding ?? String($0) }
            var queryItems: [String: String] = [:]
            for item in RecordedRequest(method: method, path: rawPath, query: query, headers: [:], body: [], status: 0, injected: false, receivedAt: Date()).queryItems {
                queryItems[item.name] = item.value
            }
            response = await api.handle(method: method, segments: segments, query: queryItems, headers: headers, body: body)
        }
        store.withState { state in
            state.requests[index].status = response.status
            state.requests[index].injected = injected
        }
        var fields = HTTPFields()
        for (name, value) in response.headers {
            if let fieldName = HTTPField.Name(name) { fields.append(HTTPField(name: fieldName, value: value)) }
        }
        fields[.contentLength] = String(response.body.count)
        return Response(status: .init(code: response.status), headers: fields,
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: response.body)))
    }
}

/// Runs `body` with a started simulator and shuts it down afterwards, also when `body` throws.
public func withGitHubSimulator<T>(
    configuration: GitHubSimulator.Configuration = GitHubSimulator.Configuration(),
    _ body: (GitHubSimulator) async throws -> T
) async throws -> T {
    let simulator = try await GitHubSimulator.start(configuration: configuration)
    do {
        let result = try await body(simulator)
        await simulator.shutdown()
        return result
    } catch {
        await simulator.shutdown()
        throw error
    }
}

extension InjectedFailure {
    var response: SimResponse {
        switch self {
        case .status(let status):
            return .message(status, status == 502 ? "Server Error" : "Something went wrong (simulated)")
        case .secondaryRateLimit(let retryAfter):
            return .message(403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                            headers: retryAfter.map { [("Retry-After", String($0))] } ?? [])
        case .primaryRateLimit(let resetAt):
            return .message(403, "API rate limit exceeded for installation.", headers: [
                ("x-ratelimit-limit", "5000"), ("x-ratelimit-remaining", "0"), ("x-ratelimit-used", "5000"),
                ("x-ratelimit-reset", String(resetAt)), ("x-ratelimit-resource", "core"),
            ])
        case .tooManyRequests(let retryAfter):
            return .message(429, "Too Many Requests", headers: [("Retry-After", String(retryAfter))])
        }
    }
}

extension SimulatorStore.State {
    mutating func takeFailure(method: String, path: String) -> InjectedFailure? {
        if let failure = Self.take(from: &failures, method: method, path: path) { return failure }
        if chaos != nil, !path.contains(".git/"), !path.hasPrefix("/_simulator") { return chaos!.draw() }
        return nil
    }

    mutating func takeDelay(method: String, path: String) -> Duration? {
        Self.take(from: &delays, method: method, path: path)
    }

    /// Uses up one turn of the first rule matching the request and returns its effect.
    static func take<Effect>(from rules: inout [InjectionRule<Effect>], method: String, path: String) -> Effect? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        for index in rules.indices where rules[index].remaining > 0 {
            let rule = rules[index]
            if let ruleMethod = rule.method, ruleMethod.uppercased() != method { continue }
            guard matches(pattern: rule.pattern, segments) else { continue }
            rules[index].remaining -= 1
            return rule.effect
        }
        return nil
    }

    /// `*` matches one segment, a trailing `**` any rest.
    static func matches(pattern: [Substring], _ segments: [Substring]) -> Bool {
        if pattern.last == "**" {
            guard segments.count >= pattern.count - 1 else { return false }
            return zip(pattern.dropLast(), segments).allSatisfy { $0 == "*" || $0 == $1 }
        }
        guard pattern.count == segments.count else { return false }
        return zip(pattern, segments).allSatisfy { $0 == "*" || $0 == $1 }
    }
}

/// An injected failure or delay: the requests it applies to and how many more times.
struct InjectionRule<Effect: Sendable>: Sendable {
    var method: String?
    var pattern: [Substring]
    var effect: Effect
    var remaining: Int
}
