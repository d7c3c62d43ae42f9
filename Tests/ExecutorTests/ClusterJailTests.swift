@testable import Executor
import Foundation
@testable import Kubernetes
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(10))) struct KubernetesAgentSettingsTests {
    @Test func readsAnAgentThatRunsAsAJob() throws {
        let catalog = try AgentCatalog.parse(yaml: """
            agents:
              claude:
                command: ["claude", "-p"]
                timeout: 900
                passEnv: [ANTHROPIC_API_KEY]
                runner: kubernetes
                image: registry.example/agents/claude:1.0
                namespace: team-agents
                resources: {requests: {cpu: 500m, memory: 2Gi}, limits: {memory: 4Gi, ephemeral-storage: 10Gi}}
                serviceAccountName: agent
                nodeSelector: {kubernetes.io/arch: amd64}
                tolerations: [{key: dedicated, operator: Equal, value: agents, effect: NoSchedule}]
                secretName: model-keys
              local:
                command: ["aider"]
            """)
        let placement = try #require(catalog.agent(named: "claude")?.runner.kubernetes)
        #expect(placement.image == "registry.example/agents/claude:1.0")
        #expect(placement.namespace == "team-agents")
        #expect(placement.requests == ["cpu": "500m", "memory": "2Gi"])
        #expect(placement.limits == ["memory": "4Gi", "ephemeral-storage": "10Gi"])
        #expect(placement.serviceAccountName == "agent")
        #expect(placement.nodeSelector == ["kubernetes.io/arch": "amd64"])
        #expect(placement.tolerations == [AgentJob.Toleration(key: "dedicated", operator: "Equal", value: "agents", effect: "NoSchedule")])
        #expect(placement.secretName == "model-keys")
        #expect(catalog.agent(named: "local")?.runner == .local)
        // The defaults: the agents' namespace and Secret of deploy/kubernetes.
        let plain = try AgentCatalog.parse(yaml: "agents:\n  a:\n    command: [a]\n    runner: kubernetes\n    image: a:1\n")
        #expect(plain.agent(named: "a")?.runner.kubernetes?.namespace == "asynccode-agents")
        #expect(plain.agent(named: "a")?.runner.kubernetes?.secretName == "asynccode-agent-env")
    }

    @Test func refusesSettingsThatCannotWorkInACluster() {
        func problem(_ settings: String, runner: String = "kubernetes") -> String? {
            do {
                _ = try AgentCatalog.parse(yaml: "agents:\n  a:\n    command: [a]\n    runner: \(runner)\n" + settings)
                return nil
            } catch {
                return error.problem
            }
        }
        #expect(problem("")?.contains("agents.a.image must name the agent's container image") == true)
        #expect(problem("    image: a:1\n", runner: "docker")?.contains("runner must be local or kubernetes") == true)
        #expect(problem("    image: a:1\n", runner: "local")?.contains("agents.a.image is only for `runner: kubernetes`") == true)
        #expect(problem("    image: a:1\n    binds: [/opt/a]\n")?.contains("binds does not apply") == true)
        #expect(problem("    image: a:1\n    sandbox: none\n")?.contains("sandbox does not apply") == true)
        #expect(problem("    image: a:1\n    limits: {memoryMB: 10}\n")?.contains("use resources") == true)
        #expect(problem("    image: a:1\n    namespace: Not_A_Label\n")?.contains("namespace must be a DNS label") == true)
        #expect(problem("    image: a:1\n    resources: {limits: {memory: lots}}\n")?.contains("must be a Kubernetes quantity") == true)
        #expect(problem("    image: a:1\n    resources: {limit: {memory: 1Gi}}\n")?.contains("resources.limit is not a setting") == true)
        #expect(problem("    image: a:1\n    tolerations: [{key: a, operator: Maybe}]\n")?.contains("operator must be Exists or Equal") == true)
        #expect(problem("    image: a:1\n    tolerations: [{key: a, efect: NoSchedule}]\n")?.contains("efect is not a setting") == true)
        #expect(problem("    image: a b\n")?.contains("image must name") == true)
        #expect(problem("    image: a:1\n    passEnv: [DATABASE_URL]\n")?.contains("may not be given DATABASE_URL") == true)
        #expect(problem("    image: a:1\n    resources: {requests: {cpu: 250m}}\n") == nil)
    }
}

