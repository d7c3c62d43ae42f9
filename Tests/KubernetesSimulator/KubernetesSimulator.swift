import APIConformance
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A Kubernetes API server stand-in for tests: Jobs (create, get, delete) and their pods (list), answering as the
/// API server does (201, 200, 404, 409, 401; `resourceVersion`, `uid`, `Status` objects), holding every object it
/// is sent to Kubernetes' own strict schema (`Tests/Fixtures/kubernetes/`), and recording every request.
public final class KubernetesSimulator: Sendable {
    /// One request and what was wrong with it (empty: Kubernetes would take it).
    public struct Recorded: Sendable {
        public var method: String
        public var path: String
        public var status: Int
        public var violations: [String]
    }

    struct State {
        var jobs: [String: Data] = [:]
        var pods: [String: [String: Data]] = [:]
        var resourceVersion = 1000
        var tokens: Set<String> = []
        var faults: [Int] = []
        var requests: [Recorded] = []
        /// Running pods as local processes (``runPods(hostPaths:secrets:)``).
        var podRunning: PodRunning?
        var deleted: Set<String> = []
        var pullErrors: Set<String> = []
        var oomContainers: Set<String> = []
        var started: [String] = []
    }

    let state = Mutex(State())
    private let schema: APIConformance
    public let url: String

    let launch: AsyncStream<PodLaunch>.Continuation

    init(url: String, schema: APIConformance, launch: AsyncStream<PodLaunch>.Continuation) {
        self.url = url
        self.schema = schema
        self.launch = launch
    }

    /// The strict definitions the tests hold objects to.
    public static func loadSchema() throws -> APIConformance {
        let path = APIConformance.packageRoot.appendingPathComponent("Tests/Fixtures/kubernetes/v1.35.0-strict-trimmed.json")
        guard let document = try JSONSerialization.jsonObject(with: Data(contentsOf: path)) as? [String: Any] else {
            throw SimulatorError(description: "\(path.path) is not a JSON object")
        }
        return APIConformance(schemaDocument: document)
    }

    /// Runs `body` with a simulator listening on 127.0.0.1.
    public static func with<T: Sendable>(_ body: @Sendable (KubernetesSimulator) async throws -> T) async throws -> T {
        let schema = try loadSchema()
        let box = Mutex<KubernetesSimulator?>(nil)
        let router = Router()
        router.on("**", method: .get) { request, _ in box.withLock { $0 }!.answer(request, body: nil) }
        router.on("**", method: .delete) { request, _ in
            var request = request
            return box.withLock { $0 }!.answer(request, body: try await request.collectBody(upTo: 1 << 20))
        }
        router.on("**", method: .post) { request, _ in
            var request = request
            return box.withLock { $0 }!.answer(request, body: try await request.collectBody(upTo: 4 << 20))
        }
        let (launches, launch) = AsyncStream<PodLaunch>.makeStream()
        return try await withLocalServer(router, label: "kubernetes-simulator") { url in
            let simulator = KubernetesSimulator(url: url, schema: schema, launch: launch)
            box.withLock { $0 = simulator }
            return try await withThrowingTaskGroup(of: T?.self) { tasks in
                // The kubelet: each Job's pod runs as local processes (when tests ask for it) until the end of `body`.
                tasks.addTask {
                    await withDiscardingTaskGroup { pods in
                        for await pod in launches { pods.addTask { await simulator.run(pod) } }
                    }
                    return nil
                }
                let result: Result<T, any Error>
                do { result = .success(try await body(simulator)) } catch { result = .failure(error) }
                simulator.stopPods()
                launch.finish()
                while let _ = try await tasks.next() {}
                return try result.get()
            }
        }
    }

    // MARK: - What tests set and read

    /// Only these bearer tokens are accepted (any when empty).
    public func acceptTokens(_ tokens: Set<String>) { state.withLock { $0.tokens = tokens } }

    /// The next requests answer these statuses (as a Status object), one each.
    public func failNext(_ statuses: Int...) { state.withLock { $0.faults += statuses } }

    public var requests: [Recorded] { state.withLock { $0.requests } }

    /// Every request Kubernetes would have refused as invalid, as "METHOD path: problem".
    public var violations: [String] { requests.flatMap { request in request.violations.map { "\(request.method) \(request.path): \($0)" } } }

    /// Returns the stored Job (`namespace/name`).
    public func job(_ namespace: String, _ name: String) -> [String: Any]? {
        state.withLock { $0.jobs["\(namespace)/\(name)"] }.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
    }

