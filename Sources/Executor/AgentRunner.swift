import Accounting
import Foundation
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// One agent from the configuration: the command that runs it and what it may see.
public struct AgentCommand: Sendable, Hashable {
    public var name: String
    /// The program and its arguments; the prompt arrives on standard input and in `ASYNCCODE_PROMPT`.
    public var command: [String]
    public var timeout: Duration
    /// Variables set for the agent, as given.
    public var environment: [String: String]
    /// Names of the bot's own variables passed through to the agent (an API key, say).
    public var passEnvironment: [String]
    /// The jail the executor runs it in (default bubblewrap).
    public var sandbox: SandboxMode = .bwrap
    /// Whether the jailed agent may reach the network.
    public var network: NetworkMode = .full
    /// Host paths bound read-only into the jail (where the agent's program is installed).
    public var binds: [String] = []
    /// Memory, process and file-size limits.
    public var limits = ResourceLimits()
    /// The name shown to users (`displayName`, default the name).
    public var displayName: String
    /// Who makes the model (`provider`, default `custom`).
    public var provider = "custom"
    /// One line saying what it is good at (`description`).
    public var summary: String?
    /// What a run costs in credits.
    public var pricing = Pricing()
    /// Where it runs: in the local jail (the default) or as a Kubernetes Job (`runner: kubernetes`).
    public var runner: AgentPlacement = .local

    public init(name: String, command: [String], timeout: Duration = .seconds(1800),
                environment: [String: String] = [:], passEnvironment: [String] = []) {
        self.name = name
        self.command = command
        self.timeout = timeout
        self.environment = environment
        self.passEnvironment = passEnvironment
        self.displayName = name
    }
}

/// How an agent run ended, with the tails of what it printed.
public struct AgentRunResult: Sendable {
    public enum Ending: Sendable, Hashable {
        case exited(Int32)
        case signalled(Int32)
        /// It ran past its timeout and was stopped (SIGTERM to its process group, SIGKILL after the grace).
        case timedOut
        /// The task was cancelled and the agent stopped the same way.
        case cancelled
        /// Its reported usage passed the task's token limit (`--budget`) and it was stopped the same way.
        case overBudget
    }

    public var ending: Ending
    /// The last bytes of standard output (the agent's summary).
    public var output: String
    /// The last bytes of standard error.
    public var errorOutput: String
    /// Whether either stream printed more than was kept.
    public var truncated: Bool
    public var duration: Duration
    /// The last usage the agent reported (``UsageLine``), if any.
    public var usage: TokenUsage?

    public var succeeded: Bool { ending == .exited(0) }
}

/// Which of a program's output streams a chunk came from.
public enum StandardStream: String, Sendable, Hashable {
    case stdout, stderr
}

/// Watches a program's output as it streams: called with each chunk as it is read, on the reading task, so it
/// must return at once (buffer and signal; never wait on I/O or the database). The bytes are only valid
/// during the call.
public typealias OutputObserver = @Sendable (StandardStream, UnsafeRawBufferPointer) -> Void

/// Runs an agent in its own session and process group, with an environment built from an allow-list.
///
/// The agent never inherits the bot's environment: it gets `PATH`, `LANG`, a `HOME` of the task's own,
/// its configured variables, the ones it names in `passEnvironment`, and the task's `ASYNCCODE_*`
/// variables. On timeout or cancellation the whole group gets SIGTERM, then SIGKILL after `killGrace`.
public struct AgentRunner: Sendable {
    /// Bytes kept from the end of each stream.
    public var outputLimit: Int
    public var killGrace: Duration

    public init(outputLimit: Int = 256 * 1024, killGrace: Duration = .seconds(10)) {
        self.outputLimit = outputLimit
        self.killGrace = killGrace
    }

