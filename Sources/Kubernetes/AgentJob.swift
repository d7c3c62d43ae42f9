import Foundation

/// The Job that runs one attempt of a task's agent in the cluster (`runner: kubernetes`).
///
/// Its pod, in order: init container `fetch` downloads the checkout from the bot as a `git bundle` (and the
/// prompt) with a token for this task and attempt only, keeping a pristine copy of the repository where the
/// agent cannot reach it; init container `agent` runs the configured image in the checkout with the prompt on
/// standard input, in `ASYNCCODE_PROMPT` and in a file, and the same environment allow-list as the local jail,
/// recording its exit status rather than failing the pod with it; container `report` uploads the change (the
/// working tree against the pristine base, `git diff --binary`) and the agent's output tail with an upload-only
/// token, and leaves a digest (size, SHA-256, exit status) as its termination message. Every container runs
/// as a non-root user with no capabilities and no privilege escalation; no service-account token is mounted.
public struct AgentJob: Sendable {
    public struct Toleration: Sendable, Hashable {
        public var key: String?
        public var `operator`: String?
        public var value: String?
        public var effect: String?

        public init(key: String? = nil, operator: String? = nil, value: String? = nil, effect: String? = nil) {
            self.key = key
            self.operator = `operator`
            self.value = value
            self.effect = effect
        }
    }

    public var taskID: Int64
    public var attempt: Int
    public var namespace: String
    /// The agent's image and command (the prompt arrives on standard input).
    public var image: String
    public var command: [String]
    /// The image of the `fetch` and `report` containers (sh, git and curl).
    public var toolsImage: String
    /// The agent's environment: the allow-list, as for the local jail (never a GitHub token or a database URL).
    public var environment: [String: String]
    /// Variables taken from a Kubernetes Secret the operator names (the agent's `passEnv`, such as an API key).
    public var secretName: String?
    public var secretKeys: [String] = []
    public var prompt: String
    public var timeout: Duration
    public var requests: [String: String] = [:]
    public var limits: [String: String] = [:]
    public var serviceAccountName: String?
    public var nodeSelector: [String: String] = [:]
    public var tolerations: [Toleration] = []
    /// Where the pod reaches the bot (`…/internal/agent-jobs/<task>/<attempt>`), and the two tokens.
    public var botURL: String
    public var fetchToken: String
    public var reportToken: String
    /// How long a finished Job stays for its logs before Kubernetes deletes it.
    public var ttlAfterFinished: Duration = .seconds(3600)

    public init(taskID: Int64, attempt: Int, namespace: String, image: String, command: [String], toolsImage: String,
                environment: [String: String], prompt: String, timeout: Duration, botURL: String,
                fetchToken: String, reportToken: String) {
        self.taskID = taskID
        self.attempt = attempt
        self.namespace = namespace
        self.image = image
        self.command = command
        self.toolsImage = toolsImage
        self.environment = environment
        self.prompt = prompt
        self.timeout = timeout
        self.botURL = botURL
        self.fetchToken = fetchToken
        self.reportToken = reportToken
    }

    /// The branch of the bundle the pod is given: the checkout as the agent starts on it.
    public static let bundleBranch = "asynccode-agent"

    /// `ac-<task>-<attempt>`: at most 63 characters for any task and attempt (a DNS label).
    public static func name(taskID: Int64, attempt: Int) -> String { "ac-\(taskID)-\(attempt)" }

    public var name: String { Self.name(taskID: taskID, attempt: attempt) }

