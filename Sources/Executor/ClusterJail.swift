import Foundation
import Kubernetes
import Logging
import NIOCore
import Queue

/// The calls to the cluster a Job run needs (``KubernetesClient`` makes them).
public protocol AgentJobCluster: Sendable {
    func createJob(_ job: [String: Any], namespace: String) async throws -> (job: JobState, created: Bool)
    func job(_ name: String, namespace: String) async throws -> JobState?
    @discardableResult func deleteJob(_ name: String, namespace: String) async throws -> Bool
    func pods(ofJob name: String, namespace: String) async throws -> [PodState]
}

extension KubernetesClient: AgentJobCluster {}

/// What workers need to run agents with `runner: kubernetes`.
public struct AgentCluster: Sendable {
    public var jobs: any AgentJobCluster
    public var store: AgentJobStore
    /// The bot's address as the pods reach it.
    public var botURL: String
    /// The image of the pods' `fetch` and `report` containers.
    public var toolsImage: String
    public var pollInterval: Duration = .seconds(2)
    /// How long a pod may take to be scheduled and to start, on top of the agent's timeout.
    public var startAllowance: Duration = .seconds(600)

    public init(jobs: any AgentJobCluster, store: AgentJobStore, botURL: String, toolsImage: String) {
        self.jobs = jobs
        self.store = store
        self.botURL = botURL
        self.toolsImage = toolsImage
    }
}

/// Runs an agent's round as a Kubernetes Job (``AgentJob``) instead of in the local jail: the checkout goes to the
/// pod as a bundle of one commit, the pod's change comes back as a patch that must match the digest the pod
/// reported through the API server, and the patch is applied to the bot's own checkout (``GitWorkspace/applyPatch(at:)``),
/// after which the task goes on exactly as after a local run. No GitHub token, key or database URL is in the Job.
///
/// A worker that stops mid-run (shutdown, a crash) leaves the Job running: the worker that takes the task over
/// finds it open in `agent_jobs` for the same checkout and adopts it (a 409 on create) instead of starting another.
struct ClusterJail: Sendable {
    let cluster: AgentCluster
    let agent: AgentCommand
    let placement: KubernetesPlacement
    let workspace: GitWorkspace
    let taskID: Int64
    let logger: Logger

    /// Runs the agent with `prompt` for at most `timeout`; `observer` sees its output tail once the pod is done.
    ///
    /// - Throws: ``StepFailure`` naming what went wrong in the cluster (an image that cannot be pulled, a pod
    ///   out of memory, a patch that does not match its digest); ``CancelledOnRequest`` once the Job is deleted
    ///   for a cancellation.
    func run(prompt: String, environment: [String: String], timeout: Duration, cancelRequested: Flag,
             observer: OutputObserver?) async throws -> AgentRunResult {
        let started = ContinuousClock.now
        let job = try await prepare(prompt: prompt, environment: environment, timeout: timeout)
        var logger = logger
        logger[metadataKey: "k8s.job"] = "\(job.namespace)/\(job.name)"
        let end = try await follow(job, timeout: timeout, cancelRequested: cancelRequested, logger: logger)
        let result: AgentRunResult
        switch end {
        case .deadline:
            try? await cluster.store.finishJob(taskID: taskID, attempt: job.attempt)
            result = AgentRunResult(ending: .timedOut, output: "", errorOutput: "", truncated: false,
                                    duration: ContinuousClock.now - started, usage: nil)
        case .complete(let pod):
            let outcome: Result<AgentRunResult, any Error>
            do {
                outcome = .success(try await collect(job, pod: pod, started: started))
            } catch {
                outcome = .failure(error)
            }
            try? await cluster.store.finishJob(taskID: taskID, attempt: job.attempt)
            result = try outcome.get()
        }
        if let observer, !result.output.isEmpty {
            var output = result.output
            output.withUTF8 { observer(.stdout, UnsafeRawBufferPointer($0)) }
        }
        return result
    }

    // MARK: - Starting or adopting the Job