    /// Returns the agent's environment: the allow-list, nothing else.
    public static func environment(
        for agent: AgentCommand, home: String, task: [String: String],
        host: [String: String] = ProcessInfo.processInfo.environment
    ) -> [String: String] {
        var environment: [String: String] = [
            "PATH": host["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
            "LANG": host["LANG"] ?? "C.UTF-8",
            "HOME": home,
        ]
        for name in agent.passEnvironment { if let value = host[name] { environment[name] = value } }
        environment.merge(agent.environment) { _, configured in configured }
        environment.merge(task) { _, taskValue in taskValue }
        return environment
    }

    /// Runs `agent` in `workingDirectory` with `prompt` on standard input; stops it (ending `.overBudget`)
    /// once the usage it reports passes `tokenLimit`, and after `timeLimit` when that is shorter than its
    /// timeout (ending `.overBudget` too). `observer` sees the output as it streams.
    ///
    /// - Throws: when the program cannot be started (not found, not executable).
    public func run(
        _ agent: AgentCommand, prompt: String, workingDirectory: String, environment: [String: String],
        tokenLimit: Int64? = nil, timeLimit: Duration? = nil, observer: OutputObserver? = nil
    ) async throws -> AgentRunResult {
        guard let program = agent.command.first else {
            throw AgentRunnerError(description: "agent \(agent.name) has no command")
        }
        let executable: Executable = program.contains("/") ? .path(FilePath(program)) : .name(program)
        var keys: [Environment.Key: String] = [:]
        for (name, value) in environment {
            if let key = Environment.Key(rawValue: name) { keys[key] = value }
        }
        var options = PlatformOptions()
        options.createSession = true
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: killGrace)]
        let configuration = Configuration(
            executable: executable, arguments: Arguments(Array(agent.command.dropFirst())),
            environment: .custom(keys), workingDirectory: FilePath(workingDirectory), platformOptions: options)
        let limit = outputLimit
        let started = ContinuousClock.now

        let (overBudget, budgetContinuation) = AsyncStream<Void>.makeStream()
        let scanner = UsageScanner(tokenLimit: tokenLimit) { budgetContinuation.yield() }
        let budgetTime = timeLimit.flatMap { $0 < agent.timeout ? $0 : nil }
        enum Race: Sendable { case finished(AgentRunResult), timedOut, overBudget }
        let result: Race = try await withThrowingTaskGroup(of: Race.self) { group in
            group.addTask {
                let execution = try await Subprocess.run(
                    configuration, input: .string(prompt), output: .sequence, error: .sequence
                ) { execution in
                    async let errorTail = Self.tail(of: execution.standardError, limit: limit, observer: observer, as: .stderr)
                    let outputTail = try await Self.tail(of: execution.standardOutput, limit: limit, scanner: scanner,
                                                         observer: observer, as: .stdout)
                    return (outputTail, try await errorTail)
                }
                let ((output, outputCut), (errorOutput, errorCut)) = execution.closureResult
                let ending: AgentRunResult.Ending
                switch execution.terminationStatus {
                case .exited(let code): ending = .exited(code)
                case .signaled(let signal): ending = .signalled(signal)
                }
                return .finished(AgentRunResult(
                    ending: ending, output: output, errorOutput: errorOutput, truncated: outputCut || errorCut,
                    duration: ContinuousClock.now - started))
            }
            group.addTask {
                try await Task.sleep(for: budgetTime ?? agent.timeout)
                return budgetTime == nil ? .timedOut : .overBudget
            }
            group.addTask {
                for await _ in overBudget { return .overBudget }
                try await Task.sleep(for: .seconds(86_400 * 365))
                return .timedOut
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw CancellationError() }
            return first
        }
        budgetContinuation.finish()
        switch result {
        case .finished(var finished):
            finished.usage = scanner.usage
            if Task.isCancelled { finished.ending = .cancelled }
            return finished
        case .timedOut:
            return AgentRunResult(ending: .timedOut, output: "", errorOutput: "", truncated: false,
                                  duration: ContinuousClock.now - started, usage: scanner.usage)
        case .overBudget:
            return AgentRunResult(ending: .overBudget, output: "", errorOutput: "", truncated: false,
                                  duration: ContinuousClock.now - started, usage: scanner.usage)
        }
    }

    /// Reads `sequence` (`stream`) to its end, keeping the last `limit` bytes and showing each chunk to
    /// `observer`; returns them and whether any were dropped.
    static func tail(
        of sequence: SubprocessOutputSequence, limit: Int, scanner: UsageScanner? = nil,
        observer: OutputObserver? = nil, as stream: StandardStream = .stdout
    ) async throws -> (String, Bool) {
        var kept: [UInt8] = []
        var dropped = false
        defer { scanner?.finish() }
        for try await buffer in sequence {
            buffer.withUnsafeBytes {
                kept.append(contentsOf: $0)
                scanner?.feed($0)
                observer?(stream, $0)
            }
            if kept.count > limit * 2 {
                kept.removeFirst(kept.count - limit)
                dropped = true
            }
        }
        if kept.count > limit {
            kept.removeFirst(kept.count - limit)
            dropped = true
        }
        return (String(decoding: kept, as: UTF8.self), dropped)
    }
}

/// An agent that could not be started. Never holds the environment's values.
public struct AgentRunnerError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