    /// The Job as Kubernetes takes it (`batch/v1`).
    public var manifest: [String: Any] {
        let labels = ["app.kubernetes.io/name": "asynccode", "app.kubernetes.io/component": "agent",
                      "asynccode.dev/task": String(taskID), "asynccode.dev/attempt": String(attempt)]
        let base = "\(botURL.hasSuffix("/") ? String(botURL.dropLast()) : botURL)/internal/agent-jobs/\(taskID)/\(attempt)"
        let locked: [String: Any] = [
            "allowPrivilegeEscalation": false, "capabilities": ["drop": ["ALL"]], "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
        ]
        var agentEnvironment: [[String: Any]] = environment.sorted { $0.key < $1.key }.map { ["name": $0.key, "value": $0.value] }
        agentEnvironment.append(["name": "ASYNCCODE_PROMPT", "value": prompt])
        agentEnvironment.append(["name": "ASYNCCODE_PROMPT_FILE", "value": "/work/prompt"])
        agentEnvironment.append(["name": "HOME", "value": "/home/agent"])
        if let secretName {
            for key in secretKeys.sorted() {
                agentEnvironment.append(["name": key, "valueFrom": ["secretKeyRef": ["name": secretName, "key": key]]])
            }
        }
        var resources: [String: Any] = [:]
        if !requests.isEmpty { resources["requests"] = requests }
        if !limits.isEmpty { resources["limits"] = limits }
        let fetch: [String: Any] = [
            "name": "fetch", "image": toolsImage, "command": ["sh", "-c", Self.fetchScript],
            "env": [["name": "ASYNCCODE_JOB_URL", "value": base], ["name": "ASYNCCODE_FETCH_TOKEN", "value": fetchToken]],
            "volumeMounts": [["name": "work", "mountPath": "/work"], ["name": "base", "mountPath": "/base"]],
            "securityContext": locked,
        ]
        var agent: [String: Any] = [
            "name": "agent", "image": image, "command": ["sh", "-c", Self.agentScript, "agent"] + command,
            "workingDir": "/work/checkout", "env": agentEnvironment,
            "volumeMounts": [["name": "work", "mountPath": "/work"], ["name": "home", "mountPath": "/home/agent"],
                             ["name": "tmp", "mountPath": "/tmp"]],
            "securityContext": locked,
        ]
        if !resources.isEmpty { agent["resources"] = resources }
        let report: [String: Any] = [
            "name": "report", "image": toolsImage, "command": ["sh", "-c", Self.reportScript],
            "env": [["name": "ASYNCCODE_JOB_URL", "value": base], ["name": "ASYNCCODE_REPORT_TOKEN", "value": reportToken]],
            // A scratch folder of its own: the agent wrote in `tmp` (a link planted there must lead nowhere).
            "volumeMounts": [["name": "work", "mountPath": "/work"], ["name": "base", "mountPath": "/base"],
                             ["name": "scratch", "mountPath": "/tmp"]],
            "securityContext": locked, "terminationMessagePolicy": "File",
        ]
        var pod: [String: Any] = [
            "restartPolicy": "Never", "automountServiceAccountToken": false, "enableServiceLinks": false,
            "securityContext": ["runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
                                "seccompProfile": ["type": "RuntimeDefault"]],
            "initContainers": [fetch, agent], "containers": [report],
            "volumes": ["work", "base", "home", "tmp", "scratch"].map { ["name": $0, "emptyDir": [String: Any]()] },
        ]
        if let serviceAccountName { pod["serviceAccountName"] = serviceAccountName }
        if !nodeSelector.isEmpty { pod["nodeSelector"] = nodeSelector }
        if !tolerations.isEmpty {
            pod["tolerations"] = tolerations.map { toleration -> [String: Any] in
                var entry: [String: Any] = [:]
                if let key = toleration.key { entry["key"] = key }
                if let value = toleration.operator { entry["operator"] = value }
                if let value = toleration.value { entry["value"] = value }
                if let value = toleration.effect { entry["effect"] = value }
                return entry
            }
        }
        return [
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": ["name": name, "namespace": namespace, "labels": labels],
            "spec": [
                "backoffLimit": 0,
                "activeDeadlineSeconds": max(1, timeout.components.seconds),
                "ttlSecondsAfterFinished": max(0, ttlAfterFinished.components.seconds),
                "template": ["metadata": ["labels": labels], "spec": pod],
            ] as [String: Any],
        ]
    }

    /// Downloads the bundle and the prompt; the checkout for the agent, a pristine repository for `report`.
    static let fetchScript = """
        set -eu
        curl -fsS --max-time 300 -H "Authorization: Bearer $ASYNCCODE_FETCH_TOKEN" -o /base/checkout.bundle "$ASYNCCODE_JOB_URL/bundle"
        curl -fsS --max-time 60 -H "Authorization: Bearer $ASYNCCODE_FETCH_TOKEN" -o /work/prompt "$ASYNCCODE_JOB_URL/prompt"
        git clone -q --bare --branch asynccode-agent /base/checkout.bundle /base/repo.git
        git clone -q --branch asynccode-agent /base/checkout.bundle /work/checkout
        rm -f /base/checkout.bundle
        """

    /// Runs the agent (its arguments follow) with the prompt on standard input; its exit status goes to a file so
    /// that `report` still runs.
    static let agentScript = """
        "$@" < /work/prompt > /work/agent.out 2>&1; echo $? > /work/agent.exit; exit 0
        """

    /// Uploads the change against the pristine base (the agent's `.git` is never read) and the output tail.
    static let reportScript = """
        set -eu
        export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
        git="git --git-dir=/base/repo.git --work-tree=/work/checkout -c core.hooksPath=/dev/null -c core.fsmonitor="
        $git add -A
        $git diff --cached --binary HEAD > /tmp/change.patch
        tail -c 65536 /work/agent.out > /tmp/output.tail 2>/dev/null || : > /tmp/output.tail
        exit_status=$(head -c 12 /work/agent.exit 2>/dev/null | tr -cd '0-9')
        [ -n "$exit_status" ] || exit_status=-1
        curl -fsS --max-time 300 -X PUT -H "Authorization: Bearer $ASYNCCODE_REPORT_TOKEN" --data-binary @/tmp/change.patch "$ASYNCCODE_JOB_URL/patch"
        curl -fsS --max-time 60 -X PUT -H "Authorization: Bearer $ASYNCCODE_REPORT_TOKEN" --data-binary @/tmp/output.tail "$ASYNCCODE_JOB_URL/output"
        printf '{"size":%s,"sha256":"%s","exit":%s}' "$(wc -c < /tmp/change.patch | tr -d ' ')" \\
          "$(sha256sum /tmp/change.patch | cut -d ' ' -f 1)" "$exit_status" > /dev/termination-log
        """
}
