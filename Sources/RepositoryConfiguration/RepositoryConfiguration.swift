import Yams

/// A repository's own settings for asynccode, read from ``path`` on its default branch:
///
/// ```yaml
/// enabled: true
/// label: asynccode              # the label that starts a task; omit for the bot's default
/// defaultAgent: claude
/// allowedAgents: [claude, codex]
/// branchPrefix: asynccode/
/// draft: false
/// reviewers: [alice, "@bob"]
/// protectedPaths:                # changes here are refused; [] protects nothing
///   - .github/workflows/**
///   - "*.pem"
/// instructions: |
///   Run `swift test` before finishing.
/// setup: [npm ci]                # run in the jail before the agent
/// checks:                        # run in the jail after the agent; each must exit 0
///   - name: tests
///     run: npm test
///     timeout: 600               # seconds (default 600, at most 3600)
/// fixRounds: 2                   # times the agent gets failing checks back (0-5)
/// onChecksFailing: draft         # draft: a draft pull request; fail: push nothing
/// fixFailingCI: false            # true: a failed CI run on the bot's own pull request starts a fix
/// maxAutomaticFixes: 3           # such fixes per pull request (0-20)
/// signedCommits: true            # commits made through GitHub's API, signed by GitHub (Verified)
/// ```
///
/// The file is written by the repository's maintainers, not by the bot's operator, so ``parse(_:)`` treats it as
/// untrusted: it bounds its size and nesting, refuses unknown keys and wrong types with the offending line, and never
/// crashes.
public struct RepositoryConfiguration: Sendable, Hashable {
    /// The file's path from the repository root.
    public static let path = ".github/asynccode.yml"
    /// The largest file accepted, in UTF-8 bytes.
    public static let maxBytes = 64 * 1024
    /// The globs protected when the file does not set `protectedPaths`.
    public static let defaultProtectedPaths = [".github/workflows/**"]
    /// The keys the file may set.
    public static let keys = [
        "enabled", "label", "defaultAgent", "allowedAgents", "branchPrefix", "draft", "reviewers", "protectedPaths",
        "instructions", "setup", "checks", "fixRounds", "onChecksFailing", "fixFailingCI", "maxAutomaticFixes",
        "signedCommits",
    ]

    /// The longest label accepted, in characters (GitHub's limit).
    public static let maxLabelLength = 50
    /// The most entries of `allowedAgents`.
    public static let maxAllowedAgents = 50
    /// The longest branch prefix accepted, in UTF-8 bytes.
    public static let maxBranchPrefixBytes = 100
    /// The most entries of `reviewers` (GitHub's limit per request).
    public static let maxReviewers = 15
    /// The most entries of `protectedPaths`.
    public static let maxProtectedPaths = 100
    /// The longest `instructions` accepted, in UTF-8 bytes.
    public static let maxInstructionsBytes = 8 * 1024

    /// Whether the bot acts on this repository; `false` turns it off. Defaults to `true`.
    public var enabled: Bool
    /// The label that starts a task, or `nil` for the bot's global default.
    public var label: String?
    /// The agent used when a command names none, or `nil` for the bot's default.
    public var defaultAgent: String?
    /// The agents users may choose, or `nil` for every agent the bot has.
    public var allowedAgents: [String]?
    /// The start of the branches the bot pushes. Defaults to `asynccode/`.
    public var branchPrefix: String
    /// Whether pull requests are opened as drafts. Defaults to `false`.
    public var draft: Bool
    /// The GitHub logins asked to review each pull request, without `@`. Defaults to none.
    public var reviewers: [String]
    /// The globs (see ``PathGlob``) of paths the bot must not change. Defaults to ``defaultProtectedPaths``;
    /// an explicit empty list protects nothing.
    public var protectedPaths: [String]
    /// Text added to every prompt, or `nil` for none.
    public var instructions: String?
    /// Shell commands run in the checkout, in the agent's jail, before the agent. Defaults to none.
    public var setup: [String] = []
    /// Commands that must pass after the agent. Defaults to none: nothing is checked.
    public var checks: [Check] = []
    /// How many times the agent gets the failing checks back (0 to ``maxFixRounds``). Defaults to 2.
    public var fixRounds = 2
    /// What happens when the checks still fail after the last round. Defaults to ``ChecksFailing/draft``.
    public var onChecksFailing = ChecksFailing.draft
    /// Whether a failed CI run on the head commit of the bot's own open pull request starts a follow-up that fixes
    /// it. Defaults to `false`.
    public var fixFailingCI = false
    /// How many such automatic follow-ups one pull request gets (0 to ``maxAutomaticFixesLimit``). Defaults to 3.
    public var maxAutomaticFixes = 3
    /// Whether the bot's commits are made through GitHub's Git Data API, which signs them as the App, instead of
    /// pushed; `nil`: the operator's default (`signedCommits` in the `ASYNCCODE_CONFIG` file).
    public var signedCommits: Bool?

