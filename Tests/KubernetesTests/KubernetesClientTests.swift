import APIConformance
import Foundation
import Kubernetes
import KubernetesSimulator
import Logging
import Testing

/// The Kubernetes side of agents as Jobs (issue 22): the Job of a task attempt, held to Kubernetes' strict schema,
/// and the client's calls against the API stand-in.
@Suite(.timeLimit(.minutes(2))) struct KubernetesClientTests {
    static let logger = Logger(label: "kubernetes-test")

    static func job(taskID: Int64 = 123, attempt: Int = 2) -> AgentJob {
        var job = AgentJob(taskID: taskID, attempt: attempt, namespace: "asynccode-agents", image: "ghcr.io/acme/agent:1",
                           command: ["claude", "--print"], toolsImage: "ghcr.io/acme/asynccode-tools:1",
                           environment: ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "ASYNCCODE_TASK_ID": String(taskID)],
                           prompt: "Fix the README", timeout: .seconds(1800), botURL: "http://asynccode.asynccode.svc:3000/",
                           fetchToken: "fetch-token-123", reportToken: "report-token-123")
        job.secretName = "asynccode-agent-env"
        job.secretKeys = ["ANTHROPIC_API_KEY"]
        job.requests = ["cpu": "500m", "memory": "1Gi"]
        job.limits = ["memory": "4Gi"]
        job.nodeSelector = ["pool": "agents"]
        job.tolerations = [.init(key: "dedicated", operator: "Equal", value: "agents", effect: "NoSchedule")]
        job.serviceAccountName = "asynccode-agent"
        return job
    }

    /// Runs `body` with a client of `endpoint`, shut down afterwards.
    static func withClient(_ endpoint: KubernetesEndpoint, _ body: (KubernetesClient) async throws -> Void) async throws {
        let client = try KubernetesClient(endpoint: endpoint, logger: logger)
        do {
            try await body(client)
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
    }

    @Test func anAgentJobIsWhatKubernetesTakesAndLocksItsPodDown() throws {
        let schema = try KubernetesSimulator.loadSchema()
        let manifest = Self.job().manifest
        #expect(schema.validate(manifest, schema: ["$ref": "#/$defs/io.k8s.api.batch.v1.Job"]).isEmpty)
        // The schema is strict: an unknown field is refused (so the check above could fail).
        var wrong = manifest
        wrong["spec"] = (manifest["spec"] as? [String: Any] ?? [:]).merging(["backofLimit": 0]) { $1 }
        #expect(!schema.validate(wrong, schema: ["$ref": "#/$defs/io.k8s.api.batch.v1.Job"]).isEmpty)

        let metadata = try #require(manifest["metadata"] as? [String: Any])
        #expect(metadata["name"] as? String == "ac-123-2")
        #expect(AgentJob.name(taskID: .max, attempt: .max).count <= 63)
        let spec = try #require(manifest["spec"] as? [String: Any])
        #expect(spec["backoffLimit"] as? Int == 0 && spec["activeDeadlineSeconds"] as? Int64 == 1800 && spec["ttlSecondsAfterFinished"] as? Int64 == 3600)
        let pod = try #require((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
        #expect(pod["automountServiceAccountToken"] as? Bool == false && pod["restartPolicy"] as? String == "Never")
        let initContainers = try #require(pod["initContainers"] as? [[String: Any]])
        let containers = try #require(pod["containers"] as? [[String: Any]])
        #expect(initContainers.map { $0["name"] as? String } == ["fetch", "agent"] && containers.map { $0["name"] as? String } == ["report"])
        for container in initContainers + containers {
            let security = try #require(container["securityContext"] as? [String: Any])
            #expect(security["allowPrivilegeEscalation"] as? Bool == false && security["runAsNonRoot"] as? Bool == true)
            #expect((security["capabilities"] as? [String: Any])?["drop"] as? [String] == ["ALL"])
        }
        // The agent sees neither token, nor the pristine repository; its API key comes from the operator's Secret.
        let agent = initContainers[1]
        let environment = try #require(agent["env"] as? [[String: Any]])
        let names = environment.compactMap { $0["name"] as? String }
        #expect(!names.contains("ASYNCCODE_FETCH_TOKEN") && !names.contains("ASYNCCODE_REPORT_TOKEN"))
        #expect(environment.contains { $0["name"] as? String == "ASYNCCODE_PROMPT" && $0["value"] as? String == "Fix the README" })
        #expect(environment.contains { ($0["valueFrom"] as? [String: Any]).flatMap { ($0["secretKeyRef"] as? [String: Any])?["name"] as? String } == "asynccode-agent-env" })
        let mounts = (agent["volumeMounts"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(!mounts.contains("base"))
        let json = String(decoding: try JSONSerialization.data(withJSONObject: manifest), as: UTF8.self)
        #expect(!json.contains("DATABASE_URL") && !json.contains("GITHUB_"))
    }

    @Test func jobsAreCreatedAdoptedReadAndDeleted() async throws {
        try await KubernetesSimulator.with { sim in
            try await Self.withClient(KubernetesEndpoint(server: URL(string: sim.url)!, token: .value("t0"))) { client in
            let manifest = Self.job().manifest
            let (created, isNew) = try await client.createJob(manifest, namespace: "asynccode-agents")
            #expect(isNew && created.name == "ac-123-2" && created.uid != nil)
            // A second worker (the first died) adopts the Job instead of starting another.
            let (adopted, again) = try await client.createJob(manifest, namespace: "asynccode-agents")
            #expect(!again && adopted.uid == created.uid)
            #expect(try await client.pods(ofJob: "ac-123-2", namespace: "asynccode-agents").count == 1)
            sim.setStatus(job: "ac-123-2", namespace: "asynccode-agents",
                          jobStatus: ["failed": 1, "conditions": [["type": "Failed", "status": "True", "reason": "DeadlineExceeded"]]],
                          podStatus: ["phase": "Failed", "initContainerStatuses": [
                              ["name": "fetch", "state": ["terminated": ["exitCode": 0, "reason": "Completed"]]],
                              ["name": "agent", "state": ["terminated": ["exitCode": 137, "reason": "OOMKilled"]]]]])
            let read = try #require(try await client.job("ac-123-2", namespace: "asynccode-agents"))
            #expect(read.condition("Failed")?.reason == "DeadlineExceeded" && read.failed == 1)
            let pod = try #require(try await client.pods(ofJob: "ac-123-2", namespace: "asynccode-agents").first)
            #expect(pod.phase == "Failed" && pod.initContainers.last?.terminatedReason == "OOMKilled" && pod.initContainers.last?.exitCode == 137)
            #expect(try await client.deleteJob("ac-123-2", namespace: "asynccode-agents"))
            #expect(try await client.job("ac-123-2", namespace: "asynccode-agents") == nil)
            #expect(try await client.deleteJob("ac-123-2", namespace: "asynccode-agents") == false)
            #expect(sim.violations.isEmpty, "\(sim.violations)")
            #expect(sim.requests.contains { $0.method == "DELETE" })
            }
        }
    }

    @Test func aRotatedTokenIsReadAgainAndTransientErrorsAreTriedAgain() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("k8s-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let tokenFile = folder.appendingPathComponent("token").path
        try "first-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        try await KubernetesSimulator.with { sim in
            sim.acceptTokens(["first-token"])
            try await Self.withClient(KubernetesEndpoint(server: URL(string: sim.url)!, token: .file(tokenFile))) { client in
            #expect(try await client.job("none", namespace: "asynccode-agents") == nil)
            // The kubelet rotates the token: the old one is refused from now on, the new one read from the file.
            try "second-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
            sim.acceptTokens(["second-token"])
            #expect(try await client.job("none", namespace: "asynccode-agents") == nil)
            #expect(sim.requests.filter { $0.status == 401 }.count <= 1)
            // A token nobody accepts: refused, with no token in the error.
            sim.acceptTokens(["third-token"])
            let refused = await #expect(throws: KubernetesError.self) { try await client.job("none", namespace: "asynccode-agents") }
            #expect(refused?.code == .refused && refused?.description.contains("second-token") == false)
            sim.acceptTokens([])
            // A 500 then a 200: one call; three 500s: it gives up, saying so.
            sim.failNext(500)
            #expect(try await client.job("none", namespace: "asynccode-agents") == nil)
            sim.failNext(500, 503, 500)
            let gaveUp = await #expect(throws: KubernetesError.self) { try await client.job("none", namespace: "asynccode-agents") }
            #expect(gaveUp?.code == .server && gaveUp?.status == 500)
            sim.failNext(503)
            #expect(try await client.createJob(Self.job(taskID: 7, attempt: 1).manifest, namespace: "asynccode-agents").created)
            }
        }
    }

    @Test func endpointsInTheClusterAndFromAKubeconfig() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("k8s-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        try "tok".write(to: folder.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        try pem.write(to: folder.appendingPathComponent("ca.crt"), atomically: true, encoding: .utf8)
        try "asynccode\n".write(to: folder.appendingPathComponent("namespace"), atomically: true, encoding: .utf8)
        let inCluster = try KubernetesEndpoint.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"], directory: folder.path)
        #expect(inCluster.server.absoluteString == "https://10.96.0.1:443" && inCluster.namespace == "asynccode" && inCluster.certificateAuthorityPEM == pem)
        #expect(throws: KubernetesError.self) { try KubernetesEndpoint.inCluster(environment: [:], directory: folder.path) }

        let kubeconfig = folder.appendingPathComponent("config").path
        try """
            apiVersion: v1
            kind: Config
            current-context: dev
            clusters:
            - name: dev-cluster
              cluster: {server: "https://k8s.example:6443", certificate-authority-data: "\(Data(pem.utf8).base64EncodedString())"}
            - name: other
              cluster: {server: "https://other.example"}
            users:
            - name: dev-user
              user: {tokenFile: token}
            - name: cert-user
              user: {client-certificate-data: eA==}
            contexts:
            - name: dev
              context: {cluster: dev-cluster, user: dev-user, namespace: agents}
            - name: certs
              context: {cluster: other, user: cert-user}
            """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        let endpoint = try KubernetesEndpoint.kubeconfig(path: kubeconfig)
        #expect(endpoint.server.absoluteString == "https://k8s.example:6443" && endpoint.namespace == "agents" && endpoint.certificateAuthorityPEM == pem)
        guard case .file(let path) = endpoint.token else { Issue.record("no token file"); return }
        #expect(path == folder.path + "/token")
        let unsupported = #expect(throws: KubernetesError.self) { try KubernetesEndpoint.kubeconfig(path: kubeconfig, context: "certs") }
        #expect(unsupported?.description.contains("client certificates") == true)
        #expect(throws: KubernetesError.self) { try KubernetesEndpoint.kubeconfig(path: kubeconfig, context: "missing") }
    }
}
