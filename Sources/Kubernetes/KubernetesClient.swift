import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// The few calls of Kubernetes' REST API the bot needs (Jobs and their pods), over AsyncHTTPClient.
///
/// The bearer token is read from its file again whenever the file changes, and once more after a 401 (a
/// projected service-account token rotates while the bot runs). Reads and creates are tried again after a 5xx
/// or a lost connection (a create is safe to repeat: a 409 means it exists, and it is adopted).
public final class KubernetesClient: Sendable {
    public let endpoint: KubernetesEndpoint
    private let http: HTTPClient
    private let token: TokenReader
    private let logger: Logger
    /// Attempts of a call that fails transiently.
    public let attempts: Int

    public init(endpoint: KubernetesEndpoint, attempts: Int = 3, logger: Logger) throws {
        self.endpoint = endpoint
        self.attempts = attempts
        self.logger = logger
        token = TokenReader(endpoint.token)
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        if let pem = endpoint.certificateAuthorityPEM {
            var tls = TLSConfiguration.makeClientConfiguration()
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8)))
            } catch {
                throw KubernetesError(.configuration, "the cluster's CA certificate is not PEM")
            }
            configuration.tlsConfiguration = tls
        }
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// Stops the client's connections.
    public func shutdown() async {
        try? await http.shutdown()
    }

    // MARK: - Jobs

    /// Creates `job` (a batch/v1 Job) in `namespace`; when one of that name exists already (a worker that died
    /// created it), returns it instead: one task attempt is one Job.
    public func createJob(_ job: [String: Any], namespace: String) async throws -> (job: JobState, created: Bool) {
        let body = try JSONSerialization.data(withJSONObject: job, options: [.sortedKeys])
        let name = (job["metadata"] as? [String: Any])?["name"] as? String ?? ""
        do {
            let object = try await call(.POST, "/apis/batch/v1/namespaces/\(namespace)/jobs", body: body)
            return (JobState(object), true)
        } catch let error as KubernetesError where error.code == .conflict {
            guard let existing = try await self.job(name, namespace: namespace) else { throw error }
            return (existing, false)
        }
    }

    /// Returns the Job, or `nil` when there is none.
    public func job(_ name: String, namespace: String) async throws -> JobState? {
        do {
            return JobState(try await call(.GET, "/apis/batch/v1/namespaces/\(namespace)/jobs/\(name)"))
        } catch let error as KubernetesError where error.code == .notFound {
            return nil
        }
    }

    /// Deletes the Job and, in the background, its pods; `false` when there was none.
    @discardableResult
    public func deleteJob(_ name: String, namespace: String) async throws -> Bool {
        let options: [String: Any] = ["apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"]
        do {
            _ = try await call(.DELETE, "/apis/batch/v1/namespaces/\(namespace)/jobs/\(name)",
                               body: try JSONSerialization.data(withJSONObject: options, options: [.sortedKeys]))
            return true
        } catch let error as KubernetesError where error.code == .notFound {
            return false
        }
    }

    /// Returns the pods of a Job (label `job-name`).
    public func pods(ofJob name: String, namespace: String) async throws -> [PodState] {
        let selector = "job-name=\(name)".addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let list = try await call(.GET, "/api/v1/namespaces/\(namespace)/pods?labelSelector=\(selector)")
        return (list["items"] as? [[String: Any]] ?? []).map(PodState.init)
    }

    // MARK: - Transport

    private func call(_ method: HTTPMethod, _ path: String, body: Data? = nil) async throws -> [String: Any] {
        var attempt = 0
        var reloaded = false
        while true {
            attempt += 1
            do {
                return try await send(method, path, body: body)
            } catch let error as KubernetesError {
                if error.status == 401, !reloaded {
                    reloaded = true
                    token.forget()
                    continue
                }
                guard error.isTransient, attempt < attempts, method != .DELETE || error.code == .unreachable else { throw error }
                logger.debug("kubernetes call failed, trying again", metadata: ["k8s.path": "\(path)", "error": "\(error)"])
                try await Task.sleep(for: .milliseconds(200) * (1 << (attempt - 1)))
            }
        }
    }

    private func send(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: endpoint.server.absoluteString.trimmingSuffix("/") + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(try token.current())")
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let label = "\(method.rawValue) \(path.split(separator: "?").first ?? "")"
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .seconds(60))
            bytes = try await response.body.collect(upTo: 16 * 1024 * 1024)
        } catch {
            throw KubernetesError(.unreachable, "\(label): \(error)")
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any]) ?? [:]
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            let message = String((object["message"] as? String ?? "").prefix(500))
            let code: KubernetesError.Code = switch status {
            case 401, 403: .refused
            case 404: .notFound
            case 409: .conflict
            case 400, 422: .invalid
            default: .server
            }
            throw KubernetesError(code, status: status, "\(label) answered \(status)\(message.isEmpty ? "" : ": \(message)")")
        }
        return object
    }
}

/// The bearer token, read from its file again when the file changed (or after `forget()`).
final class TokenReader: Sendable {
    private let source: KubernetesEndpoint.Token
    private let cached = Mutex<(value: String, modified: Date?)?>(nil)

    init(_ source: KubernetesEndpoint.Token) {
        self.source = source
    }

    func current() throws -> String {
        switch source {
        case .value(let value):
            return value
        case .file(let path):
            let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
            if let cached = cached.withLock({ $0 }), cached.modified == modified, modified != nil { return cached.value }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw KubernetesError(.configuration, "cannot read the token file \(path)")
            }
            let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
            cached.withLock { $0 = (value, modified) }
            return value
        }
    }

    func forget() {
        cached.withLock { $0 = nil }
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
