import Foundation
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// What the stand-in's kubelet needs to run pods as local processes.
struct PodRunning: Sendable {
    /// Host folders shown read-only in every container (where the tests' agent programs are: they stand for images).
    var hostPaths: [String]
    /// Secrets by `namespace/name`, for `secretKeyRef`.
    var secrets: [String: [String: String]]
    /// Where volumes and container logs go.
    var directory: String
}

/// A Job whose pod is to run.
struct PodLaunch: Sendable {
    var key: String
    var job: Data
}

/// The stand-in's kubelet: runs a Job's pod as the kubelet and the Job controller would, as local processes in
/// bubblewrap (each container in its own PID namespace, the pod's `emptyDir` volumes at their mount paths, a
/// read-only root of the host's `/usr` and `/etc`, the pod's environment only, the termination log kept), init
/// containers in order and then the main one, and sets the pod's and the Job's status as it goes:
/// `Complete`, or `Failed` with `BackoffLimitExceeded` or `DeadlineExceeded` (`activeDeadlineSeconds`), a
/// container `OOMKilled` (``KubernetesSimulator/oomKill(image:)``), or an image that cannot be pulled
/// (``KubernetesSimulator/failPulls(of:)``). Containers run as the tests' user, not as `runAsUser`.
extension KubernetesSimulator {
    /// Runs each Job's pod from now on; `hostPaths` are visible read-only in every container.
    public func runPods(hostPaths: [String], secrets: [String: [String: String]] = [:]) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("k8s-pods-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        state.withLock { $0.podRunning = PodRunning(hostPaths: hostPaths, secrets: secrets, directory: directory) }
    }

    /// A container of `image` is killed as out of memory once it has started, in every pod from now on.
    public func oomKill(image: String) { state.withLock { _ = $0.oomContainers.insert(image) } }

    /// Pulling `image` fails: the container waits in `ImagePullBackOff`.
    public func failPulls(of image: String) { state.withLock { _ = $0.pullErrors.insert(image) } }

    /// The Jobs (`namespace/name`) whose pods were started, in order.
    public var startedPods: [String] { state.withLock { $0.started } }

    /// What a container of the Job's pod printed (for failure messages).
    public func log(job key: String, container: String) -> String {
        guard let directory = state.withLock({ $0.podRunning?.directory }) else { return "" }
        return (try? String(contentsOfFile: "\(directory)/\(key.replacingOccurrences(of: "/", with: "_"))/\(container).log",
                            encoding: .utf8)) ?? ""
    }

    func stopPods() {
        if let directory = state.withLock({ $0.podRunning?.directory }) { try? FileManager.default.removeItem(atPath: directory) }
    }

    // MARK: - Running a pod

    private enum Ending: Sendable {
        case exited(Int32)
        case deadline
        case oomKilled
        case deleted
    }

