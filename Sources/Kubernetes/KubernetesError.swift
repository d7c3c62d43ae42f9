/// A Kubernetes API call that failed. The description names the call and what the API server said; it never
/// holds the token.
public struct KubernetesError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// The settings (in-cluster files, kubeconfig) are missing or unreadable.
        case configuration
        /// No answer: the connection failed or timed out.
        case unreachable
        /// 401 or 403: the token is not (or no longer) accepted, or may not do this.
        case refused
        case notFound
        /// 409: the object exists already.
        case conflict
        /// 422 or 400: the object was refused as invalid.
        case invalid
        /// 5xx, or another status.
        case server
    }

    public var code: Code
    public var status: Int?
    public var description: String

    public init(_ code: Code, status: Int? = nil, _ description: String) {
        self.code = code
        self.status = status
        self.description = description
    }

    /// Whether trying again later may succeed.
    public var isTransient: Bool { code == .unreachable || code == .server }
}