@Suite(.timeLimit(.minutes(10))) struct ClusterJailTests {
    static let agent = AgentCommand(name: "claude", command: ["claude"], environment: ["MODE": "fast"], passEnvironment: ["API_KEY"])

    @Test func thePodGetsTheAgentsVariablesAndNothingOfTheWorkers() {
        let environment = ClusterJail.podEnvironment(agent: Self.agent, task: ["ASYNCCODE_TASK_ID": "7", "ASYNCCODE_PROMPT": "long"])
        #expect(environment == ["MODE": "fast", "LANG": "C.UTF-8", "ASYNCCODE_TASK_ID": "7"])
    }

    @Test func namesWhyAJobFailed() throws {
        var placement = KubernetesPlacement(image: "agents/claude:1")
        placement.limits = ["memory": "2Gi"]
        let failed = JobState.Condition(type: "Failed", status: "True", reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit")
        func pod(_ containers: [[String: Any]]) -> PodState {
            PodState(["metadata": ["name": "p"], "status": ["phase": "Failed", "initContainerStatuses": containers]])
        }
        let oom = ClusterJail.failure(of: failed, pod: pod([
            ["name": "fetch", "state": ["terminated": ["exitCode": 0, "reason": "Completed"]]],
            ["name": "agent", "state": ["terminated": ["exitCode": 137, "reason": "OOMKilled"]]],
        ]), agent: Self.agent, placement: placement)
        #expect(oom.reason == "agent `claude` ran out of memory in its pod (OOMKilled: over its memory limit of 2Gi)")
        #expect(!oom.retryable && oom.agentsFault)
        let fetch = ClusterJail.failure(of: failed, pod: pod([["name": "fetch", "state": ["terminated": ["exitCode": 22, "reason": "Error"]]]]),
                                        agent: Self.agent, placement: placement)
        #expect(fetch.reason.contains("could not fetch the checkout") && fetch.retryable && !fetch.agentsFault)
        let other = ClusterJail.failure(of: failed, pod: nil, agent: Self.agent, placement: placement)
        #expect(other.reason == "the agent's Job failed (BackoffLimitExceeded: Job has reached the specified backoff limit)")
    }
}

/// What a pod is given and what comes back: a bundle of one commit, and a patch applied to the bot's checkout.
@Suite(.timeLimit(.minutes(10))) struct WorkspaceSnapshotTests {
    /// A workspace whose checkout is a clone of a one-commit repository (as the executor makes it).
    func workspace() async throws -> GitWorkspace {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snapshot-\(UUID().uuidString)").path
        let source = folder + "/source"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try "# Widgets\n".write(toFile: source + "/README.md", atomically: true, encoding: .utf8)
        for command in [["git", "init", "-q", "-b", "main", source], ["git", "-C", source, "add", "."],
                        ["git", "-C", source, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first"]] {
            #expect(try await TestSupport.run(command).status == 0)
        }
        let workspace = try GitWorkspace.create(in: folder, taskID: 1)
        #expect(try await TestSupport.run(["git", "clone", "-q", "--separate-git-dir=\(workspace.gitDirectory)", source, workspace.checkout]).status == 0)
        return workspace
    }

    @Test func theSameFilesGiveTheSameCommitAndThePodsChangeComesBack() async throws {
        let workspace = try await workspace()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: workspace.root).deletingLastPathComponent().path) }
        try "new file\n".write(toFile: workspace.checkout + "/NOTES.md", atomically: true, encoding: .utf8)
        let bundle = workspace.root + "/a.bundle"
        let first = try await workspace.snapshotBundle(to: bundle)
        #expect(try await workspace.snapshotBundle(to: workspace.root + "/b.bundle") == first)
        // Nothing of the bot's repository changed: no branch left behind, nothing staged.
        #expect(try await workspace.git(["for-each-ref", "--format=%(refname)", "refs/heads/asynccode-agent"], name: "refs").isEmpty)
        #expect(try await workspace.git(["diff", "--cached", "--name-only"], name: "diff").isEmpty)

        // What the pod's `fetch` and `report` containers do with it.
        let pod = workspace.root + "/pod"
        #expect(try await TestSupport.run(["git", "clone", "-q", "--bare", "--branch", "asynccode-agent", bundle, pod + "/base.git"]).status == 0)
        #expect(try await TestSupport.run(["git", "clone", "-q", "--branch", "asynccode-agent", bundle, pod + "/work"]).status == 0)
        #expect(try String(contentsOfFile: pod + "/work/NOTES.md", encoding: .utf8) == "new file\n")
        try "# Widgets\nby the agent\n".write(toFile: pod + "/work/README.md", atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: pod + "/work/NOTES.md")
        let git = ["git", "--git-dir=\(pod)/base.git", "--work-tree=\(pod)/work"]
        #expect(try await TestSupport.run(git + ["add", "-A"]).status == 0)
        let diff = try await TestSupport.run(git + ["diff", "--cached", "--binary", "HEAD"])
        try diff.output.write(toFile: workspace.root + "/change.patch", atomically: true, encoding: .utf8)

        try await workspace.applyPatch(at: workspace.root + "/change.patch")
        #expect(try String(contentsOfFile: workspace.checkout + "/README.md", encoding: .utf8) == "# Widgets\nby the agent\n")
        #expect(!FileManager.default.fileExists(atPath: workspace.checkout + "/NOTES.md"))
    }

    @Test func aPatchCannotReachTheRepositoryOrLeaveTheCheckout() async throws {
        let workspace = try await workspace()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: workspace.root).deletingLastPathComponent().path) }
        let outside = workspace.root + "/outside-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        func patch(_ path: String, mode: String = "100644", content: String = "evil") -> String {
            """
            diff --git a/\(path) b/\(path)
            new file mode \(mode)
            index 0000000..1111111
            --- /dev/null
            +++ b/\(path)
            @@ -0,0 +1 @@
            +\(content)

            """
        }
        let link = patch("out", mode: "120000", content: outside)
            .replacingOccurrences(of: "+\(outside)\n", with: "+\(outside)\n\\ No newline at end of file\n")
        let attacks = [
            "git": (patch(".git/hooks/post-checkout", mode: "100755"), "invalid path"),
            "nested-git": (patch("sub/.git/config"), "invalid path"),
            "parent": (patch("../escaped"), "invalid path"),
            // A link to outside the checkout and a file through it, in one patch.
            "link": (link + patch("out/pwned"), "beyond a symbolic link"),
        ]
        for (name, (text, refusal)) in attacks {
            let file = workspace.root + "/\(name).patch"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let error = await #expect(throws: GitError.self, "\(name)") { try await workspace.applyPatch(at: file) }
            #expect(error?.message.contains(refusal) == true, "\(name): \(error?.message ?? "")")
        }
        // The link alone is a change like any other (the attack above failed on the file through it).
        try link.write(toFile: workspace.root + "/link-only.patch", atomically: true, encoding: .utf8)
        try await workspace.applyPatch(at: workspace.root + "/link-only.patch")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: workspace.checkout + "/out") == outside)
        try FileManager.default.removeItem(atPath: workspace.checkout + "/out")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: workspace.root + "/escaped"))
        #expect(!FileManager.default.fileExists(atPath: workspace.gitDirectory + "/hooks/post-checkout"))
        #expect(!FileManager.default.fileExists(atPath: workspace.checkout + "/out"))
    }
}