    /// Creates the settings used when the file is absent: every property at its default.
    public init() {
        enabled = true
        label = nil
        defaultAgent = nil
        allowedAgents = nil
        branchPrefix = "asynccode/"
        draft = false
        reviewers = []
        protectedPaths = Self.defaultProtectedPaths
        instructions = nil
    }

    /// Parses the file's text. Empty / whitespace-only / comment-only text gives the defaults.
    ///
    /// - Throws: ``RepositoryConfigurationError`` naming the line of the offending key or value, when known.
    public static func parse(_ text: String) throws(RepositoryConfigurationError) -> RepositoryConfiguration {
        guard text.utf8.count <= maxBytes else {
            throw RepositoryConfigurationError(problem: "the file is over \(maxBytes / 1024) KB")
        }
        // libyaml refuses a tab where indentation is expected, even on a line holding nothing else.
        if text.allSatisfy(\.isWhitespace) { return RepositoryConfiguration() }
        try YAMLPrecheck.check(text)
        // Yams' `compose(yaml:)` drops its parser on return, and with it the anchors, which nodes hold weakly;
        // keeping the parser alive while decoding lets the decoder see and refuse anchored nodes.
        let parser: Parser
        do {
            parser = try Parser(yaml: text, resolver: .default, constructor: .default, encoding: .utf8)
        } catch {
            throw RepositoryConfigurationError(yamlError: error)
        }
        defer { withExtendedLifetime(parser) {} }
        let root: Node?
        do {
            root = try parser.singleRoot()
        } catch {
            throw RepositoryConfigurationError(yamlError: error)
        }
        return try SettingsDecoder.decode(root)
    }

    /// Returns the paths among `changedPaths` that match a protected glob, sorted, without duplicates.
    ///
    /// For a rename, pass both the old and the new path. A pattern that is not a valid ``PathGlob`` (possible only
    /// when ``protectedPaths`` is set in code) matches every path, so protection fails closed.
    public func protectedChanges(in changedPaths: [String]) -> [String] {
        let globs = protectedPaths.map { try? PathGlob($0) }
        var found = Set<String>()
        for path in changedPaths where !found.contains(path) {
            if globs.contains(where: { $0?.matches(path) ?? true }) { found.insert(path) }
        }
        return found.sorted()
    }
}

// MARK: - Decoding