    func run(_ launch: PodLaunch) async {
        guard let running = state.withLock({ $0.podRunning }),
              let job = try? JSONSerialization.jsonObject(with: launch.job) as? [String: Any],
              let spec = job["spec"] as? [String: Any], let template = spec["template"] as? [String: Any],
              let pod = template["spec"] as? [String: Any] else { return }
        let namespace = String(launch.key.split(separator: "/").first ?? "")
        let folder = "\(running.directory)/\(launch.key.replacingOccurrences(of: "/", with: "_"))"
        let volumes = (pod["volumes"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        for volume in volumes {
            try? FileManager.default.createDirectory(atPath: "\(folder)/volumes/\(volume)", withIntermediateDirectories: true)
        }
        let started = Date()
        let deadline = (spec["activeDeadlineSeconds"] as? Int).map { started.addingTimeInterval(TimeInterval($0)) }
        let initContainers = pod["initContainers"] as? [[String: Any]] ?? []
        let containers = pod["containers"] as? [[String: Any]] ?? []
        var statuses: [String: [String: Any]] = [:]
        func publish(phase: String, job jobStatus: [String: Any]) {
            let entry = { (container: [String: Any]) -> [String: Any] in
                let name = container["name"] as? String ?? ""
                return ["name": name, "image": container["image"] as? String ?? "", "imageID": "", "ready": false, "restartCount": 0,
                        "state": statuses[name] ?? ["waiting": ["reason": "PodInitializing"]]]
            }
            let podStatus: [String: Any] = ["phase": phase, "initContainerStatuses": initContainers.map(entry),
                                            "containerStatuses": containers.map(entry)]
            setStatus(job: String(launch.key.split(separator: "/").last ?? ""), namespace: namespace, jobStatus: jobStatus, podStatus: podStatus)
        }
        let startTime = ISO8601DateFormatter().string(from: started)
        publish(phase: "Pending", job: ["active": 1, "startTime": startTime])
        for container in initContainers + containers {
            let name = container["name"] as? String ?? ""
            let image = container["image"] as? String ?? ""
            if state.withLock({ $0.pullErrors.contains(image) }) {
                statuses[name] = ["waiting": ["reason": "ImagePullBackOff", "message": "Back-off pulling image \"\(image)\""]]
                publish(phase: "Pending", job: ["active": 1, "startTime": startTime])
                return
            }
            guard let environment = environment(of: container, namespace: namespace, secrets: running.secrets) else {
                statuses[name] = ["waiting": ["reason": "CreateContainerConfigError", "message": "secret not found"]]
                publish(phase: "Pending", job: ["active": 1, "startTime": startTime])
                return
            }
            statuses[name] = ["running": ["startedAt": ISO8601DateFormatter().string(from: Date())]]
            publish(phase: initContainers.contains { $0["name"] as? String == name } ? "Pending" : "Running",
                    job: ["active": 1, "startTime": startTime])
            let termination = "\(folder)/\(name).termination-log"
            _ = FileManager.default.createFile(atPath: termination, contents: nil)
            let arguments = bwrapArguments(container, folder: folder, hostPaths: running.hostPaths, environment: environment,
                                           termination: termination)
            let ending = await runProcess(arguments, log: "\(folder)/\(name).log", deadline: deadline, key: launch.key,
                                          oom: state.withLock { $0.oomContainers.contains(image) })
            let message = (try? String(contentsOfFile: termination, encoding: .utf8)).map { String($0.prefix(4096)) } ?? ""
            var terminated: [String: Any] = ["startedAt": startTime, "finishedAt": ISO8601DateFormatter().string(from: Date())]
            switch ending {
            case .deleted:
                return
            case .exited(let code):
                terminated["exitCode"] = Int(code)
                terminated["reason"] = code == 0 ? "Completed" : "Error"
            case .oomKilled:
                terminated["exitCode"] = 137
                terminated["reason"] = "OOMKilled"
            case .deadline:
                terminated["exitCode"] = 137
                terminated["reason"] = "Error"
            }
            if !message.isEmpty { terminated["message"] = message }
            statuses[name] = ["terminated": terminated]
            let finished = ISO8601DateFormatter().string(from: Date())
            if case .deadline = ending {
                publish(phase: "Failed", job: ["failed": 1, "startTime": startTime, "conditions": [
                    ["type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline",
                     "lastTransitionTime": finished],
                ]])
                return
            }
            if terminated["exitCode"] as? Int != 0 {
                publish(phase: "Failed", job: ["failed": 1, "startTime": startTime, "conditions": [
                    ["type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit",
                     "lastTransitionTime": finished],
                ]])
                return
            }
        }
        let finished = ISO8601DateFormatter().string(from: Date())
        publish(phase: "Succeeded", job: ["succeeded": 1, "startTime": startTime, "completionTime": finished, "conditions": [
            ["type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": finished],
            ["type": "Complete", "status": "True", "lastTransitionTime": finished],
        ]])
    }

    /// The container's environment, its `secretKeyRef`s resolved; `nil` when a Secret or key is missing.
    private func environment(of container: [String: Any], namespace: String, secrets: [String: [String: String]]) -> [String: String]? {
        var environment = ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/"]
        for variable in container["env"] as? [[String: Any]] ?? [] {
            guard let name = variable["name"] as? String else { continue }
            if let value = variable["value"] as? String {
                environment[name] = value
            } else if let reference = (variable["valueFrom"] as? [String: Any])?["secretKeyRef"] as? [String: Any] {
                guard let secret = reference["name"] as? String, let key = reference["key"] as? String,
                      let value = secrets["\(namespace)/\(secret)"]?[key] else { return nil }
                environment[name] = value
            }
        }
        return environment
    }

    private func bwrapArguments(_ container: [String: Any], folder: String, hostPaths: [String], environment: [String: String],
                                termination: String) -> [String] {
        var arguments = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                         "--ro-bind", "/usr", "/usr"]
        for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: top) {
                arguments += ["--symlink", target, top]
            } else if FileManager.default.fileExists(atPath: top) {
                arguments += ["--ro-bind", top, top]
            }
        }
        arguments += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev", "--bind", termination, "/dev/termination-log"]
        for mount in container["volumeMounts"] as? [[String: Any]] ?? [] {
            guard let name = mount["name"] as? String, let path = mount["mountPath"] as? String else { continue }
            arguments += ["--bind", "\(folder)/volumes/\(name)", path]
        }
        // After the volumes: a test's folder may be under one of their mount paths (`/tmp`).
        for path in hostPaths { arguments += ["--ro-bind", path, path] }
        if container["securityContext"].flatMap({ ($0 as? [String: Any])?["readOnlyRootFilesystem"] as? Bool }) == true {
            arguments += ["--remount-ro", "/"]
        }
        arguments += ["--clearenv"]
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) { arguments += ["--setenv", name, value] }
        if let directory = container["workingDir"] as? String { arguments += ["--chdir", directory] }
        return arguments + ["--"] + (container["command"] as? [String] ?? []) + (container["args"] as? [String] ?? [])
    }

    /// Runs one container's process until it exits, its pod's deadline passes, it is "killed out of memory", or its
    /// Job is deleted.
    private func runProcess(_ arguments: [String], log: String, deadline: Date?, key: String, oom: Bool) async -> Ending {
        guard let output = try? FileDescriptor.open(FilePath(log), .writeOnly, options: [.create, .append], permissions: .ownerReadWrite),
              let errors = try? output.duplicate() else { return .exited(127) }
        var options = PlatformOptions()
        options.createSession = true
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .seconds(1))]
        let configuration = Configuration(executable: .name(arguments[0]), arguments: Arguments(Array(arguments.dropFirst())),
                                          environment: .custom([:]), platformOptions: options)
        return await withTaskGroup(of: Ending?.self) { group in
            group.addTask {
                do {
                    let result = try await Subprocess.run(configuration, output: .fileDescriptor(output, closeAfterSpawningProcess: true),
                                                          error: .fileDescriptor(errors, closeAfterSpawningProcess: true))
                    switch result.terminationStatus {
                    case .exited(let code): return .exited(code)
                    case .signaled(let signal): return .exited(128 + signal)
                    }
                } catch {
                    return Task.isCancelled ? nil : .exited(127)
                }
            }
            group.addTask {
                // The process is not watched for its memory: the fault stands for the kernel's OOM killer, which
                // kills it whatever it was about to do.
                if oom { return .oomKilled }
                while !Task.isCancelled {
                    if let deadline, Date() >= deadline { return .deadline }
                    if self.state.withLock({ $0.deleted.contains(key) }) { return .deleted }
                    try? await Task.sleep(for: .milliseconds(50))
                }
                return nil
            }
            defer { group.cancelAll() }
            while let next = await group.next() {
                if oom { return .oomKilled }
                if let next { return next }
            }
            return .deleted
        }
    }
}
