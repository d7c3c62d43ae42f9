import Foundation
import Kubernetes

/// `runner: kubernetes` in an agent entry:
///
/// ```yaml
/// agents:
///   claude:
///     command: ["claude", "-p", "--permission-mode", "acceptEdits"]
///     passEnv: [ANTHROPIC_API_KEY]          # keys of the Secret `secretName` in `namespace`
///     runner: kubernetes
///     image: registry.example/agents/claude:1.0
///     namespace: asynccode-agents           # the default
///     resources: {requests: {cpu: "1", memory: 2Gi}, limits: {memory: 4Gi}}
///     serviceAccountName: agent             # no token is mounted either way
///     nodeSelector: {pool: agents}
///     tolerations: [{key: dedicated, operator: Equal, value: agents, effect: NoSchedule}]
///     secretName: asynccode-agent-env       # the default
/// ```
extension AgentCatalog {
    struct ResourcesEntry: Decodable {
        var requests: [String: String]?
        var limits: [String: String]?
    }

    struct TolerationEntry: Decodable {
        var key: String?
        var `operator`: String?
        var value: String?
        var effect: String?
        var tolerationSeconds: Int?
    }

    static let kubernetesKeys = ["runner", "image", "namespace", "resources", "serviceAccountName", "nodeSelector", "tolerations", "secretName"]
    /// What the local jail has and a pod does not (the cluster's own settings stand for them).
    static let localOnlyKeys: [(key: String, instead: String)] = [
        ("sandbox", "the pod is the jail"), ("binds", "the image holds the program"), ("limits", "use resources"),
        ("network", "the agents' NetworkPolicy decides"),
    ]

    /// Refuses unknown keys under `resources` and in `tolerations`.
    static func checkKubernetesKeys(_ entry: [String: Any], agent name: String) throws(AgentCatalogError) {
        if let resources = entry["resources"] as? [String: Any],
           let unknown = Set(resources.keys).subtracting(["requests", "limits"]).sorted().first {
            throw AgentCatalogError(problem: "agents.\(name).resources.\(unknown) is not a setting (known: limits, requests)")
        }
        let tolerationKeys: Set<String> = ["key", "operator", "value", "effect", "tolerationSeconds"]
        for toleration in entry["tolerations"] as? [[String: Any]] ?? [] {
            if let unknown = Set(toleration.keys).subtracting(tolerationKeys).sorted().first {
                throw AgentCatalogError(problem: "agents.\(name).tolerations: \(unknown) is not a setting (known: \(tolerationKeys.sorted().joined(separator: ", ")))")
            }
        }
    }

    /// Returns where the agent runs; the Kubernetes keys are refused unless it says `runner: kubernetes`, and the
    /// local jail's unless it does not.
    static func placement(_ entry: Entry, agent name: String) throws(AgentCatalogError) -> AgentPlacement {
        let key = "agents.\(name)"
        switch entry.runner ?? "local" {
        case "local":
            let given: [(String, Bool)] = [
                ("image", entry.image != nil), ("namespace", entry.namespace != nil), ("resources", entry.resources != nil),
                ("serviceAccountName", entry.serviceAccountName != nil), ("nodeSelector", entry.nodeSelector != nil),
                ("tolerations", entry.tolerations != nil), ("secretName", entry.secretName != nil),
            ]
            if let (setting, _) = given.first(where: \.1) {
                throw AgentCatalogError(problem: "\(key).\(setting) is only for `runner: kubernetes`")
            }
            return .local
        case "kubernetes":
            break
        default:
            throw AgentCatalogError(problem: "\(key).runner must be local or kubernetes")
        }
        let localOnly: [String: Bool] = ["sandbox": entry.sandbox != nil, "binds": entry.binds != nil,
                                         "limits": entry.limits != nil, "network": entry.network != nil]
        if let (setting, instead) = localOnlyKeys.first(where: { localOnly[$0.key] == true }) {
            throw AgentCatalogError(problem: "\(key).\(setting) does not apply to `runner: kubernetes` (\(instead))")
        }
        guard let image = entry.image, !image.isEmpty, image.count <= 512, !image.contains(where: \.isWhitespace) else {
            throw AgentCatalogError(problem: "\(key).image must name the agent's container image (runner: kubernetes)")
        }
        var placement = KubernetesPlacement(image: image)
        if let namespace = entry.namespace {
            guard isLabel(namespace) else { throw AgentCatalogError(problem: "\(key).namespace must be a DNS label (a-z, 0-9, '-')") }
            placement.namespace = namespace
        }
        if let account = entry.serviceAccountName {
            guard isSubdomain(account) else { throw AgentCatalogError(problem: "\(key).serviceAccountName must be a DNS subdomain") }
            placement.serviceAccountName = account
        }
        if let secret = entry.secretName {
            guard isSubdomain(secret) else { throw AgentCatalogError(problem: "\(key).secretName must be a DNS subdomain") }
            placement.secretName = secret
        }
        for variable in entry.passEnv ?? [] where variable.range(of: "^[-._a-zA-Z0-9]+$", options: .regularExpression) == nil {
            throw AgentCatalogError(problem: "\(key).passEnv: \(variable) cannot be a key of the Secret \(placement.secretName)")
        }
        for (field, values) in [("requests", entry.resources?.requests ?? [:]), ("limits", entry.resources?.limits ?? [:])] {
            for (resource, quantity) in values {
                guard isQualifiedName(resource), quantity.range(of: #"^[+]?[0-9]+(\.[0-9]+)?([eE][0-9]+|[mkMGTPE]i?|[KMGTPE]i|)$"#,
                                                                 options: .regularExpression) != nil else {
                    throw AgentCatalogError(problem: "\(key).resources.\(field).\(resource) must be a Kubernetes quantity (\"500m\", \"2Gi\")")
                }
            }
        }
        placement.requests = entry.resources?.requests ?? [:]
        placement.limits = entry.resources?.limits ?? [:]
        for (label, value) in entry.nodeSelector ?? [:] where !isQualifiedName(label) || value.count > 63 {
            throw AgentCatalogError(problem: "\(key).nodeSelector: \(label) is not a label")
        }
        placement.nodeSelector = entry.nodeSelector ?? [:]
        for toleration in entry.tolerations ?? [] {
            if let value = toleration.operator, !["Exists", "Equal"].contains(value) {
                throw AgentCatalogError(problem: "\(key).tolerations: operator must be Exists or Equal")
            }
            if let value = toleration.effect, !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(value) {
                throw AgentCatalogError(problem: "\(key).tolerations: effect must be NoSchedule, PreferNoSchedule or NoExecute")
            }
            if toleration.tolerationSeconds != nil {
                throw AgentCatalogError(problem: "\(key).tolerations: tolerationSeconds is not supported (an agent's pod is not moved)")
            }
            placement.tolerations.append(AgentJob.Toleration(key: toleration.key, operator: toleration.operator,
                                                             value: toleration.value, effect: toleration.effect))
        }
        return .kubernetes(placement)
    }

    private static func isLabel(_ text: String) -> Bool {
        text.count <= 63 && text.range(of: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", options: .regularExpression) != nil
    }

    private static func isSubdomain(_ text: String) -> Bool {
        text.count <= 253 && text.range(of: #"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"#,
                                         options: .regularExpression) != nil
    }

    /// A label key or resource name: an optional DNS-subdomain prefix and `/`, then at most 63 characters.
    private static func isQualifiedName(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.last, name.count <= 63,
              String(name).range(of: "^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", options: .regularExpression) != nil else { return false }
        return parts.count == 1 || isSubdomain(String(parts[0]))
    }
}