/// Turns the composed YAML into settings, checking every key and value.
enum SettingsDecoder {
    static func decode(_ root: Node?) throws(RepositoryConfigurationError) -> RepositoryConfiguration {
        var configuration = RepositoryConfiguration()
        guard let root else { return configuration }
        try refuseAnchor(root)
        if case .scalar = root, isNull(root) { return configuration }
        guard case .mapping(let mapping) = root else {
            throw RepositoryConfigurationError(line: root.mark?.line, problem: "the file must be a mapping of settings, one `key: value` per line")
        }
        var defaultAgentLine: Int?
        for (keyNode, value) in mapping {
            try refuseAnchor(keyNode)
            try refuseAnchor(value)
            let keyLine = keyNode.mark?.line
            guard case .scalar(let keyScalar) = keyNode, !isNull(keyNode) else {
                throw RepositoryConfigurationError(line: keyLine, problem: "keys must be setting names (known: \(knownKeys))")
            }
            let key = keyScalar.string
            let field = Field(key: key, keyLine: keyLine, value: value)
            switch key {
            case "enabled":
                configuration.enabled = try field.bool()
            case "draft":
                configuration.draft = try field.bool()
            case "label":
                configuration.label = try label(field)
            case "defaultAgent":
                let name = try field.string()
                try checkAgentName(name, field: field, line: field.valueLine)
                configuration.defaultAgent = name
                defaultAgentLine = field.valueLine
            case "allowedAgents":
                let entries = try field.strings()
                guard !entries.isEmpty else {
                    throw RepositoryConfigurationError(line: field.valueLine, problem: "`allowedAgents` must list at least one agent; omit it to allow every agent")
                }
                guard entries.count <= RepositoryConfiguration.maxAllowedAgents else {
                    throw RepositoryConfigurationError(line: field.valueLine, problem: "`allowedAgents` lists more than \(RepositoryConfiguration.maxAllowedAgents) agents")
                }
                var names: [String] = []
                for (name, line) in entries {
                    try checkAgentName(name, field: field, line: line)
                    if !names.contains(name) { names.append(name) }
                }
                configuration.allowedAgents = names
            case "branchPrefix":
                let prefix = try field.string()
                if let problem = branchPrefixProblem(prefix) {
                    throw RepositoryConfigurationError(line: field.valueLine, problem: "`branchPrefix` \(problem)")
                }
                configuration.branchPrefix = prefix
            case "reviewers":
                let entries = try field.strings()
                guard entries.count <= RepositoryConfiguration.maxReviewers else {
                    throw RepositoryConfigurationError(line: field.valueLine, problem: "`reviewers` lists more than \(RepositoryConfiguration.maxReviewers) logins")
                }
                var logins: [String] = []
                for (entry, line) in entries {
                    let login = entry.hasPrefix("@") ? String(entry.dropFirst()) : entry
                    guard isLogin(login) else {
                        throw RepositoryConfigurationError(line: line, problem: "`reviewers` entry `\(entry.debugSafe)` is not a GitHub login")
                    }
                    if !logins.contains(where: { $0.lowercased() == login.lowercased() }) { logins.append(login) }
                }
                configuration.reviewers = logins
            case "protectedPaths":
                let entries = try field.strings()
                guard entries.count <= RepositoryConfiguration.maxProtectedPaths else {
                    throw RepositoryConfigurationError(line: field.valueLine, problem: "`protectedPaths` lists more than \(RepositoryConfiguration.maxProtectedPaths) globs")
                }
                var globs: [String] = []
                for (pattern, line) in entries {
                    do {
                        _ = try PathGlob(pattern)
                    } catch {
                        throw RepositoryConfigurationError(line: line, problem: "`protectedPaths`: \(error.problem)")
                    }
                    if !globs.contains(pattern) { globs.append(pattern) }
                }
                configuration.protectedPaths = globs
            case "instructions":
                let text = try field.string()
                guard text.utf8.count <= RepositoryConfiguration.maxInstructionsBytes else {
                    throw RepositoryConfigurationError(line: field.valueLine, problem: "`instructions` is over \(RepositoryConfiguration.maxInstructionsBytes) bytes")
                }
                configuration.instructions = text.allSatisfy(\.isWhitespace) ? nil : text
            case "setup":
                configuration.setup = try setup(field)
            case "checks":
                configuration.checks = try checks(field)
            case "fixRounds":
                configuration.fixRounds = try fixRounds(field)
            case "onChecksFailing":
                configuration.onChecksFailing = try onChecksFailing(field)
            case "fixFailingCI":
                configuration.fixFailingCI = try field.bool()
            case "signedCommits":
                configuration.signedCommits = try field.bool()
            case "maxAutomaticFixes":
                configuration.maxAutomaticFixes = try field.integer(in: 0...RepositoryConfiguration.maxAutomaticFixesLimit, unit: "")
            default:
                var problem = "`\(key.debugSafe)` is not a setting"
                if let near = RepositoryConfiguration.keys.first(where: { $0.lowercased() == key.lowercased() }) {
                    problem += " (did you mean `\(near)`?)"
                }
                throw RepositoryConfigurationError(line: keyLine, problem: problem + "; known: \(knownKeys)")
            }
        }
        if let defaultAgent = configuration.defaultAgent, let allowed = configuration.allowedAgents, !allowed.contains(defaultAgent) {
            throw RepositoryConfigurationError(line: defaultAgentLine, problem: "`defaultAgent` `\(defaultAgent)` is not among `allowedAgents` (\(allowed.joined(separator: ", ")))")
        }
        return configuration
    }