    /// Bundles the checkout, then adopts the task's open Job for the same checkout or starts a new one.
    private func prepare(prompt: String, environment: [String: String], timeout: Duration) async throws -> AgentJobStore.OpenJob {
        let bundlePath = workspace.root + "/agent.bundle"
        defer { try? FileManager.default.removeItem(atPath: bundlePath) }
        let snapshot: String
        do {
            snapshot = try await workspace.snapshotBundle(to: bundlePath)
        } catch {
            throw StepFailure(reason: "cannot bundle the checkout for the agent's pod: \(error)", retryable: true)
        }
        let store = cluster.store
        let job: AgentJobStore.OpenJob
        let open = try await store.openJob(taskID: taskID)
        if let open, open.snapshot == snapshot, open.namespace == placement.namespace {
            job = open
        } else {
            if let stale = open {
                // Started for another checkout (the base branch moved): it can only give a change that does not apply.
                _ = try? await cluster.jobs.deleteJob(stale.name, namespace: stale.namespace)
                try await store.finishJob(taskID: taskID, attempt: stale.attempt)
            }
            let id = taskID
            job = try await store.startJob(taskID: taskID, namespace: placement.namespace, snapshot: snapshot) {
                AgentJob.name(taskID: id, attempt: $0)
            }
        }
        let tokens = try await store.issueTokens(taskID: taskID, attempt: job.attempt,
                                                 lifetime: timeout + cluster.startAllowance + .seconds(600))
        guard let bundle = FileManager.default.contents(atPath: bundlePath) else {
            throw StepFailure(reason: "cannot read the checkout's bundle", retryable: true)
        }
        try await store.put(.bundle, ByteBuffer(bytes: bundle), taskID: taskID, attempt: job.attempt)
        try await store.put(.prompt, ByteBuffer(string: prompt), taskID: taskID, attempt: job.attempt)
        var manifest = AgentJob(
            taskID: taskID, attempt: job.attempt, namespace: placement.namespace, image: placement.image, command: agent.command,
            toolsImage: cluster.toolsImage, environment: environment, prompt: prompt, timeout: timeout, botURL: cluster.botURL,
            fetchToken: tokens.fetch, reportToken: tokens.report)
        if !agent.passEnvironment.isEmpty {
            manifest.secretName = placement.secretName
            manifest.secretKeys = agent.passEnvironment
        }
        manifest.requests = placement.requests
        manifest.limits = placement.limits
        manifest.serviceAccountName = placement.serviceAccountName
        manifest.nodeSelector = placement.nodeSelector
        manifest.tolerations = placement.tolerations
        do {
            let (_, created) = try await cluster.jobs.createJob(manifest.manifest, namespace: placement.namespace)
            logger.info(created ? "started the agent's Job" : "adopted the agent's Job a previous worker started",
                        metadata: ["k8s.job": "\(placement.namespace)/\(job.name)", "task.id": "\(taskID)"])
        } catch let error as KubernetesError {
            throw StepFailure(reason: "the cluster did not take the agent's Job: \(error.description)", retryable: error.isTransient)
        }
        return job
    }

    /// Returns the environment of the agent's container: the entry's variables and the task's, nothing of the
    /// worker's (its `PATH` and `HOME` are the image's; `passEnv` values come from the Secret, not from here).
    static func podEnvironment(agent: AgentCommand, task: [String: String]) -> [String: String] {
        var environment = agent.environment
        environment["LANG"] = environment["LANG"] ?? "C.UTF-8"
        environment.merge(task.filter { $0.key != "ASYNCCODE_PROMPT" }) { _, taskValue in taskValue }
        return environment
    }

    // MARK: - Following the Job

    enum End {
        case complete(PodState?)
        case deadline
    }

    /// Waiting reasons after which the pod will not start by itself.
    static let unstartable: Set<String> = [
        "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError",
    ]

    /// Watches the Job until it ends, deleting it on a cancellation or when its pod cannot start.
    private func follow(_ job: AgentJobStore.OpenJob, timeout: Duration, cancelRequested: Flag, logger: Logger) async throws -> End {
        let jobs = cluster.jobs
        let deadline = ContinuousClock.now + timeout + cluster.startAllowance
        while true {
            if cancelRequested.isSet {
                _ = try? await jobs.deleteJob(job.name, namespace: job.namespace)
                try? await cluster.store.finishJob(taskID: taskID, attempt: job.attempt)
                throw CancelledOnRequest()
            }
            // A worker stopping leaves the Job running for the worker that takes the task over.
            try Task.checkCancellation()
            let state: JobState?
            let pods: [PodState]
            do {
                state = try await jobs.job(job.name, namespace: job.namespace)
                pods = state == nil ? [] : try await jobs.pods(ofJob: job.name, namespace: job.namespace)
            } catch let error as KubernetesError {
                throw StepFailure(reason: "cannot read the agent's Job \(job.name): \(error.description)", retryable: error.isTransient)
            }
            guard let state else {
                try? await cluster.store.finishJob(taskID: taskID, attempt: job.attempt)
                throw StepFailure(reason: "the agent's Job \(job.name) was deleted before it ended", retryable: true)
            }
            let pod = pods.first
            if state.condition("Complete") != nil { return .complete(pod) }
            if let failed = state.condition("Failed") {
                if failed.reason == "DeadlineExceeded" { return .deadline }
                try? await cluster.store.finishJob(taskID: taskID, attempt: job.attempt)
                throw Self.failure(of: failed, pod: pod, agent: agent, placement: placement)
            }
            if let pod, let stuck = (pod.initContainers + pod.containers).first(where: { Self.unstartable.contains($0.waitingReason ?? "") }) {
                _ = try? await jobs.deleteJob(job.name, namespace: job.namespace)
                try? await cluster.store.finishJob(taskID: taskID, attempt: job.attempt)
                throw StepFailure(reason: Self.unstartableReason(stuck, placement: placement, toolsImage: cluster.toolsImage), retryable: false)
            }
            if ContinuousClock.now > deadline {
                _ = try? await jobs.deleteJob(job.name, namespace: job.namespace)
                return .deadline
            }
            try await Task.sleep(for: cluster.pollInterval)
        }
    }

