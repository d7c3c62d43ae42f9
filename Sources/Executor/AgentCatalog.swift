import Accounting
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
///     displayName: Claude Code
///     provider: anthropic
///     description: Anthropic's coding agent
///     costPerToken: 0.00002   # credits, when it reports usage
///     costPerMinute: 1        # credits, when it does not
///     maxTokens: 2000000
/// limits:
///   tasksPerRequesterPerHour: 20
///   runningTasksPerRepository: 3
///   creditsPerAccountPerDay: 1000
/// ```
public struct AgentCatalog: Sendable {
    /// The agent used when a command names none.
    public var defaultAgent: String?
    public var agents: [String: AgentCommand]
    /// The usage limits (`limits`); defaults apply to the keys not given.
    public var limits = UsageLimits()

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
        var limits: LimitsEntry?
    }

    private struct LimitsEntry: Decodable {
        var tasksPerRequesterPerHour: Int?
        var runningTasksPerRepository: Int?
        var creditsPerAccountPerDay: Decimal?
    }

    struct Entry: Decodable {
        var command: [String]
        var timeout: Double?
        var passEnv: [String]?
        var env: [String: String]?
        var sandbox: SandboxMode?
        var network: NetworkMode?
        var binds: [String]?
        var limits: Limits?
        var displayName: String?
        var provider: String?
        var description: String?
        var costPerToken: Decimal?
        var costPerMinute: Decimal?
        var maxTokens: Int?
        // `runner: kubernetes` (AgentCatalog+Kubernetes.swift).
        var runner: String?
        var image: String?
        var namespace: String?
        var resources: ResourcesEntry?
        var serviceAccountName: String?
        var nodeSelector: [String: String]?
        var tolerations: [TolerationEntry]?
        var secretName: String?
    }

    struct Limits: Decodable {
        var memoryMB: Int?
        var processes: Int?
        var fileSizeMB: Int?
    }

    static let entryKeys = Set([
        "command", "timeout", "passEnv", "env", "sandbox", "network", "binds", "limits",
        "displayName", "provider", "description", "costPerToken", "costPerMinute", "maxTokens",
    ] + kubernetesKeys)
    static let limitKeys: Set<String> = ["memoryMB", "processes", "fileSizeMB"]
    static let usageLimitKeys: Set<String> = ["tasksPerRequesterPerHour", "runningTasksPerRepository", "creditsPerAccountPerDay"]

    /// Refuses keys an agent entry does not have (a misspelt `passenv` would silently drop the API key).
    private static func checkKeys(yaml: String) throws(AgentCatalogError) {
        guard let root = (try? Yams.load(yaml: yaml)) as? [String: Any] else { return }
        if let limits = root["limits"] as? [String: Any], let unknown = Set(limits.keys).subtracting(usageLimitKeys).sorted().first {
            throw AgentCatalogError(problem: "limits.\(unknown) is not a setting (known: \(usageLimitKeys.sorted().joined(separator: ", ")))")
        }
        guard let agents = root["agents"] as? [String: Any] else { return }
        for (name, value) in agents.sorted(by: { $0.key < $1.key }) {
            guard let entry = value as? [String: Any] else { continue }
            if let unknown = Set(entry.keys).subtracting(entryKeys).sorted().first {
                throw AgentCatalogError(problem: "agents.\(name).\(unknown) is not a setting (known: \(entryKeys.sorted().joined(separator: ", ")))")
            }
            if let limits = entry["limits"] as? [String: Any], let unknown = Set(limits.keys).subtracting(limitKeys).sorted().first {
                throw AgentCatalogError(problem: "agents.\(name).limits.\(unknown) is not a setting (known: \(limitKeys.sorted().joined(separator: ", ")))")
            }
            try checkKubernetesKeys(entry, agent: name)
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
            agent.displayName = try text(entry.displayName, "agents.\(name).displayName", limit: 100) ?? name
            agent.provider = try text(entry.provider, "agents.\(name).provider", limit: 50) ?? "custom"
            agent.summary = try text(entry.description, "agents.\(name).description", limit: 500)
            for (value, key, most) in [(entry.costPerToken, "costPerToken", Decimal(99)), (entry.costPerMinute, "costPerMinute", Decimal(999_999))] {
                if let value, value < 0 || value > most {
                    throw AgentCatalogError(problem: "agents.\(name).\(key) must be a number of credits from 0 to \(most)")
                }
            }
            if let maxTokens = entry.maxTokens, maxTokens <= 0 {
                throw AgentCatalogError(problem: "agents.\(name).maxTokens must be positive")
            }
            if let perToken = entry.costPerToken, perToken > 0, entry.maxTokens == nil {
                throw AgentCatalogError(problem: "agents.\(name).costPerToken needs maxTokens: a task's credits are reserved from it before the agent runs")
            }
            agent.pricing = Pricing(costPerToken: entry.costPerToken ?? 0, costPerMinute: entry.costPerMinute ?? 0,
                                    maxTokens: entry.maxTokens)
            agent.runner = try placement(entry, agent: name)
            agents[name] = agent
        }
        if let defaultAgent = file.defaultAgent, agents[defaultAgent] == nil {
            throw AgentCatalogError(problem: "defaultAgent \(defaultAgent) is not among the agents (\(agents.keys.sorted().joined(separator: ", ")))")
        }
        var catalog = AgentCatalog(defaultAgent: file.defaultAgent, agents: agents)
        if let limits = file.limits {
            func positive(_ value: Int?, _ key: String, default fallback: Int?) throws(AgentCatalogError) -> Int? {
                guard let value else { return fallback }
                guard value >= 0 else { throw AgentCatalogError(problem: "limits.\(key) must be 0 (no limit) or more") }
                return value == 0 ? nil : value
            }
            catalog.limits.tasksPerRequesterPerHour = try positive(
                limits.tasksPerRequesterPerHour, "tasksPerRequesterPerHour", default: catalog.limits.tasksPerRequesterPerHour)
            catalog.limits.runningTasksPerRepository = try positive(
                limits.runningTasksPerRepository, "runningTasksPerRepository", default: catalog.limits.runningTasksPerRepository)
            if let credits = limits.creditsPerAccountPerDay {
                guard credits >= 0 else { throw AgentCatalogError(problem: "limits.creditsPerAccountPerDay must be 0 (no limit) or more") }
                catalog.limits.creditsPerAccountPerDay = credits == 0 ? nil : credits
            }
        }
        return catalog
    }

    /// Returns `value` when it is one line of at most `limit` characters.
    private static func text(_ value: String?, _ key: String, limit: Int) throws(AgentCatalogError) -> String? {
        guard let value else { return nil }
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.count <= limit, !trimmed.contains(where: \.isNewline) else {
            throw AgentCatalogError(problem: "\(key) must be one line of 1 to \(limit) characters")
        }
        return trimmed
    }

    /// Returns the agents as `ai_models` records them.
    public var models: [ModelEntry] {
        names.compactMap { agents[$0] }.map {
            ModelEntry(name: $0.name, displayName: $0.displayName, provider: $0.provider, description: $0.summary,
                       pricing: $0.pricing)
        }
    }

    /// Returns the agents as a Markdown list for replies: name, display name, description and price.
    public func modelList() -> String {
        names.compactMap { agents[$0] }.map { agent in
            var line = "- `\(agent.name)`"
            if agent.displayName != agent.name { line += " (\(agent.displayName))" }
            if agent.name == defaultAgent { line += ", the default" }
            if let summary = agent.summary { line += ": \(summary)" }
            var prices: [String] = []
            if agent.pricing.costPerToken > 0 { prices.append("\(CreditFormat.price(agent.pricing.costPerToken)) credits per token") }
            if agent.pricing.costPerMinute > 0 { prices.append("\(CreditFormat.price(agent.pricing.costPerMinute)) credits per minute") }
            line += prices.isEmpty ? " · free" : " · " + prices.joined(separator: ", ")
            return line
        }.joined(separator: "\n")
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