    static var knownKeys: String { RepositoryConfiguration.keys.joined(separator: ", ") }

    /// One `key: value` pair, with the conversions the settings need.
    struct Field {
        var key: String
        var keyLine: Int?
        var value: Node

        /// The value's line, or the key's when the value has none or is empty (Yams may place an empty value on the
        /// next line).
        var valueLine: Int? { isNull(value) ? keyLine : value.mark?.line ?? keyLine }

        func bool() throws(RepositoryConfigurationError) -> Bool {
            if case .scalar(let scalar) = value, value.tag.description == Tag.Name.bool.rawValue {
                switch scalar.string {
                case "true", "True", "TRUE": return true
                case "false", "False", "FALSE": return false
                default: break
                }
            }
            throw RepositoryConfigurationError(line: valueLine, problem: "`\(key)` must be true or false")
        }

        func string() throws(RepositoryConfigurationError) -> String {
            switch value {
            case .scalar(let scalar) where !isNull(value):
                return scalar.string
            case .scalar:
                throw RepositoryConfigurationError(line: valueLine, problem: "`\(key)` has no value; give a string or remove the key")
            default:
                throw RepositoryConfigurationError(line: valueLine, problem: "`\(key)` must be a string, not a \(kind(value))")
            }
        }

        /// Returns the entries of a list of strings, each with its line.
        func strings() throws(RepositoryConfigurationError) -> [(String, Int?)] {
            switch value {
            case .sequence(let sequence):
                var entries: [(String, Int?)] = []
                for entry in sequence {
                    try refuseAnchor(entry)
                    let line = entry.mark?.line ?? valueLine
                    guard case .scalar(let scalar) = entry, !isNull(entry) else {
                        let what = isNull(entry) ? "an empty entry" : "a \(kind(entry))"
                        throw RepositoryConfigurationError(line: line, problem: "entries of `\(key)` must be strings, not \(what)")
                    }
                    entries.append((scalar.string, line))
                }
                return entries
            case .scalar where isNull(value):
                throw RepositoryConfigurationError(line: valueLine, problem: "`\(key)` has no value; give a list such as [a, b], or [] for none")
            default:
                throw RepositoryConfigurationError(line: valueLine, problem: "`\(key)` must be a list such as [a, b], not a \(kind(value))")
            }
        }
    }

    static func isNull(_ node: Node) -> Bool {
        guard case .scalar = node else { return false }
        return node.tag.description == Tag.Name.null.rawValue
    }

    static func kind(_ node: Node) -> String {
        switch node {
        case .mapping: "mapping"
        case .sequence: "list"
        case .scalar, .alias: "single value"
        }
    }

    /// Refuses a node that carries an anchor: the node is either `&name` itself or an alias (`*name`) resolved to it.
    static func refuseAnchor(_ node: Node) throws(RepositoryConfigurationError) {
        if case .alias = node { throw RepositoryConfigurationError(line: node.mark?.line, problem: YAMLPrecheck.aliasProblem) }
        if node.anchor != nil { throw RepositoryConfigurationError(line: node.mark?.line, problem: YAMLPrecheck.aliasProblem) }
    }