    /// Sets the Job's `status` (as the Job controller would) and its pod's (as the kubelet would).
    public func setStatus(job name: String, namespace: String, jobStatus: [String: Any]? = nil, podStatus: [String: Any]? = nil) {
        state.withLock { state in
            let key = "\(namespace)/\(name)"
            if let jobStatus, let data = state.jobs[key], var object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                object["status"] = jobStatus
                state.resourceVersion += 1
                var metadata = object["metadata"] as? [String: Any] ?? [:]
                metadata["resourceVersion"] = String(state.resourceVersion)
                object["metadata"] = metadata
                state.jobs[key] = try? JSONSerialization.data(withJSONObject: object)
            }
            if let podStatus, var pods = state.pods[key], let podName = pods.keys.sorted().first,
               let data = pods[podName], var pod = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                pod["status"] = podStatus
                pods[podName] = try? JSONSerialization.data(withJSONObject: pod)
                state.pods[key] = pods
            }
        }
    }

    // MARK: - The API

    func answer(_ request: Request, body: ByteBuffer?) -> Response {
        let path = request.uri.path
        let method = request.method.rawValue
        let segments = path.split(separator: "/").map(String.init)
        var violations: [String] = []
        let (status, object) = state.withLock { state -> (Int, [String: Any]) in
            if !state.faults.isEmpty {
                let status = state.faults.removeFirst()
                return (status, Self.status(status, "InternalError", "injected fault"))
            }
            if !state.tokens.isEmpty {
                let given = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
                guard let given, state.tokens.contains(given) else { return (401, Self.status(401, "Unauthorized", "Unauthorized")) }
            }
            switch (method, segments.count) {
            case ("POST", 6) where segments[0...2] == ["apis", "batch", "v1"] && segments[3] == "namespaces" && segments[5] == "jobs":
                return createJob(&state, namespace: segments[4], body: body, violations: &violations)
            case ("GET", 7) where segments[0...2] == ["apis", "batch", "v1"] && segments[5] == "jobs":
                guard let data = state.jobs["\(segments[4])/\(segments[6])"], let job = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                    return (404, Self.status(404, "NotFound", "jobs.batch \"\(segments[6])\" not found"))
                }
                return (200, job)
            case ("DELETE", 7) where segments[0...2] == ["apis", "batch", "v1"] && segments[5] == "jobs":
                if let body, body.readableBytes > 0 {
                    violations += validate(body, "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")
                }
                let key = "\(segments[4])/\(segments[6])"
                guard state.jobs.removeValue(forKey: key) != nil else {
                    return (404, Self.status(404, "NotFound", "jobs.batch \"\(segments[6])\" not found"))
                }
                state.pods[key] = nil
                state.deleted.insert(key)
                return (200, ["kind": "Status", "apiVersion": "v1", "status": "Success", "details": ["name": segments[6], "kind": "jobs"]])
            case ("GET", 5) where segments[0...1] == ["api", "v1"] && segments[4] == "pods":
                let selector = request.uri.queryParameters["labelSelector"].map(String.init) ?? ""
                let jobName = selector.hasPrefix("job-name=") ? String(selector.dropFirst(9)) : ""
                let items = (state.pods["\(segments[3])/\(jobName)"] ?? [:]).values.compactMap { try? JSONSerialization.jsonObject(with: $0) }
                return (200, ["kind": "PodList", "apiVersion": "v1", "metadata": ["resourceVersion": String(state.resourceVersion)], "items": items])
            default:
                return (404, Self.status(404, "NotFound", "the server could not find the requested resource"))
            }
        }
        state.withLock { $0.requests.append(Recorded(method: method, path: path, status: status, violations: violations)) }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Response(status: HTTPResponse.Status(code: status), headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    private func createJob(_ state: inout State, namespace: String, body: ByteBuffer?, violations: inout [String]) -> (Int, [String: Any]) {
        guard let body, var job = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
            return (400, Self.status(400, "BadRequest", "the body is not a JSON object"))
        }
        violations += validate(body, "io.k8s.api.batch.v1.Job")
        var metadata = job["metadata"] as? [String: Any] ?? [:]
        let name = metadata["name"] as? String ?? ""
        if name.isEmpty || name.count > 63 || name.range(of: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", options: .regularExpression) == nil {
            violations.append("metadata.name \(name) is not a DNS label")
        }
        if let given = metadata["namespace"] as? String, given != namespace {
            violations.append("metadata.namespace \(given) is not the path's \(namespace)")
        }
        guard violations.isEmpty else { return (422, Self.status(422, "Invalid", violations.joined(separator: "; "))) }
        let key = "\(namespace)/\(name)"
        if state.jobs[key] != nil {
            return (409, Self.status(409, "AlreadyExists", "jobs.batch \"\(name)\" already exists"))
        }
        state.resourceVersion += 1
        metadata["namespace"] = namespace
        metadata["uid"] = UUID().uuidString.lowercased()
        metadata["resourceVersion"] = String(state.resourceVersion)
        metadata["creationTimestamp"] = ISO8601DateFormatter().string(from: Date())
        job["metadata"] = metadata
        job["status"] = [String: Any]()
        state.jobs[key] = try? JSONSerialization.data(withJSONObject: job)
        // Its pod, pending, labelled as the Job controller labels it.
        let pod: [String: Any] = ["kind": "Pod", "apiVersion": "v1",
                                  "metadata": ["name": "\(name)-\(String(UUID().uuidString.lowercased().prefix(5)))", "namespace": namespace,
                                               "labels": ["job-name": name]],
                                  "status": ["phase": "Pending"]]
        state.pods[key] = [pod["metadata"].flatMap { ($0 as? [String: Any])?["name"] as? String } ?? name: (try? JSONSerialization.data(withJSONObject: pod)) ?? Data()]
        state.deleted.remove(key)
        if state.podRunning != nil, let data = state.jobs[key] {
            state.started.append(key)
            launch.yield(PodLaunch(key: key, job: data))
        }
        return (201, job)
    }

    private func validate(_ body: ByteBuffer, _ definition: String) -> [String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) else { return ["the body is not JSON"] }
        return schema.validate(object, schema: ["$ref": "#/$defs/\(definition)"])
    }

    static func status(_ code: Int, _ reason: String, _ message: String) -> [String: Any] {
        ["kind": "Status", "apiVersion": "v1", "metadata": [String: Any](), "status": "Failure", "message": message, "reason": reason, "code": code]
    }
}

struct SimulatorError: Error, CustomStringConvertible {
    var description: String
}
