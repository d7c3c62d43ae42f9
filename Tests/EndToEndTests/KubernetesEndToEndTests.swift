import AsyncCodeApp
import AsyncHTTPClient
import Executor
import Foundation
import GitHubSimulator
import KubernetesSimulator
import NIOCore
import NIOHTTP1
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A cluster stand-in, the network between its pods and the bot, and the bot, for agents with `runner: kubernetes`.
struct ClusterEndToEnd: Sendable {
    let e2e: EndToEnd
    let kube: KubernetesSimulator
    let proxy: ForwardingProxy
    /// The kubeconfig the bot reads and the token file it names (rotated by tests).
    let kubeconfig: String
    let tokenFile: String

    static let namespace = "asynccode-agents"
    static let modelKey = "model-key-7f3a9c1e5b2d4a68"
    /// Agents of `agentScripts` that also run as Jobs, as `k8s-<name>`, each with an image of its own.
    static let clusterAgents = ["edit", "pause", "podsnoop", "slow", "fail", "fixer"]

    static func agentsYAML(agentsDirectory: String, stateDirectory: String) -> String {
        var yaml = ""
        for name in clusterAgents {
            let timeout = agentScripts[name]?.timeout ?? 120
            yaml += """
                  k8s-\(name):
                    command: ["\(agentsDirectory)/\(name).sh"]
                    timeout: \(timeout)
                    env: {AGENT_STATE: "\(stateDirectory)"}
                    passEnv: [MODEL_API_KEY]
                    runner: kubernetes
                    image: agents/\(name):1
                    resources: {requests: {cpu: 250m, memory: 256Mi}, limits: {memory: 1Gi}}
                    nodeSelector: {pool: agents}
                    tolerations: [{key: dedicated, operator: Equal, value: agents, effect: NoSchedule}]

                """
        }
        // The same program under images that fail in the cluster.
        for (name, image) in [("k8s-oom", "agents/oom:1"), ("k8s-nopull", "registry.invalid/agents/missing:1")] {
            yaml += """
                  \(name):
                    command: ["\(agentsDirectory)/edit.sh"]
                    timeout: 120
                    runner: kubernetes
                    image: \(image)
                    resources: {limits: {memory: 64Mi}}

                """
        }
        // Its key is in a Secret nobody made.
        yaml += """
              k8s-nosecret:
                command: ["\(agentsDirectory)/edit.sh"]
                passEnv: [MODEL_API_KEY]
                runner: kubernetes
                image: agents/edit:1
                secretName: not-made

            """
        return yaml
    }

