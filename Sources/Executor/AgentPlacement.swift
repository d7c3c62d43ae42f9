import Kubernetes

/// Where an agent's run happens: in the bubblewrap jail on the worker (`runner: local`, the default), or as a
/// Kubernetes Job (`runner: kubernetes`). Everything else (the queue, credits, the checks loop, every GitHub
/// write) stays with the bot either way.
public enum AgentPlacement: Sendable, Hashable {
    case local
    case kubernetes(KubernetesPlacement)

    /// The Kubernetes settings, when the agent runs in a cluster.
    public var kubernetes: KubernetesPlacement? {
        if case .kubernetes(let placement) = self { return placement }
        return nil
    }
}

/// How an agent's Job is placed in the cluster (the agent entry's `image`, `namespace`, `resources`,
/// `serviceAccountName`, `nodeSelector`, `tolerations` and `secretName`).
public struct KubernetesPlacement: Sendable, Hashable {
    /// The agent's container image (it runs the entry's `command`).
    public var image: String
    public var namespace = "asynccode-agents"
    public var requests: [String: String] = [:]
    public var limits: [String: String] = [:]
    public var serviceAccountName: String?
    public var nodeSelector: [String: String] = [:]
    public var tolerations: [AgentJob.Toleration] = []
    /// The Secret in `namespace` holding the `passEnv` values (one key per variable).
    public var secretName = "asynccode-agent-env"

    public init(image: String) {
        self.image = image
    }
}
