import Foundation
import Synchronization
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif
#if canImport(Glibc)
import Glibc
#endif

/// How an agent is isolated (`sandbox:` in the agents configuration).
public enum SandboxMode: String, Sendable, Hashable, Decodable {
    /// A bubblewrap jail: read-only system, the workspace, nothing of the bot's.
    case bwrap
    /// No jail, only the scrubbed environment and limits. Must be chosen explicitly.
    case none
}

/// Whether a jailed agent may use the network (`network:`).
public enum NetworkMode: String, Sendable, Hashable, Decodable {
    case full
    case none
}

/// Resource limits applied to an agent's processes with `prlimit`.
public struct ResourceLimits: Sendable, Hashable {
    /// `RLIMIT_AS` in bytes; unset by default (JavaScript CLIs reserve large address ranges).
    public var memoryBytes: Int?
    /// `RLIMIT_NPROC`: processes (and threads) of the agent's user.
    public var processes: Int?
    /// `RLIMIT_FSIZE` in bytes: the largest file the agent may write.
    public var fileSizeBytes: Int?

    public init(memoryBytes: Int? = nil, processes: Int? = 1024, fileSizeBytes: Int? = 2 << 30) {
        self.memoryBytes = memoryBytes
        self.processes = processes
        self.fileSizeBytes = fileSizeBytes
    }
}

/// Builds the command line that runs an agent in its jail, and checks that the jail works on this machine.
///
/// Inside, the agent sees: `/usr` (and the `/bin`, `/lib`… links) read-only; the few `/etc` files a command
/// line program needs (resolver, hosts, CA certificates, passwd and group, alternatives); its checkout
/// read-write at `/workspace`; its own `HOME` at `/home/agent`; a private `/tmp`, `/dev` and `/proc`; the
/// paths its `binds:` name, read-only. Fresh PID, IPC, UTS and cgroup namespaces (and network with
/// `network: none`), a new session, and it dies with its worker. Nothing else of the host: not the bot's
/// folder, `.env`, key, configuration, the database socket, other workspaces, or the host's `/tmp`.
/// When the bot runs as root, the agent runs as a user of its task's own (``AgentUser/forTask(_:accountFiles:)``),
/// so that the process limit holds and is the task's alone.
public enum Sandbox {
    public static let workspacePath = "/workspace"
    public static let homePath = "/home/agent"
    public static var bwrapPath: String { ProcessInfo.processInfo.environment["ASYNCCODE_BWRAP"] ?? "/usr/bin/bwrap" }
    /// The user a root bot's agents run as.
    public static let unprivilegedID: UInt32 = 65534

    /// Returns whether the bot runs as root (then agents are dropped to ``unprivilegedID``).
    public static var runsAsRoot: Bool { geteuid() == 0 }

    static let etcFiles = [
        "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/localtime",
        "/etc/ssl", "/etc/ca-certificates", "/etc/ca-certificates.conf", "/etc/alternatives", "/etc/ld.so.cache",
        "/etc/mime.types", "/etc/services", "/etc/protocols",
    ]

