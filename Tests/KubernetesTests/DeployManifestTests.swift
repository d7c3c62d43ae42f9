import APIConformance
import Executor
import Foundation
import Kubernetes
import KubernetesSimulator
import PostgresNIO
import Testing
import TestSupport
import Yams

/// `deploy/kubernetes/`: every object held strictly to Kubernetes' schema, and the objects agreeing with each other
/// and with the bot (names, labels, ports, the agents' pods, the KEDA query against the real schema).
@Suite struct DeployManifestTests {
    static let root = APIConformance.packageRoot.appendingPathComponent("deploy/kubernetes")

    /// The objects of a kustomization's `resources` (plain files; no transformers are used), in order.
    static func objects(_ folder: String, extra: [String] = []) throws -> [[String: Any]] {
        let directory = root.appendingPathComponent(folder)
        let kustomization = try #require(try Yams.load(yaml: String(contentsOf: directory.appendingPathComponent("kustomization.yaml"), encoding: .utf8)) as? [String: Any])
        let files = (kustomization["resources"] as? [String] ?? []) + extra
        var objects: [[String: Any]] = []
        for file in files {
            for document in try Yams.load_all(yaml: String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)) {
                // Through JSON, as a client would send it.
                let data = try JSONSerialization.data(withJSONObject: try #require(document as? [String: Any]))
                objects.append(try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any]))
            }
        }
        return objects
    }

    static func definition(for object: [String: Any], in schema: APIConformance) -> String? {
        let apiVersion = object["apiVersion"] as? String ?? ""
        let (group, version) = apiVersion.contains("/") ? (String(apiVersion.split(separator: "/")[0]), String(apiVersion.split(separator: "/")[1])) : ("", apiVersion)
        let definitions = schema.document["$defs"] as? [String: Any] ?? [:]
        return definitions.first { _, value in
            ((value as? [String: Any])?["x-kubernetes-group-version-kind"] as? [[String: Any]] ?? []).contains {
                $0["group"] as? String == group && $0["version"] as? String == version && $0["kind"] as? String == object["kind"] as? String
            }
        }?.key
    }

    static func find(_ objects: [[String: Any]], _ kind: String, _ name: String) -> [String: Any]? {
        objects.first { $0["kind"] as? String == kind && ($0["metadata"] as? [String: Any])?["name"] as? String == name }
    }

    static func value(_ object: Any?, _ path: String) -> Any? {
        var current = object
        for key in path.split(separator: ".") {
            if let index = Int(key) { current = (current as? [Any]).flatMap { index < $0.count ? $0[index] : nil } } else {
                current = (current as? [String: Any])?[String(key)]
            }
        }
        return current
    }

    @Test func everyObjectIsWhatKubernetesTakes() throws {
        let schema = try KubernetesSimulator.loadSchema()
        let objects = try Self.objects("base", extra: ["secrets.example.yaml"])
        #expect(objects.count == 16)
        for object in objects {
            let label = "\(object["kind"] ?? "?")/\(Self.value(object, "metadata.name") ?? "?")"
            let definition = try #require(Self.definition(for: object, in: schema), "\(label): not a kind of the schema")
            let problems = schema.validate(object, schema: ["$ref": "#/$defs/\(definition)"])
            #expect(problems.isEmpty, "\(label): \(problems)")
            if object["kind"] as? String != "Namespace" {
                #expect(["asynccode", "asynccode-agents"].contains(Self.value(object, "metadata.namespace") as? String ?? ""), "\(label)")
            }
        }
        // Strict: a misspelt field is refused (so the check above could fail).
        var wrong = try #require(Self.find(objects, "Deployment", "asynccode-serve"))
        wrong["spec"] = (wrong["spec"] as? [String: Any] ?? [:]).merging(["replica": 2]) { $1 }
        #expect(!schema.validate(wrong, schema: ["$ref": "#/$defs/io.k8s.api.apps.v1.Deployment"]).isEmpty)
    }

    @Test func theObjectsAgreeWithEachOtherAndWithTheBot() throws {
        let objects = try Self.objects("base")
        let serve = try #require(Self.find(objects, "Deployment", "asynccode-serve"))
        let worker = try #require(Self.find(objects, "Deployment", "asynccode-worker"))
        let serveLabels = try #require(Self.value(serve, "spec.template.metadata.labels") as? [String: String])
        // Accounts exist; serve gets no API token; the worker's is bound to the Job role in the agents' namespace.
        for deployment in [serve, worker] {
            let account = try #require(Self.value(deployment, "spec.template.spec.serviceAccountName") as? String)
            #expect(Self.find(objects, "ServiceAccount", account) != nil)
        }
        #expect(Self.value(serve, "spec.template.spec.automountServiceAccountToken") as? Bool == false)
        let binding = try #require(Self.find(objects, "RoleBinding", "asynccode-worker-agent-jobs"))
        #expect(Self.value(binding, "subjects.0.name") as? String == "asynccode-worker" && Self.value(binding, "metadata.namespace") as? String == "asynccode-agents")
        #expect(Self.find(objects, "Role", Self.value(binding, "roleRef.name") as? String ?? "") != nil)
        // The Service and the disruption budget select the serve pods; the serve port is the one agents may reach.
        let service = try #require(Self.find(objects, "Service", "asynccode"))
        #expect((Self.value(service, "spec.selector") as? [String: String] ?? ["": ""]).allSatisfy { serveLabels[$0.key] == $0.value })
        let budget = try #require(Self.find(objects, "PodDisruptionBudget", "asynccode-serve"))
        #expect((Self.value(budget, "spec.selector.matchLabels") as? [String: String] ?? ["": ""]).allSatisfy { serveLabels[$0.key] == $0.value })
        #expect(Self.value(serve, "spec.template.spec.containers.0.ports.0.containerPort") as? Int == 3000)
        let agents = try #require(Self.find(objects, "NetworkPolicy", "asynccode-agents"))
        #expect(Self.value(agents, "spec.egress.0.ports.0.port") as? Int == 3000)
        #expect((Self.value(agents, "spec.egress.0.to.0.podSelector.matchLabels") as? [String: String] ?? ["": ""]).allSatisfy { serveLabels[$0.key] == $0.value })
        // The policy selects the pods of the bot's own agent Jobs, and keeps them from the metadata address.
        let job = AgentJob(taskID: 1, attempt: 1, namespace: "asynccode-agents", image: "agent", command: ["true"], toolsImage: "tools",
                           environment: [:], prompt: "p", timeout: .seconds(60), botURL: "http://asynccode.asynccode.svc",
                           fetchToken: "f", reportToken: "r").manifest
        let podLabels = try #require(Self.value(job, "spec.template.metadata.labels") as? [String: String])
        #expect((Self.value(agents, "spec.podSelector.matchLabels") as? [String: String] ?? ["": ""]).allSatisfy { podLabels[$0.key] == $0.value })
        #expect((Self.value(agents, "spec.egress.2.to.0.ipBlock.except") as? [String] ?? []).contains("169.254.0.0/16"))
        #expect(Self.value(agents, "spec.ingress") as? [Any] != nil && (Self.value(agents, "spec.ingress") as? [Any])?.isEmpty == true)

        // The agents the ConfigMap configures run as Jobs where the Role, the policy and the example Secret are.
        let config = try #require(Self.find(objects, "ConfigMap", "asynccode-config"))
        let catalog = try AgentCatalog.parse(yaml: try #require((Self.value(config, "data") as? [String: String])?["asynccode.yml"]))
        let secret = try #require(Self.find(try Self.objects("base", extra: ["secrets.example.yaml"]), "Secret", "asynccode-agent-env"))
        for agent in catalog.agents.values {
            let placement = try #require(agent.runner.kubernetes, "\(agent.name) does not run as a Job")
            #expect(placement.namespace == Self.value(binding, "metadata.namespace") as? String)
            #expect(placement.namespace == Self.value(agents, "metadata.namespace") as? String)
            #expect(placement.secretName == Self.value(secret, "metadata.name") as? String)
            #expect(Set(agent.passEnvironment).isSubset(of: Set((Self.value(secret, "stringData") as? [String: String] ?? [:]).keys)))
        }
        // The workers tell the pods the Service's address.
        let environment = Self.value(worker, "spec.template.spec.containers.0.env") as? [[String: Any]] ?? []
        let url = try #require(environment.first { $0["name"] as? String == "ASYNCCODE_AGENT_JOB_URL" }?["value"] as? String)
        #expect(url == "http://\(Self.value(service, "metadata.name") ?? "").\(Self.value(service, "metadata.namespace") ?? "").svc")
        #expect(Self.value(service, "spec.ports.0.port") as? Int == 80)
        // The worker's token is mounted (it calls the API server); the agents' pods get none.
        #expect(Self.value(Self.find(objects, "ServiceAccount", "asynccode-worker"), "automountServiceAccountToken") as? Bool != false)
    }

    /// KEDA scales the worker Deployment on a query that runs against the real schema.
    @Test func kedaScalesTheWorkersOnPendingTasks() async throws {
        let objects = try Self.objects("keda")
        let scaled = try #require(Self.find(objects, "ScaledObject", "asynccode-worker"))
        #expect(Self.value(scaled, "spec.scaleTargetRef.name") as? String == "asynccode-worker")
        #expect(Self.find(try Self.objects("base"), "Deployment", "asynccode-worker") != nil)
        let authentication = try #require(Self.find(objects, "TriggerAuthentication", Self.value(scaled, "spec.triggers.0.authenticationRef.name") as? String ?? ""))
        #expect(Self.value(authentication, "spec.secretTargetRef.0.key") as? String == "DATABASE_URL")
        let query = try #require(Self.value(scaled, "spec.triggers.0.metadata.query") as? String)
        try await TestDatabase.with { db in
            #expect(try await db.scalar(query, as: Int64.self) == 0)
            try await db.client.query("""
                INSERT INTO accounts (github_id, login) VALUES (1, 'alice');
                """, logger: db.logger)
            try await db.client.query("INSERT INTO installations (github_id) VALUES (1)", logger: db.logger)
            try await db.client.query("""
                INSERT INTO repositories (github_id, installation_id, full_name, name, owner_login) SELECT 1, id, 'o/r', 'r', 'o' FROM installations
                """, logger: db.logger)
            try await db.client.query("""
                INSERT INTO tasks (repository_id, installation_id, requested_by, issue_number, source, comment_id, command_index, prompt)
                SELECT r.id, r.installation_id, a.id, n, 'issue_comment', n, 0, 'p' FROM repositories r, accounts a, generate_series(1, 3) n
                """, logger: db.logger)
            #expect(try await db.scalar(query, as: Int64.self) == 3)
        }
    }

    /// `kubectl kustomize` renders the same objects as the files hold (no transformer changes them).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/kubectl") || FileManager.default.isExecutableFile(atPath: "/usr/local/bin/kubectl"),
                   "needs kubectl to render the kustomization (Kubernetes' own client)"))
    func kubectlRendersTheBase() async throws {
        let (status, output) = try await run(["kubectl", "kustomize", Self.root.appendingPathComponent("base").path])
        #expect(status == 0, "\(output)")
        let rendered = try Yams.load_all(yaml: output).compactMap { $0 as? [String: Any] }
        func names(_ objects: [[String: Any]]) -> Set<String> {
            Set(objects.map { "\($0["kind"] ?? "")/\(Self.value($0, "metadata.namespace") ?? "")/\(Self.value($0, "metadata.name") ?? "")" })
        }
        #expect(names(rendered) == names(try Self.objects("base")))
    }
}