    /// Runs `body` with the bot's workers running agents as Jobs in the stand-in (`workers: 0`: none in process).
    static func with(
        workers: Int = 2, leaseSeconds: Int = 60, repositoryFiles: [String: String] = [:],
        _ body: @Sendable (ClusterEndToEnd) async throws -> Void
    ) async throws {
        try await KubernetesSimulator.with { kube in
            try await ForwardingProxy.with { proxy in
                let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kube-\(UUID().uuidString)").path
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: folder) }
                let tokenFile = folder + "/token"
                try "token-1\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
                kube.acceptTokens(["token-1"])
                let kubeconfig = folder + "/kubeconfig"
                try """
                    apiVersion: v1
                    kind: Config
                    current-context: test
                    clusters: [{name: stand-in, cluster: {server: "\(kube.url)"}}]
                    users: [{name: worker, user: {tokenFile: "\(tokenFile)"}}]
                    contexts: [{name: test, context: {cluster: stand-in, user: worker, namespace: asynccode}}]
                    """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
                try await EndToEnd.with(workers: workers, leaseSeconds: leaseSeconds, repositoryFiles: repositoryFiles,
                                        extraAgentsYAML: agentsYAML) { configuration, _ in
                    var settings = KubernetesSettings(agentJobURL: URL(string: proxy.url)!)
                    settings.kubeconfigPath = kubeconfig
                    settings.pollInterval = .milliseconds(100)
                    configuration.kubernetes = settings
                } _: { e2e in
                    proxy.forward(to: "http://127.0.0.1:\(e2e.port)")
                    try kube.runPods(hostPaths: [e2e.agentsDirectory, e2e.stateDirectory],
                                     secrets: ["\(namespace)/asynccode-agent-env": ["MODEL_API_KEY": modelKey]])
                    try await body(ClusterEndToEnd(e2e: e2e, kube: kube, proxy: proxy, kubeconfig: kubeconfig, tokenFile: tokenFile))
                    // Every object the bot sent is one Kubernetes would take.
                    #expect(kube.violations.isEmpty, "requests Kubernetes would refuse:\n\(kube.violations.joined(separator: "\n"))")
                }
            }
        }
    }

    /// The Job of a task's attempt, as the stand-in holds it.
    func job(task: Int64, attempt: Int = 1) -> [String: Any]? { kube.job(Self.namespace, "ac-\(task)-\(attempt)") }

    /// A variable of a container of the Job (its tokens).
    func variable(_ name: String, of container: String, task: Int64) -> String? {
        let pod = ((job(task: task)?["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any]
        let containers = (pod?["initContainers"] as? [[String: Any]] ?? []) + (pod?["containers"] as? [[String: Any]] ?? [])
        let env = containers.first { $0["name"] as? String == container }?["env"] as? [[String: Any]] ?? []
        return env.first { $0["name"] as? String == name }?["value"] as? String
    }

    /// Waits until the task's pod has started.
    func waitForPod(task: Int64) async throws {
        try await eventually("the pod of task \(task) starts") { kube.startedPods.contains("\(Self.namespace)/ac-\(task)-1") }
    }

    /// Lets a `pause` agent go on.
    func release(task: Int64) throws {
        try "".write(toFile: "\(e2e.stateDirectory)/go-\(task)", atomically: true, encoding: .utf8)
    }

    /// Calls the bot's route for agent pods; returns the status.
    func call(_ method: HTTPMethod, task: Int64, attempt: Int = 1, _ file: String, token: String?, body: String = "") async throws -> Int {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(e2e.port)/internal/agent-jobs/\(task)/\(attempt)/\(file)")
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if method == .PUT { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 64 << 20)
        return Int(response.status.code)
    }
}

/// Agents as Kubernetes Jobs end to end (issue 22): comment → Job → bundle fetched → agent edits → patch uploaded →
/// pull request, against the Kubernetes stand-in running each pod's containers as local processes.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct KubernetesEndToEndTests {
    @Test func aCommentBecomesAPullRequestThroughAJob() async throws {
        try await ClusterEndToEnd.with { cluster in
            let e2e = cluster.e2e
            // The API server fails the first call (the create): the worker tries again.
            cluster.kube.failNext(500)
            let issue = e2e.issue()
            let first = try await e2e.comment("/asynccode --agent k8s-pause fix the readme", on: issue)
            let other = e2e.issue("Another")
            let second = try await e2e.comment("/asynccode --agent k8s-pause fix it too", on: other)
            try await cluster.waitForPod(task: first)
            try await cluster.waitForPod(task: second)

            // The service-account token rotates mid-task: the worker reads the new one from its file.
            cluster.kube.acceptTokens(["token-2"])
            try "token-2\n".write(toFile: cluster.tokenFile, atomically: true, encoding: .utf8)
            let rotatedAt = cluster.kube.requests.count

            // Each pod's tokens open its own task attempt, in one direction, and nothing else.
            let fetch = try #require(cluster.variable("ASYNCCODE_FETCH_TOKEN", of: "fetch", task: first))
            let report = try #require(cluster.variable("ASYNCCODE_REPORT_TOKEN", of: "report", task: first))
            #expect(try await cluster.call(.GET, task: first, "bundle", token: fetch) == 200)
            #expect(try await cluster.call(.PUT, task: second, "patch", token: report, body: "not mine") == 401)
            #expect(try await cluster.call(.GET, task: second, "bundle", token: fetch) == 401)
            #expect(try await cluster.call(.PUT, task: first, "patch", token: fetch, body: "wrong direction") == 401)
            #expect(try await cluster.call(.GET, task: first, attempt: 2, "bundle", token: fetch) == 401)

            try cluster.release(task: first)
            try cluster.release(task: second)
            try await e2e.waitFor(task: first, status: "completed")
            try await e2e.waitFor(task: second, status: "completed")

            let pulls = e2e.sim.pullRequests(repositoryID: e2e.repositoryID)
            #expect(pulls.count == 2)
            for pull in pulls {
                #expect(try await e2e.file("README.md", on: pull.head) == "# Widgets\nedited after a pause\n")
            }
            #expect(e2e.botComments(on: issue).first?.history.contains { $0.contains("as a Kubernetes Job in `asynccode-agents`") } == true)
            // One Job each, created after one 500, read with the rotated token, never deleted.
            let posts = cluster.kube.requests.filter { $0.method == "POST" }
            #expect(posts.map(\.status).filter { $0 == 500 }.count == 1)
            #expect(posts.map(\.status).filter { $0 == 201 }.count == 2)
            #expect(cluster.kube.requests.dropFirst(rotatedAt).contains { $0.method == "GET" && $0.status == 200 })
            #expect(cluster.kube.startedPods.count == 2)
            #expect(!cluster.kube.requests.contains { $0.method == "DELETE" })
            let job = try #require(cluster.job(task: first))
            let spec = try #require(job["spec"] as? [String: Any])
            #expect(spec["backoffLimit"] as? Int == 0)
            #expect(spec["activeDeadlineSeconds"] as? Int == 120)
            // Once the change is in, the attempt's files and tokens are gone.
            #expect(try await cluster.call(.GET, task: first, "bundle", token: fetch) == 401)
            #expect(try await e2e.string("SELECT count(*)::text FROM agent_job_files WHERE task_id IN (\(first), \(second))") == "0")
            #expect(try await e2e.string("SELECT count(*)::text FROM agent_jobs WHERE finished_at IS NULL") == "0")
        }
    }

    @Test func anAgentInAPodSeesNoSecretAndItsChangeIsCheckedOnTheWay() async throws {
        try await ClusterEndToEnd.with { cluster in
            let e2e = cluster.e2e
            let issue = e2e.issue()
            let snoop = try await e2e.comment("/asynccode --agent k8s-podsnoop look around", on: issue)
            try await e2e.waitFor(task: snoop, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            let report = try #require(try await e2e.file("pod-report.txt", on: pull.head))
            // The agent got its key from the Secret, and nothing of the bot's.
            #expect(report.contains("MODEL_API_KEY=\(ClusterEndToEnd.modelKey)"))
            for forbidden in ["ASYNCCODE_FETCH_TOKEN", "ASYNCCODE_REPORT_TOKEN", "ASYNCCODE_JOB_URL", "DATABASE_URL", "GITHUB_",
                              webhookSecret, "ghs_", "PRIVATE KEY"] {
                #expect(!report.contains(forbidden), "the agent saw \(forbidden)")
            }
            #expect(report.contains("base: absent"))
            // What it did to its own `.git` stayed in the pod: only its files came back.
            #expect(!FileManager.default.fileExists(atPath: "/tmp/pwned") && !FileManager.default.fileExists(atPath: "/tmp/hooked"))
            // The Job holds no secret of the bot's and not the model key (it names the Secret).
            let job = try JSONSerialization.data(withJSONObject: try #require(cluster.job(task: snoop)))
            let text = String(decoding: job, as: UTF8.self)
            for secret in [webhookSecret, ClusterEndToEnd.modelKey, e2e.db.url.password ?? "no-password", "PRIVATE KEY"]
                + e2e.sim.issuedTokens.map(\.token) {
                #expect(!text.contains(secret))
            }
            #expect(text.contains("asynccode-agent-env"))

            // A patch changed between the pod and the bot does not match the digest the pod reported: refused.
            cluster.proxy.tamperWithPatches()
            let other = e2e.issue("Tampered")
            let tampered = try await e2e.comment("/asynccode --agent k8s-edit fix the readme", on: other)
            try await e2e.waitFor(task: tampered, status: "failed")
            let error = try await e2e.string("SELECT error FROM tasks WHERE id = \(tampered)") ?? ""
            #expect(error.contains("does not match the digest"))
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).count == 1)
            #expect(e2e.botComments(on: other).first?.body.contains("does not match the digest") == true)
        }
    }

    /// The checks run on the worker; the second round's pod starts from the first round's change.
    @Test func theChecksLoopSendsAFailingCheckBackToANewJob() async throws {
        try await ClusterEndToEnd.with(repositoryFiles: [".github/asynccode.yml": VerifyLoopEndToEndTests.statusCheck]) { cluster in
            let e2e = cluster.e2e
            let issue = e2e.issue()
            let task = try await e2e.comment("/asynccode --agent k8s-fixer make the status pass", on: issue)
            try await e2e.waitFor(task: task, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            #expect(try await e2e.file("STATUS.md", on: pull.head) == "fixed\n")
            #expect(pull.body?.contains("The agent ran 2 rounds") == true)
            // One Job per round, the second given the first round's files.
            #expect(cluster.kube.startedPods == ["\(ClusterEndToEnd.namespace)/ac-\(task)-1", "\(ClusterEndToEnd.namespace)/ac-\(task)-2"])
            #expect(try await e2e.string("SELECT count(DISTINCT snapshot)::text FROM agent_jobs WHERE task_id = \(task)") == "2")
        }
    }

    @Test func clusterFailuresAreNamedAndCancelDeletesTheJob() async throws {
        try await ClusterEndToEnd.with(workers: 4) { cluster in
            let e2e = cluster.e2e
            cluster.kube.oomKill(image: "agents/oom:1")
            cluster.kube.failPulls(of: "registry.invalid/agents/missing:1")
            var tasks: [(String, Int64, Int)] = []
            for agent in ["k8s-oom", "k8s-nopull", "k8s-slow", "k8s-pause", "k8s-fail", "k8s-nosecret"] {
                let issue = e2e.issue("Try \(agent)")
                tasks.append((agent, try await e2e.comment("/asynccode --agent \(agent) fix it", on: issue), issue))
            }
            let pause = tasks[3]
            try await cluster.waitForPod(task: pause.1)
            _ = try await e2e.comment("/asynccode cancel", on: pause.2)
            try await e2e.waitFor(task: pause.1, status: "cancelled")
            try await eventually("the cancelled task's Job is deleted") { cluster.job(task: pause.1) == nil }

            let expected = [
                "k8s-oom": "ran out of memory in its pod (OOMKilled",
                "k8s-nopull": "ImagePullBackOff",
                "k8s-slow": "timed out",
                "k8s-fail": "exited with code 3",
                "k8s-nosecret": "CreateContainerConfigError: secret not found); its `passEnv` keys come from the Secret `not-made`",
            ]
            for (agent, task, issue) in tasks where agent != "k8s-pause" {
                try await e2e.waitFor(task: task, status: "failed")
                let error = try await e2e.string("SELECT error FROM tasks WHERE id = \(task)") ?? ""
                let comment = e2e.botComments(on: issue).first?.body ?? ""
                let text = expected[agent]!
                #expect(error.contains(text) || comment.contains(text), "\(agent): \(error)")
            }
            // The pod that could not pull its image is deleted, not left waiting.
            #expect(cluster.job(task: tasks[1].1) == nil)
            let comment = e2e.botComments(on: tasks[1].2).first?.body ?? ""
            #expect(comment.contains("cannot pull the image `registry.invalid/agents/missing:1` of its `agent` container (ImagePullBackOff"))
            #expect(cluster.job(task: tasks[5].1) == nil)
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).isEmpty)
        }
    }

    /// A worker killed with SIGKILL while its agent's Job runs: the next worker adopts the Job (a 409 on create):
    /// one pod, one pull request.
    @Test func aWorkerKilledMidJobLeavesOneRunAndOnePullRequest() async throws {
        try await ClusterEndToEnd.with(workers: 0) { cluster in
            let e2e = cluster.e2e
            let environment = ["ASYNCCODE_AGENT_JOB_URL": cluster.proxy.url, "ASYNCCODE_KUBECONFIG": cluster.kubeconfig,
                               "ASYNCCODE_KUBERNETES_POLL_SECONDS": "0.1"]
            let crash = WorkerCrashTests()
            let issue = e2e.issue()
            let task = try await e2e.comment("/asynccode --agent k8s-pause fix the readme", on: issue)
            let first = try crash.startWorker(e2e, log: e2e.stateDirectory + "/first-worker.log", environment: environment)
            defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
            try await cluster.waitForPod(task: task)
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()

            let second = try crash.startWorker(e2e, log: e2e.stateDirectory + "/second-worker.log", environment: environment)
            defer { if second.isRunning { kill(second.processIdentifier, SIGKILL) } }
            try await eventually("the second worker adopts the Job", timeout: .seconds(60)) {
                cluster.kube.requests.contains { $0.method == "POST" && $0.status == 409 }
            }
            try cluster.release(task: task)
            try await e2e.waitFor(task: task, status: "completed")
            #expect(cluster.kube.startedPods == ["\(ClusterEndToEnd.namespace)/ac-\(task)-1"])
            let pulls = e2e.sim.pullRequests(repositoryID: e2e.repositoryID)
            #expect(pulls.count == 1)
            #expect(try await e2e.file("README.md", on: try #require(pulls.first).head) == "# Widgets\nedited after a pause\n")
            let log = (try? String(contentsOfFile: e2e.stateDirectory + "/second-worker.log", encoding: .utf8)) ?? ""
            #expect(log.contains("adopted the agent's Job"))
        }
    }
}
