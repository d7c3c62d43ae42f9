/// What the bot reads of a Job: its counts and conditions.
public struct JobState: Sendable, Hashable {
    public struct Condition: Sendable, Hashable {
        public var type: String
        public var status: String
        public var reason: String?
        public var message: String?
    }

    public var name: String
    public var uid: String?
    public var resourceVersion: String?
    public var active: Int
    public var succeeded: Int
    public var failed: Int
    public var conditions: [Condition]

    init(_ object: [String: Any]) {
        let metadata = object["metadata"] as? [String: Any] ?? [:]
        let status = object["status"] as? [String: Any] ?? [:]
        name = metadata["name"] as? String ?? ""
        uid = metadata["uid"] as? String
        resourceVersion = metadata["resourceVersion"] as? String
        active = status["active"] as? Int ?? 0
        succeeded = status["succeeded"] as? Int ?? 0
        failed = status["failed"] as? Int ?? 0
        conditions = (status["conditions"] as? [[String: Any]] ?? []).map {
            Condition(type: $0["type"] as? String ?? "", status: $0["status"] as? String ?? "",
                      reason: $0["reason"] as? String, message: $0["message"] as? String)
        }
    }

    /// The condition of `type` when its status is `True`.
    public func condition(_ type: String) -> Condition? { conditions.first { $0.type == type && $0.status == "True" } }
}

/// What the bot reads of a pod: its phase and how each container ended or why it waits.
public struct PodState: Sendable, Hashable {
    public struct Container: Sendable, Hashable {
        public var name: String
        public var exitCode: Int?
        /// `OOMKilled`, `Error`, `Completed`… once terminated.
        public var terminatedReason: String?
        /// The termination message (the report container's digest).
        public var message: String?
        /// `ImagePullBackOff`, `ErrImagePull`… while waiting.
        public var waitingReason: String?
        /// What the kubelet says of the wait (which image, which Secret).
        public var waitingMessage: String?
    }

    public var name: String
    public var phase: String
    public var initContainers: [Container]
    public var containers: [Container]

    init(_ object: [String: Any]) {
        let metadata = object["metadata"] as? [String: Any] ?? [:]
        let status = object["status"] as? [String: Any] ?? [:]
        name = metadata["name"] as? String ?? ""
        phase = status["phase"] as? String ?? "Unknown"
        func containers(_ key: String) -> [Container] {
            (status[key] as? [[String: Any]] ?? []).map { entry in
                let state = entry["state"] as? [String: Any] ?? [:]
                let terminated = state["terminated"] as? [String: Any]
                let waiting = state["waiting"] as? [String: Any]
                return Container(name: entry["name"] as? String ?? "", exitCode: terminated?["exitCode"] as? Int,
                                 terminatedReason: terminated?["reason"] as? String, message: terminated?["message"] as? String,
                                 waitingReason: waiting?["reason"] as? String, waitingMessage: waiting?["message"] as? String)
            }
        }
        initContainers = containers("initContainerStatuses")
        self.containers = containers("containerStatuses")
    }
}
