import Foundation
import Yams

/// Where the Kubernetes API is and how to authenticate to it: in the cluster (the pod's service account), or
/// from a kubeconfig file (a bearer token or token file; client certificates are not supported).
public struct KubernetesEndpoint: Sendable {
    /// How the bearer token is found: read again from its file whenever the file changes (the kubelet rotates
    /// projected service-account tokens), or given.
    public enum Token: Sendable {
        case file(String)
        case value(String)
    }

    public var server: URL
    /// The cluster's CA certificates (PEM); the system's roots when `nil`.
    public var certificateAuthorityPEM: String?
    public var token: Token
    /// The namespace of the pod the bot runs in (in the cluster), or the kubeconfig context's.
    public var namespace: String?

    public init(server: URL, certificateAuthorityPEM: String? = nil, token: Token, namespace: String? = nil) {
        self.server = server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.token = token
        self.namespace = namespace
    }

    /// The pod's own service account: `KUBERNETES_SERVICE_HOST`/`_PORT` and the files under `directory`
    /// (`/var/run/secrets/kubernetes.io/serviceaccount`: `token`, `ca.crt`, `namespace`).
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = "/var/run/secrets/kubernetes.io/serviceaccount"
    ) throws -> KubernetesEndpoint {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
            throw KubernetesError(.configuration, "not in a cluster: KUBERNETES_SERVICE_HOST is not set")
        }
        let port = environment["KUBERNETES_SERVICE_PORT"] ?? "443"
        let bracketed = host.contains(":") ? "[\(host)]" : host
        guard let server = URL(string: "https://\(bracketed):\(port)") else {
            throw KubernetesError(.configuration, "KUBERNETES_SERVICE_HOST/PORT do not make a URL")
        }
        guard FileManager.default.isReadableFile(atPath: directory + "/token") else {
            throw KubernetesError(.configuration, "no service-account token at \(directory)/token (is automountServiceAccountToken off?)")
        }
        let ca = try? String(contentsOfFile: directory + "/ca.crt", encoding: .utf8)
        let namespace = (try? String(contentsOfFile: directory + "/namespace", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return KubernetesEndpoint(server: server, certificateAuthorityPEM: ca, token: .file(directory + "/token"), namespace: namespace)
    }

    /// The kubeconfig file at `path`, its `context` (the current context when `nil`).
    public static func kubeconfig(path: String, context: String? = nil) throws -> KubernetesEndpoint {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw KubernetesError(.configuration, "cannot read the kubeconfig \(path)")
        }
        guard let config = (try? Yams.load(yaml: text)) as? [String: Any] else {
            throw KubernetesError(.configuration, "\(path) is not a kubeconfig (YAML mapping)")
        }
        func named(_ list: String, _ name: String) -> [String: Any]? {
            (config[list] as? [[String: Any]])?.first { $0["name"] as? String == name }
        }
        guard let contextName = context ?? config["current-context"] as? String else {
            throw KubernetesError(.configuration, "\(path) names no current-context")
        }
        guard let entry = named("contexts", contextName)?["context"] as? [String: Any],
              let clusterName = entry["cluster"] as? String, let userName = entry["user"] as? String else {
            throw KubernetesError(.configuration, "\(path) has no context \(contextName)")
        }
        guard let cluster = named("clusters", clusterName)?["cluster"] as? [String: Any],
              let serverText = cluster["server"] as? String, let server = URL(string: serverText) else {
            throw KubernetesError(.configuration, "\(path): cluster \(clusterName) has no server")
        }
        let folder = (path as NSString).deletingLastPathComponent
        func relative(_ file: String) -> String { file.hasPrefix("/") ? file : folder + "/" + file }
        var ca: String?
        if let data = cluster["certificate-authority-data"] as? String {
            guard let decoded = Data(base64Encoded: data).flatMap({ String(data: $0, encoding: .utf8) }) else {
                throw KubernetesError(.configuration, "\(path): certificate-authority-data is not base64 PEM")
            }
            ca = decoded
        } else if let file = cluster["certificate-authority"] as? String {
            guard let read = try? String(contentsOfFile: relative(file), encoding: .utf8) else {
                throw KubernetesError(.configuration, "\(path): cannot read certificate-authority \(file)")
            }
            ca = read
        }
        let user = named("users", userName)?["user"] as? [String: Any] ?? [:]
        let token: Token
        if let value = user["token"] as? String {
            token = .value(value)
        } else if let file = user["tokenFile"] as? String {
            token = .file(relative(file))
        } else {
            throw KubernetesError(.configuration, "\(path): user \(userName) has no token or tokenFile (client certificates and exec plugins are not supported)")
        }
        return KubernetesEndpoint(server: server, certificateAuthorityPEM: ca, token: token, namespace: entry["namespace"] as? String)
    }
}