    /// Names why a container will not start: its image, or (a configuration error) the Secret it is given.
    static func unstartableReason(_ container: PodState.Container, placement: KubernetesPlacement, toolsImage: String) -> String {
        let detail = container.waitingMessage.map { ": " + String($0.prefix(300)) } ?? ""
        let what = container.waitingReason ?? ""
        if what.hasPrefix("CreateContainer") {
            return "the agent's pod cannot start its `\(container.name)` container (\(what)\(detail)); its `passEnv` keys come from the Secret `\(placement.secretName)` in `\(placement.namespace)`"
        }
        let image = container.name == "agent" ? placement.image : toolsImage
        return "the agent's pod cannot pull the image `\(image)` of its `\(container.name)` container (\(what)\(detail))"
    }

    /// Names why a Job failed: the agent out of memory, the pod unable to fetch or to report, or the Job's reason.
    static func failure(of condition: JobState.Condition, pod: PodState?, agent: AgentCommand, placement: KubernetesPlacement) -> StepFailure {
        let containers = (pod?.initContainers ?? []) + (pod?.containers ?? [])
        if let killed = containers.first(where: { $0.terminatedReason == "OOMKilled" }) {
            let limit = placement.limits["memory"].map { " of \($0)" } ?? ""
            if killed.name == "agent" {
                return StepFailure(reason: "agent `\(agent.name)` ran out of memory in its pod (OOMKilled: over its memory limit\(limit))",
                                   retryable: false, agentsFault: true)
            }
            return StepFailure(reason: "the agent's pod ran out of memory in its `\(killed.name)` container (OOMKilled)", retryable: true)
        }
        if let fetch = containers.first(where: { $0.name == "fetch" && ($0.exitCode ?? 0) != 0 }) {
            return StepFailure(reason: "the agent's pod could not fetch the checkout from the bot (exit \(fetch.exitCode ?? -1))", retryable: true)
        }
        if let report = containers.first(where: { $0.name == "report" && ($0.exitCode ?? 0) != 0 }) {
            return StepFailure(reason: "the agent's pod could not upload its change to the bot (exit \(report.exitCode ?? -1))", retryable: true)
        }
        let message = condition.message.map { ": " + String($0.prefix(300)) } ?? ""
        return StepFailure(reason: "the agent's Job failed (\(condition.reason ?? "no reason given")\(message))", retryable: false)
    }

    // MARK: - Taking the result

    /// The digest the `report` container leaves as its termination message.
    struct Digest: Decodable, Hashable {
        var size: Int
        var sha256: String
        var exit: Int
    }

    /// Checks the uploaded patch against the pod's digest and applies it; returns the run's result.
    private func collect(_ job: AgentJobStore.OpenJob, pod: PodState?, started: ContinuousClock.Instant) async throws -> AgentRunResult {
        guard let message = pod?.containers.first(where: { $0.name == "report" })?.message,
              let digest = try? JSONDecoder().decode(Digest.self, from: Data(message.utf8)),
              digest.sha256.count == 64, digest.size >= 0 else {
            throw StepFailure(reason: "the agent's pod ended without the digest of its change; nothing was applied", retryable: false)
        }
        let store = cluster.store
        let output = try await store.file(.output, taskID: taskID, attempt: job.attempt)
            .map { String(decoding: $0.content.readableBytesView, as: UTF8.self) } ?? ""
        let usage = output.split(separator: "\n").reversed().lazy.compactMap { UsageLine.parse($0) }.first
        let result = AgentRunResult(ending: .exited(Int32(clamping: digest.exit)), output: output, errorOutput: "", truncated: false,
                                    duration: ContinuousClock.now - started, usage: usage)
        guard digest.exit == 0, digest.size > 0 else { return result }
        guard let patch = try await store.file(.patch, taskID: taskID, attempt: job.attempt),
              patch.content.readableBytes == digest.size, patch.sha256 == digest.sha256.lowercased() else {
            logger.warning("the uploaded change does not match the pod's digest", metadata: ["task.id": "\(taskID)", "k8s.job": "\(job.name)"])
            throw StepFailure(reason: "the change the agent's pod uploaded does not match the digest it reported (size and SHA-256): refused, nothing was applied",
                              retryable: false)
        }
        let path = workspace.root + "/agent.patch"
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard FileManager.default.createFile(atPath: path, contents: Data(patch.content.readableBytesView)) else {
            throw StepFailure(reason: "cannot write the agent's change to the workspace", retryable: true)
        }
        do {
            try await workspace.applyPatch(at: path)
        } catch {
            throw StepFailure(reason: "the agent's change does not apply to the checkout: \(error.message)", retryable: false, agentsFault: true)
        }
        return result
    }
}
