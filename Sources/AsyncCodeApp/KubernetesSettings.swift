import Executor
import Foundation
import Kubernetes
import Logging
import Queue
import ServiceLifecycle

/// How workers run agents with `runner: kubernetes` (issue 22): where the cluster's API is, where the agents'
/// pods reach the bot, and the image of the pods' `fetch` and `report` containers.
public struct KubernetesSettings: Sendable {
    /// The bot's address as the agents' pods reach it (`ASYNCCODE_AGENT_JOB_URL`, such as the serve Service:
    /// `http://asynccode.asynccode.svc`).
    public var agentJobURL: URL
    /// An image with sh, git and curl (`ASYNCCODE_KUBERNETES_TOOLS_IMAGE`; default `asynccode`, the bot's own).
    public var toolsImage = "asynccode"
    /// A kubeconfig file (`ASYNCCODE_KUBECONFIG`) and its context (`ASYNCCODE_KUBERNETES_CONTEXT`); in the
    /// cluster (the worker's service account) when `nil`.
    public var kubeconfigPath: String?
    public var context: String?
    /// How often a running Job is looked at (`ASYNCCODE_KUBERNETES_POLL_SECONDS`).
    public var pollInterval: Duration = .seconds(2)
    /// How long a pod may take to be scheduled, pull its images and fetch the checkout, on top of the agent's timeout.
    public var startAllowance: Duration = .seconds(600)

    public init(agentJobURL: URL) {
        self.agentJobURL = agentJobURL
    }

    /// Reads the settings from `value`; `nil` when no agent runs in a cluster or this process runs no workers.
    static func load(agents: AgentCatalog, workers: Int, value: (String) -> String?) throws(ConfigurationError) -> KubernetesSettings? {
        let clustered = agents.names.filter { agents.agents[$0]?.runner.kubernetes != nil }
        // Only workers start Jobs (`serve` with ASYNCCODE_WORKERS=0 answers the pods without these settings).
        guard !clustered.isEmpty, workers > 0 else { return nil }
        guard let raw = value("ASYNCCODE_AGENT_JOB_URL") else {
            throw ConfigurationError(
                setting: "ASYNCCODE_AGENT_JOB_URL",
                problem: "is not set, and agents \(clustered.joined(separator: ", ")) run as Kubernetes Jobs: give the bot's address as their pods reach it (http://asynccode.asynccode.svc)")
        }
        var text = raw
        while text.hasSuffix("/") { text.removeLast() }
        guard let url = URL(string: text), let scheme = url.scheme, scheme == "https" || scheme == "http", url.host != nil,
              url.query == nil, url.user == nil else {
            throw ConfigurationError(setting: "ASYNCCODE_AGENT_JOB_URL", problem: "must be an http(s) URL such as http://asynccode.asynccode.svc")
        }
        var settings = KubernetesSettings(agentJobURL: url)
        if let image = value("ASYNCCODE_KUBERNETES_TOOLS_IMAGE") {
            guard image.count <= 512, !image.contains(where: \.isWhitespace) else {
                throw ConfigurationError(setting: "ASYNCCODE_KUBERNETES_TOOLS_IMAGE", problem: "must be an image reference")
            }
            settings.toolsImage = image
        }
        if let path = value("ASYNCCODE_KUBECONFIG") {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw ConfigurationError(setting: "ASYNCCODE_KUBECONFIG", problem: "cannot read \(path)")
            }
            settings.kubeconfigPath = path
        }
        settings.context = value("ASYNCCODE_KUBERNETES_CONTEXT")
        if let raw = value("ASYNCCODE_KUBERNETES_POLL_SECONDS") {
            guard let seconds = Double(raw), seconds >= 0.05, seconds <= 60 else {
                throw ConfigurationError(setting: "ASYNCCODE_KUBERNETES_POLL_SECONDS", problem: "must be a number of seconds from 0.05 to 60")
            }
            settings.pollInterval = .milliseconds(Int64(seconds * 1000))
        }
        return settings
    }

    /// Connects to the cluster: the kubeconfig's context, or the worker's own service account.
    func client(logger: Logger) throws(ConfigurationError) -> KubernetesClient {
        let setting = kubeconfigPath == nil ? "KUBERNETES_SERVICE_HOST" : "ASYNCCODE_KUBECONFIG"
        do {
            let endpoint = try kubeconfigPath.map { try KubernetesEndpoint.kubeconfig(path: $0, context: context) }
                ?? KubernetesEndpoint.inCluster()
            return try KubernetesClient(endpoint: endpoint, logger: logger)
        } catch let error as KubernetesError {
            throw ConfigurationError(setting: setting, problem: error.description + " (agents with runner: kubernetes need the cluster)")
        } catch {
            throw ConfigurationError(setting: setting, problem: "\(error)")
        }
    }
}

/// Closes the Kubernetes client's connections when the service group stops.
struct KubernetesClientService: Service {
    let client: KubernetesClient

    func run() async throws {
        try? await gracefulShutdown()
        await client.shutdown()
    }
}