    /// Returns the arguments that run `command` jailed (or, with `none`, only limited).
    public static func command(
        for agent: AgentCommand, checkout: String, home: String, user: AgentUser = .nobody
    ) -> [String] {
        let limited = limitPrefix(agent.limits) + agent.command
        guard agent.sandbox == .bwrap else { return limited }
        var arguments = [bwrapPath, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
                         "--unshare-uts", "--unshare-cgroup-try", "--hostname", "asynccode-agent"]
        if agent.network == .none { arguments.append("--unshare-net") }
        arguments += ["--ro-bind", "/usr", "/usr"]
        for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: top) {
                arguments += ["--symlink", target, top]
            } else if FileManager.default.fileExists(atPath: top) {
                arguments += ["--ro-bind", top, top]
            }
        }
        // bwrap would make /etc on the way, private (0700): the agent's user could then read none of it (no
        // resolver, no CA certificates, no passwd).
        arguments += ["--perms", "0755", "--dir", "/etc"]
        for path in etcFiles {
            // The task's own user is named in its own copies of passwd and group.
            if runsAsRoot, let folder = user.accountFiles, path == "/etc/passwd" || path == "/etc/group" {
                arguments += ["--ro-bind", folder + "/" + (path == "/etc/passwd" ? "passwd" : "group"), path]
            } else {
                arguments += ["--ro-bind-try", path, path]
            }
        }
        arguments += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp",
                      "--dir", "/home", "--bind", home, homePath, "--bind", checkout, workspacePath]
        for bind in agent.binds {
            // Folders bwrap makes on the way are private (0700) by default: make them traversable.
            var ancestor = ""
            for part in bind.split(separator: "/").dropLast() {
                ancestor += "/" + part
                arguments += ["--perms", "0755", "--dir", ancestor]
            }
            arguments += ["--ro-bind", bind, bind]
        }
        arguments += ["--chdir", workspacePath]
        if runsAsRoot {
            // Drop to an unprivileged user inside the jail: root is exempt from RLIMIT_NPROC, which counts
            // every process of the user, so each task has a user of its own.
            arguments += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
                          "/usr/bin/setpriv", "--reuid=\(user.id)", "--regid=\(user.id)", "--clear-groups",
                          "--inh-caps=-all", "--"]
        } else {
            arguments.append("--")
        }
        return arguments + limited
    }

    /// `prlimit` with the agent's limits, or nothing when it has none.
    static func limitPrefix(_ limits: ResourceLimits) -> [String] {
        var options: [String] = []
        if let memory = limits.memoryBytes { options.append("--as=\(memory)") }
        if let processes = limits.processes { options.append("--nproc=\(processes)") }
        if let size = limits.fileSizeBytes { options.append("--fsize=\(size)") }
        return options.isEmpty ? [] : ["/usr/bin/prlimit"] + options + ["--"]
    }

    /// Returns why the bubblewrap jail cannot run here, or `nil` when a trial run inside it works.
    ///
    /// The trial runs through swift-subprocess and is awaited, never waited for on a thread: Foundation's
    /// `Process.waitUntilExit()` spins a run loop that can miss the child's exit under load, parking a
    /// thread of the concurrency pool for good (two such threads stop everything on a 2-core machine).
    /// ``problem(timeout:)``, found out once per process.
    public static func cachedProblem() async -> String? {
        if let known = probed.withLock({ $0 }) { return known }
        let found = await problem()
        probed.withLock { $0 = .some(found) }
        return found
    }

    private static let probed = Mutex<String??>(nil)

    public static func problem(timeout: Duration = .seconds(20)) async -> String? {
        guard FileManager.default.isExecutableFile(atPath: bwrapPath) else {
            return "\(bwrapPath) is missing (install the Debian package bubblewrap)"
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("asynccode-probe-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: folder + "/home", withIntermediateDirectories: true)
        try? FileManager.default.createDirectory(atPath: folder + "/repo", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var probe = AgentCommand(name: "probe", command: ["/usr/bin/true"])
        probe.sandbox = .bwrap
        if runsAsRoot { _ = ["/home", "/repo"].map { chown(folder + $0, unprivilegedID, unprivilegedID) } }
        let arguments = command(for: probe, checkout: folder + "/repo", home: folder + "/home")
        var options = PlatformOptions()
        options.createSession = true
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .seconds(1))]
        let configuration = Configuration(
            executable: .path(FilePath(arguments[0])), arguments: Arguments(Array(arguments.dropFirst())),
            platformOptions: options)
        enum Outcome: Sendable { case finished(TerminationStatus, String), timedOut, failed }
        let outcome = await withTaskGroup(of: Outcome.self) { group in
            group.addTask {
                do {
                    let result = try await Subprocess.run(configuration, output: .discarded, error: .string(limit: 64 * 1024))
                    return .finished(result.terminationStatus, result.standardError)
                } catch {
                    return .failed
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return .timedOut
            }
            defer { group.cancelAll() }
            return await group.next() ?? .failed
        }
        switch outcome {
        case .failed:
            return "\(bwrapPath) cannot be started"
        case .timedOut:
            return "a trial run in a bubblewrap jail did not end within \(timeout.components.seconds) s"
        case .finished(.exited(0), _):
            return nil
        case .finished(let status, let message):
            let line = message.split(separator: "\n").first.map(String.init) ?? "\(status)"
            return "bubblewrap cannot make a jail here: \(line)"
        }
    }

    /// Gives `path` and everything under it to `uid`:`gid` (the agent's user before a run, the bot's after),
    /// links as links (``FileTree``: nothing a link points at is touched). Walks the tree on the blocking
    /// thread pool, away from the event loops; returns whether the whole tree was walked.
    @discardableResult
    public static func chownTree(_ path: String, uid: UInt32, gid: UInt32) async -> Bool {
        await BlockingPool.run {
            (try? FileTree.chown(path, uid: uid, gid: gid)) != nil
        }
    }
}

/// The user an agent runs as when the bot runs as root.
///
/// Each task gets its own: `RLIMIT_NPROC` counts every process of a user, so agents sharing one (`nobody`)
/// would share one budget, and a fork bomb in one task's jail could leave every other agent on the machine
/// unable to start a process.
public struct AgentUser: Sendable, Hashable {
    /// The user and group id.
    public var id: UInt32
    /// A folder with `passwd` and `group` files that name the user, bound over the host's in the jail
    /// (tools such as Node's `os.userInfo()` fail for a user without an entry); `nil` binds the host's.
    public var accountFiles: String?

    public init(id: UInt32, accountFiles: String? = nil) {
        self.id = id
        self.accountFiles = accountFiles
    }

    /// `nobody`, for the trial jail.
    public static let nobody = AgentUser(id: Sandbox.unprivilegedID)

    /// The first id of the range task users take (far above login users, system users and the usual
    /// subordinate id ranges of containers); the range ends below 2^31 for tools that read ids as signed.
    public static let firstID: UInt32 = 1_000_000_000

    /// Returns the user of task `taskID`: unique among tasks running at once (ids a billion apart repeat).
    public static func forTask(_ taskID: Int64, accountFiles: String? = nil) -> AgentUser {
        AgentUser(id: firstID + UInt32(UInt64(bitPattern: taskID) % 1_000_000_000), accountFiles: accountFiles)
    }

    /// The name the user has in the jail.
    public static let name = "asynccode-agent"

    /// Writes `passwd` and `group` into `folder`: the host's entries, without any of this id, and one for
    /// this user (home `/home/agent`).
    public func writeAccountFiles(into folder: String) throws {
        func entries(_ path: String) -> String {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            // Drops the host's own entry for this id or name, should it have one.
            return text.split(separator: "\n", omittingEmptySubsequences: true).filter { line in
                let fields = line.split(separator: ":", omittingEmptySubsequences: false)
                return fields.count > 2 && fields[0] != Self.name && fields[2] != "\(id)"
            }.map { $0 + "\n" }.joined()
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let passwd = entries("/etc/passwd") + "\(Self.name):x:\(id):\(id):asynccode agent:\(Sandbox.homePath):/bin/sh\n"
        let group = entries("/etc/group") + "\(Self.name):x:\(id):\n"
        try passwd.write(toFile: folder + "/passwd", atomically: true, encoding: .utf8)
        try group.write(toFile: folder + "/group", atomically: true, encoding: .utf8)
        for file in ["passwd", "group"] { chmod(folder + "/" + file, 0o644) }
    }
}
