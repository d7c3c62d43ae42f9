import Yams

extension RepositoryConfiguration {
    /// One of the repository's checks: a shell command that must exit 0 after the agent's changes.
    public struct Check: Sendable, Hashable {
        /// The name shown in the progress comment and the pull request.
        public var name: String
        /// The command, run with `sh -c` in the checkout.
        public var run: String
        /// Seconds it may run before it is stopped (and fails).
        public var timeout: Int

        public init(name: String, run: String, timeout: Int = RepositoryConfiguration.defaultCheckTimeout) {
            self.name = name
            self.run = run
            self.timeout = timeout
        }
    }

    /// What happens when the checks still fail after the agent's last round (`onChecksFailing`).
    public enum ChecksFailing: String, Sendable, Hashable, CaseIterable {
        /// The pull request is opened as a draft that lists the failing checks.
        case draft
        /// The task fails and nothing is pushed.
        case fail
    }

    /// The most `setup` commands and the most `checks`.
    public static let maxSetupCommands = 20
    public static let maxChecks = 20
    /// The longest command accepted, in UTF-8 bytes.
    public static let maxCommandBytes = 2000
    /// The longest check name accepted, in characters.
    public static let maxCheckNameLength = 64
    /// A check's timeout when it gives none, and the longest it may give, in seconds.
    public static let defaultCheckTimeout = 600
    public static let maxCheckTimeout = 3600
    /// The most `fixRounds`.
    public static let maxFixRounds = 5
    /// The most `maxAutomaticFixes`.
    public static let maxAutomaticFixesLimit = 20
}

/// The decoding of `setup`, `checks`, `fixRounds` and `onChecksFailing`.
extension SettingsDecoder {
    static func setup(_ field: Field) throws(RepositoryConfigurationError) -> [String] {
        let entries = try field.strings()
        guard entries.count <= RepositoryConfiguration.maxSetupCommands else {
            throw RepositoryConfigurationError(line: field.valueLine, problem: "`setup` lists more than \(RepositoryConfiguration.maxSetupCommands) commands")
        }
        var commands: [String] = []
        for (command, line) in entries {
            try checkCommand(command, what: "`setup` entry", line: line)
            commands.append(command)
        }
        return commands
    }

    static func checks(_ field: Field) throws(RepositoryConfigurationError) -> [RepositoryConfiguration.Check] {
        guard case .sequence(let sequence) = field.value else {
            throw RepositoryConfigurationError(line: field.valueLine, problem: "`checks` must be a list of `{name, run, timeout}` entries")
        }
        guard sequence.count <= RepositoryConfiguration.maxChecks else {
            throw RepositoryConfigurationError(line: field.valueLine, problem: "`checks` lists more than \(RepositoryConfiguration.maxChecks) checks")
        }
        var checks: [RepositoryConfiguration.Check] = []
        for entry in sequence {
            try refuseAnchor(entry)
            let check = try check(entry, line: entry.mark?.line ?? field.valueLine)
            if checks.contains(where: { $0.name == check.name }) {
                throw RepositoryConfigurationError(line: entry.mark?.line, problem: "`checks` has two checks named `\(check.name.debugSafe)`")
            }
            checks.append(check)
        }
        return checks
    }

    private static func check(_ entry: Node, line: Int?) throws(RepositoryConfigurationError) -> RepositoryConfiguration.Check {
        guard case .mapping(let mapping) = entry else {
            throw RepositoryConfigurationError(line: line, problem: "entries of `checks` must be mappings such as `{name: tests, run: make test}`")
        }
        var name: String?
        var run: String?
        var timeout = RepositoryConfiguration.defaultCheckTimeout
        for (keyNode, value) in mapping {
            try refuseAnchor(keyNode)
            try refuseAnchor(value)
            let key = keyNode.string ?? ""
            let field = Field(key: "checks." + key, keyLine: keyNode.mark?.line, value: value)
            switch key {
            case "name":
                let text = try field.string()
                guard !text.allSatisfy(\.isWhitespace), text.count <= RepositoryConfiguration.maxCheckNameLength,
                      !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || YAMLPrecheck.isBreak($0) })
                else {
                    throw RepositoryConfigurationError(line: field.valueLine, problem: "`checks.name` must be one line of 1 to \(RepositoryConfiguration.maxCheckNameLength) characters")
                }
                name = text
            case "run":
                let command = try field.string()
                try checkCommand(command, what: "`checks.run`", line: field.valueLine)
                run = command
            case "timeout":
                timeout = try field.integer(in: 1...RepositoryConfiguration.maxCheckTimeout, unit: " seconds")
            default:
                throw RepositoryConfigurationError(line: keyNode.mark?.line, problem: "`\(key.debugSafe)` is not a check setting; known: name, run, timeout")
            }
        }
        guard let name, let run else {
            throw RepositoryConfigurationError(line: line, problem: "each of `checks` needs a `name` and a `run` command")
        }
        return RepositoryConfiguration.Check(name: name, run: run, timeout: timeout)
    }

    static func fixRounds(_ field: Field) throws(RepositoryConfigurationError) -> Int {
        try field.integer(in: 0...RepositoryConfiguration.maxFixRounds, unit: "")
    }

    static func onChecksFailing(_ field: Field) throws(RepositoryConfigurationError) -> RepositoryConfiguration.ChecksFailing {
        let text = try field.string()
        guard let value = RepositoryConfiguration.ChecksFailing(rawValue: text) else {
            throw RepositoryConfigurationError(line: field.valueLine, problem: "`onChecksFailing` must be `draft` or `fail`, not `\(text.debugSafe)`")
        }
        return value
    }

    static func checkCommand(_ command: String, what: String, line: Int?) throws(RepositoryConfigurationError) {
        if command.allSatisfy(\.isWhitespace) {
            throw RepositoryConfigurationError(line: line, problem: "\(what) must not be empty")
        }
        if command.utf8.count > RepositoryConfiguration.maxCommandBytes {
            throw RepositoryConfigurationError(line: line, problem: "\(what) is over \(RepositoryConfiguration.maxCommandBytes) bytes")
        }
        if command.unicodeScalars.contains("\0") {
            throw RepositoryConfigurationError(line: line, problem: "\(what) must not contain a NUL character")
        }
    }
}

extension SettingsDecoder.Field {
    /// Returns the value as a whole number within `range`.
    func integer(in range: ClosedRange<Int>, unit: String) throws(RepositoryConfigurationError) -> Int {
        if case .scalar(let scalar) = value, value.tag.description == Tag.Name.int.rawValue, let number = Int(scalar.string),
           range.contains(number) {
            return number
        }
        throw RepositoryConfigurationError(line: valueLine, problem: "`\(key)` must be a whole number from \(range.lowerBound) to \(range.upperBound)\(unit)")
    }
}