    static func label(_ field: Field) throws(RepositoryConfigurationError) -> String {
        let label = try field.string()
        let problem: String? =
            if label.allSatisfy(\.isWhitespace) { "must not be empty" }
            else if label.count > RepositoryConfiguration.maxLabelLength { "is over \(RepositoryConfiguration.maxLabelLength) characters" }
            else if label.contains(",") { "must not contain a comma" }
            else if label.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || YAMLPrecheck.isBreak($0) }) {
                "must be one line, without control characters"
            } else { nil }
        if let problem { throw RepositoryConfigurationError(line: field.valueLine, problem: "`label` \(problem)") }
        return label
    }

    /// Agent names: `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`.
    static func checkAgentName(_ name: String, field: Field, line: Int?) throws(RepositoryConfigurationError) {
        let bytes = Array(name.utf8)
        let valid = (1...64).contains(bytes.count) && isAlphanumeric(bytes[0])
            && bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
        guard valid else {
            throw RepositoryConfigurationError(line: line, problem: "`\(field.key)`: `\(name.debugSafe)` is not an agent name (letters, digits, `.`, `_`, `-`; at most 64)")
        }
    }

    /// GitHub logins: `^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`.
    static func isLogin(_ login: String) -> Bool {
        let bytes = Array(login.utf8)
        return (1...39).contains(bytes.count) && isAlphanumeric(bytes[0])
            && bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") }
    }

    /// Returns why `prefix` cannot start a git branch name, or `nil` when it can.
    static func branchPrefixProblem(_ prefix: String) -> String? {
        let bytes = Array(prefix.utf8)
        guard (1...RepositoryConfiguration.maxBranchPrefixBytes).contains(bytes.count) else {
            return "must be 1 to \(RepositoryConfiguration.maxBranchPrefixBytes) bytes"
        }
        guard bytes.allSatisfy({ isAlphanumeric($0) || ".-_/".utf8.contains($0) }) else {
            return "may hold only letters, digits, `.`, `_`, `-` and `/`"
        }
        if let first = prefix.first, "-/.".contains(first) { return "must not start with `\(first)`" }
        for bad in ["..", "//", "@{", "/."] where prefix.contains(bad) { return "must not contain `\(bad)`" }
        if prefix.hasSuffix(".lock") || prefix.contains(".lock/") { return "must not have a part ending in `.lock`" }
        if prefix.hasSuffix(".") { return "must not end with `.`" }
        return nil
    }

    static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}

// MARK: - Yams errors

extension RepositoryConfigurationError {
    /// Creates an error from one Yams threw while reading `text`, with the line it names.
    init(yamlError error: any Error) {
        guard let error = error as? YamlError else {
            self.init(problem: "invalid YAML: \(error)")
            return
        }
        switch error {
        case .scanner(let context, _, let mark, _) where context?.text == "while scanning an alias" || context?.text == "while scanning an anchor":
            // libyaml allows only letters, digits, `-` and `_` in names, so `*.pem` fails here rather than as an alias.
            self.init(line: mark.line, problem: YAMLPrecheck.aliasProblem)
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            var sentence = "invalid YAML: \(problem)"
            if let context { sentence += " (\(context.text) on line \(context.mark.line))" }
            self.init(line: mark.line, problem: sentence)
        case .composer(let context, let problem, let mark, _):
            if problem == "found undefined alias" {
                self.init(line: mark.line, problem: YAMLPrecheck.aliasProblem)
            } else {
                var sentence = "invalid YAML: \(problem)"
                if let context { sentence += " (\(context.text))" }
                self.init(line: mark.line, problem: sentence)
            }
        case .reader(let problem, let offset, _, let yaml):
            self.init(line: offset.map { Self.line(ofCharacter: $0, in: yaml) }, problem: "invalid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.sorted().map { "`\($0.debugSafe)`" }.joined(separator: ", ")
            self.init(line: context.mark.line, problem: "\(keys) \(duplicates.count == 1 ? "is" : "are") set more than once")
        default:
            self.init(problem: "invalid YAML: \(error)")
        }
    }

    /// Returns the 1-based line of the character at `offset` (counted in `Character`s, as Yams does).
    private static func line(ofCharacter offset: Int, in text: String) -> Int {
        var line = 1
        for character in text.prefix(offset) where character.isNewline { line += 1 }
        return line
    }
}
