import Foundation
import Yams

/// The agents users may choose, from the `agents` section of the `ASYNCCODE_CONFIG` YAML file:
///
/// ```yaml
/// defaultAgent: claude
/// agents:
///   claude:
///     command: ["claude", "-p", "--permission-mode", "acceptEdits"]
///     timeout: 1800          # seconds
///     passEnv: [ANTHROPIC_API_KEY]
///     env: {CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1"}
///     sandbox: bwrap         # or none (explicitly: no jail)
///     network: full          # or none
///     binds: [/opt/claude]   # read-only in the jail
///     limits: {memoryMB: 8192, processes: 512, fileSizeMB: 1024}
/// ```
public struct AgentCatalog: Sendable {
    /// The agent used when a command names none.
    public var defaultAgent: String?
    public var agents: [String: AgentCommand]

    /// Variables an agent may never be given: the bot's own secrets.
    public static let forbiddenVariables: Set<String> = [
        "DATABASE_URL", "ASYNCCODE_TEST_DATABASE_URL", "GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_PRIVATE_KEY_PATH",
        "GITHUB_WEBHOOK_SECRET", "GITHUB_WEBHOOK_SECRET_PREVIOUS", "GITHUB_TOKEN", "GH_TOKEN", "PGPASSWORD",
    ]

    public init(defaultAgent: String?, agents: [String: AgentCommand]) {
        self.defaultAgent = defaultAgent
        self.agents = agents
    }

    /// The configured agents' names, sorted.
    public var names: [String] { agents.keys.sorted() }

    /// Returns the agent `name` names, or the default one when `name` is `nil`.
    public func agent(named name: String?) -> AgentCommand? {
        guard let name = name ?? defaultAgent ?? (agents.count == 1 ? agents.keys.first : nil) else { return nil }
        return agents[name] ?? agents.first { $0.key.lowercased() == name.lowercased() }?.value
    }

    private struct File: Decodable {
        var defaultAgent: String?
        var agents: [String: Entry]?
    }

    private struct Entry: Decodable {
        var command: [String]
        var timeout: Double?
        var passEnv: [String]?
        var env: [String: String]?
        var sandbox: SandboxMode?
        var network: NetworkMode?
        var binds: [String]?
        var limits: Limits?
    }

    private struct Limits: Decodable {
        var memoryMB: Int?
        var processes: Int?
        var fileSizeMB: Int?
    }

    static let entryKeys: Set<String> = ["command", "timeout", "passEnv", "env", "sandbox", "network", "binds", "limits"]
    static let limitKeys: Set<String> = ["memoryMB", "processes", "fileSizeMB"]

    /// Refuses keys an agent entry does not have (a misspelt `passenv` would silently drop the API key).
    private static func checkKeys(yaml: String) throws(AgentCatalogError) {
        guard let root = (try? Yams.load(yaml: yaml)) as? [String: Any], let agents = root["agents"] as? [String: Any] else { return }
        for (name, value) in agents.sorted(by: { $0.key < $1.key }) {
            guard let entry = value as? [String: Any] else { continue }
            if let unknown = Set(entry.keys).subtracting(entryKeys).sorted().first {
                throw AgentCatalogError(problem: "agents.\(name).\(unknown) is not a setting (known: \(entryKeys.sorted().joined(separator: ", ")))")
            }
            if let limits = entry["limits"] as? [String: Any], let unknown = Set(limits.keys).subtracting(limitKeys).sorted().first {
                throw AgentCatalogError(problem: "agents.\(name).limits.\(unknown) is not a setting (known: \(limitKeys.sorted().joined(separator: ", ")))")
            }
        }
    }

    /// Folders never bound whole into a jail: the system's and users' homes.
    static let refusedBinds: Set<String> = ["/", "/root", "/home", "/etc", "/var", "/tmp", "/proc", "/sys", "/dev", "/run"]

    /// Reads the catalog from the YAML file at `path`; `nil` gives an empty catalog.
    public static func load(path: String?) throws(AgentCatalogError) -> AgentCatalog {
        guard let path else { return AgentCatalog(defaultAgent: nil, agents: [:]) }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw AgentCatalogError(problem: "cannot read \(path)")
        }
        return try parse(yaml: text)
    }

    /// Parses the catalog from YAML text, checking every agent.
    public static func parse(yaml: String) throws(AgentCatalogError) -> AgentCatalog {
        guard !yaml.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            return AgentCatalog(defaultAgent: nil, agents: [:])
        }
        let file: File
        do {
            file = try YAMLDecoder().decode(File.self, from: yaml)
        } catch let error as DecodingError {
            throw AgentCatalogError(problem: "agents: \(describe(error))")
        } catch {
            throw AgentCatalogError(problem: "is not valid YAML: \(error)")
        }
        try checkKeys(yaml: yaml)
        var agents: [String: AgentCommand] = [:]
        for (name, entry) in file.agents ?? [:] {
            guard name.range(of: #"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"#, options: .regularExpression) != nil else {
                throw AgentCatalogError(problem: "agent name \"\(name.prefix(64))\" must be letters, digits, '.', '_' or '-'")
            }
            guard let program = entry.command.first, !program.isEmpty else {
                throw AgentCatalogError(problem: "agents.\(name).command must name a program")
            }
            let timeout = entry.timeout ?? 1800
            guard timeout > 0, timeout <= 86_400 else {
                throw AgentCatalogError(problem: "agents.\(name).timeout must be from 1 to 86400 seconds")
            }
            let passed = entry.passEnv ?? []
            let configured = entry.env ?? [:]
            for variable in passed + configured.keys where forbiddenVariables.contains(variable) {
                throw AgentCatalogError(problem: "agents.\(name) may not be given \(variable): the bot's secrets stay with the bot")
            }
            var agent = AgentCommand(
                name: name, command: entry.command, timeout: .milliseconds(Int64(timeout * 1000)),
                environment: configured, passEnvironment: passed)
            agent.sandbox = entry.sandbox ?? .bwrap
            agent.network = entry.network ?? .full
            for bind in entry.binds ?? [] {
                let path = bind.count > 1 && bind.hasSuffix("/") ? String(bind.dropLast()) : bind
                let parts = path.split(separator: "/")
                guard path.hasPrefix("/"), !path.contains(".."), !refusedBinds.contains(path),
                      !(parts.first == "home" && parts.count <= 2) else {
                    throw AgentCatalogError(problem: "agents.\(name).binds: \(bind) is not allowed; bind the folder holding the program (an absolute path, never a home directory or a system folder)")
                }
                agent.binds.append(path)
            }
            if let limits = entry.limits {
                func positive(_ value: Int?, _ key: String) throws(AgentCatalogError) -> Int? {
                    guard let value else { return nil }
                    guard value > 0 else { throw AgentCatalogError(problem: "agents.\(name).limits.\(key) must be positive") }
                    return value
                }
                if let memory = try positive(limits.memoryMB, "memoryMB") { agent.limits.memoryBytes = memory << 20 }
                if let processes = try positive(limits.processes, "processes") { agent.limits.processes = processes }
                if let size = try positive(limits.fileSizeMB, "fileSizeMB") { agent.limits.fileSizeBytes = size << 20 }
            }
            agents[name] = agent
        }
        if let defaultAgent = file.defaultAgent, agents[defaultAgent] == nil {
            throw AgentCatalogError(problem: "defaultAgent \(defaultAgent) is not among the agents (\(agents.keys.sorted().joined(separator: ", ")))")
        }
        return AgentCatalog(defaultAgent: file.defaultAgent, agents: agents)
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context),
             .dataCorrupted(let context):
            let path = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}

/// An agents configuration that cannot be used; says what to fix.
public struct AgentCatalogError: Error, Sendable, CustomStringConvertible {
    public var problem: String
    public var description: String { problem }
}
