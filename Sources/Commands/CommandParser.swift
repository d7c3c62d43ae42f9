import Models

/// A command found in a comment.
public enum ParsedCommand: Sendable, Hashable {
    /// Starts a task.
    case task(TaskCommand)
    /// Steers existing tasks.
    case control(ControlVerb, argument: String)
    /// A command line that does not follow the grammar; `problem` says why, for the reply.
    case invalid(problem: String)
}

/// A command that starts a task.
public struct TaskCommand: Sendable, Hashable {
    public var kind: TaskKind
    public var agent: String?
    public var priority: TaskPriority
    public var baseBranch: String?
    /// The most credits the task may use (`--budget`), as typed: a positive decimal number.
    public var budget: String?
    /// The text after the verb and options on the command's line.
    public var text: String
    /// The lines after the command line, up to the next command.
    public var details: String

    public init(kind: TaskKind, agent: String? = nil, priority: TaskPriority = .medium, baseBranch: String? = nil,
                budget: String? = nil, text: String, details: String = "") {
        self.kind = kind
        self.agent = agent
        self.priority = priority
        self.baseBranch = baseBranch
        self.budget = budget
        self.text = text
        self.details = details
    }

    /// Returns the instruction: the text and the details, bounded to ``CommandGrammar/maxTextBytes``.
    public var prompt: String {
        let joined = details.isEmpty ? text : text.isEmpty ? details : text + "\n\n" + details
        return joined.truncatedToUTF8(CommandGrammar.maxTextBytes)
    }
}

/// The commands of one comment.
public struct CommentCommands: Sendable, Hashable {
    /// The commands in order, at most ``CommandGrammar/maxCommandsPerComment``.
    public var commands: [ParsedCommand]
    /// How many command lines were found past the limit and not run.
    public var overLimit: Int
}

/// Finds `/asynccode` commands in Markdown comment bodies.
///
/// A command is a line that starts with `/asynccode` (any case, up to three spaces of indent) followed by
/// white space or the end of the line. Lines in fenced or indented code blocks, quoted lines and lines
/// inside HTML comments are never commands: they are quotes or hidden text, not the author's request.
public struct CommandParser: Sendable {
    public init() {}

    /// Returns the commands in `body`.
    public func parse(_ body: String) -> CommentCommands {
        var found: [(line: Int, command: ParsedCommand)] = []
        var overLimit = 0
        let lines = body.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        var scanner = MarkdownLineScanner()
        var commandLines: [Int] = []
        for (index, line) in lines.enumerated() {
            guard scanner.isPlainText(line) else { continue }
            guard let rest = Self.commandRest(line) else { continue }
            if found.count >= CommandGrammar.maxCommandsPerComment {
                overLimit += 1
                commandLines.append(index)
                continue
            }
            commandLines.append(index)
            found.append((index, Self.parseCommandLine(rest)))
        }
        // Details: the lines after a command line, up to the next command line.
        var commands: [ParsedCommand] = []
        for (position, entry) in found.enumerated() {
            guard case .task(var task) = entry.command else {
                commands.append(entry.command)
                continue
            }
            let end = position + 1 < commandLines.count ? commandLines[position + 1] : lines.count
            if entry.line + 1 < end {
                task.details = Self.trimmedBlock(lines[(entry.line + 1)..<end])
            }
            commands.append(.task(task))
        }
        return CommentCommands(commands: commands, overLimit: overLimit)
    }

    /// Returns what follows the prefix when `line` is a command line.
    static func commandRest(_ line: Substring) -> Substring? {
        var index = line.startIndex
        var spaces = 0
        while index < line.endIndex, line[index] == " ", spaces < 4 {
            spaces += 1
            index = line.index(after: index)
        }
        guard spaces < 4 else { return nil }
        let prefix = CommandGrammar.prefix
        var cursor = index
        for expected in prefix {
            guard cursor < line.endIndex, line[cursor].lowercased() == String(expected) else { return nil }
            cursor = line.index(after: cursor)
        }
        if cursor < line.endIndex, !line[cursor].isWhitespace { return nil }
        return line[cursor...]
    }

    /// Parses the words after `/asynccode`.
    static func parseCommandLine(_ rest: Substring) -> ParsedCommand {
        var words = WordCursor(rest)
        var kind = TaskKind.code
        var control: ControlVerb?
        if let first = words.peek() {
            let verb = first.lowercased()
            if let match = CommandGrammar.taskVerbs.first(where: { !$0.1.name.isEmpty && $0.1.name == verb }) {
                kind = match.0
                words.advance()
            } else if let match = CommandGrammar.controlVerbs.first(where: { $0.1.name == verb }) {
                control = match.0
                words.advance()
            }
        }
        var agent: String?
        var priority = TaskPriority.medium
        var base: String?
        var budget: String?
        while let word = words.peek(), word.hasPrefix("--") {
            words.advance()
            var name = String(word)
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            let option = name.lowercased()
            guard CommandGrammar.options.contains(where: { $0.name == option }) else {
                return .invalid(problem: "unknown option `\(name.truncatedToUTF8(64))`; options are "
                    + CommandGrammar.options.map { "`\($0.usage)`" }.joined(separator: ", "))
            }
            if value == nil, let next = words.peek() {
                value = String(next)
                words.advance()
            }
            guard let value, !value.isEmpty else { return .invalid(problem: "option `\(option)` needs a value") }
            switch option {
            case "--agent":
                guard Self.isValidAgentName(value) else {
                    return .invalid(problem: "`--agent` takes a name of letters, digits, `.`, `_` or `-` (at most 64)")
                }
                agent = value
            case "--priority":
                guard let parsed = TaskPriority(rawValue: value.lowercased()) else {
                    return .invalid(problem: "`--priority` takes low, medium or high")
                }
                priority = parsed
            case "--budget":
                guard Self.isValidBudget(value) else {
                    return .invalid(problem: "`--budget` takes a positive number of credits (like 25 or 2.5, at most 4 decimals)")
                }
                budget = value
            default:
                guard Self.isValidBranchName(value) else {
                    return .invalid(problem: "`--base` takes a branch name (letters, digits, `.`, `_`, `-`, `/`)")
                }
                base = value
            }
        }
        let text = words.remainder().trimmingWhitespace().truncatedToUTF8(CommandGrammar.maxTextBytes)
        if let control {
            return .control(control, argument: text)
        }
        return .task(TaskCommand(kind: kind, agent: agent, priority: priority, baseBranch: base, budget: budget, text: text))
    }

    /// Returns whether `text` is a positive number of credits: 1 to 9 digits, then at most 4 decimals.
    public static func isValidBudget(_ text: String) -> Bool {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let digits = { (part: Substring) in part.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) } }
        guard let whole = parts.first, (1...9).contains(whole.count), digits(whole) else { return false }
        if parts.count == 2 {
            guard (1...4).contains(parts[1].count), digits(parts[1]) else { return false }
        }
        return text.utf8.contains { (UInt8(ascii: "1")...UInt8(ascii: "9")).contains($0) }
    }

    /// Returns whether `name` may name an agent.
    public static func isValidAgentName(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count), name.first != "-" else { return false }
        return name.utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// Returns whether `name` is a safe git branch name: no option look-alikes, no `..`, no control characters.
    public static func isValidBranchName(_ name: String) -> Bool {
        guard (1...200).contains(name.utf8.count) else { return false }
        guard let first = name.first, first != "-", first != "/", first != "." else { return false }
        guard !name.contains(".."), !name.contains("//"), !name.hasSuffix("/"), !name.hasSuffix("."),
              !name.hasSuffix(".lock"), !name.contains("@{") else { return false }
        return name.utf8.allSatisfy {
            isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
                || $0 == UInt8(ascii: "/")
        }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func trimmedBlock(_ lines: ArraySlice<Substring>) -> String {
        var slice = lines
        while let first = slice.first, first.allSatisfy(\.isWhitespace) { slice = slice.dropFirst() }
        while let last = slice.last, last.allSatisfy(\.isWhitespace) { slice = slice.dropLast() }
        return slice.joined(separator: "\n").truncatedToUTF8(CommandGrammar.maxTextBytes)
    }
}

/// Tracks fenced code blocks and HTML comments across the lines of a Markdown document.
struct MarkdownLineScanner {
    private var fence: (character: Character, length: Int)?
    private var inHTMLComment = false

    /// Consumes `line` and returns whether it is plain text: not code, not a quote, not hidden.
    mutating func isPlainText(_ line: Substring) -> Bool {
        let indent = line.prefix(while: { $0 == " " || $0 == "\t" })
        let width = indent.reduce(0) { $0 + ($1 == "\t" ? 4 : 1) }
        let content = line.dropFirst(indent.count)
        if let open = fence {
            let run = content.prefix(while: { $0 == open.character })
            if width < 4, run.count >= open.length, content.dropFirst(run.count).allSatisfy(\.isWhitespace) {
                fence = nil
            }
            return false
        }
        if inHTMLComment {
            if content.firstRange(of: "-->") != nil { inHTMLComment = false }
            return false
        }
        if width >= 4 { return false }
        if let marker = content.first, marker == "`" || marker == "~" {
            let run = content.prefix(while: { $0 == marker })
            if run.count >= 3 {
                fence = (marker, run.count)
                return false
            }
        }
        if content.first == ">" { return false }
        if let open = Self.lastRange(of: "<!--", in: content) {
            if content[open.upperBound...].firstRange(of: "-->") == nil { inHTMLComment = true }
            if content.hasPrefix("<!--") { return false }
        }
        return true
    }
}

extension MarkdownLineScanner {
    static func lastRange(of needle: String, in text: Substring) -> Range<Substring.Index>? {
        var last: Range<Substring.Index>?
        var searchStart = text.startIndex
        while let found = text[searchStart...].firstRange(of: needle) {
            last = found
            searchStart = found.upperBound
        }
        return last
    }
}

/// Walks the whitespace-separated words of a command line while keeping the rest's original spacing.
struct WordCursor {
    private var rest: Substring

    init(_ text: Substring) { rest = text.drop(while: \.isWhitespace) }

    func peek() -> Substring? {
        guard !rest.isEmpty else { return nil }
        return rest.prefix(while: { !$0.isWhitespace })
    }

    mutating func advance() {
        rest = rest.drop(while: { !$0.isWhitespace }).drop(while: \.isWhitespace)
    }

    func remainder() -> Substring { rest }
}

extension StringProtocol {
    /// Returns the string without leading and trailing white space.
    func trimmingWhitespace() -> String {
        String(self.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }

    /// Returns the longest prefix of at most `maxBytes` UTF-8 bytes that ends on a character boundary.
    public func truncatedToUTF8(_ maxBytes: Int) -> String {
        if utf8.count <= maxBytes { return String(self) }
        var count = 0
        var end = startIndex
        for index in indices {
            let size = self[index].utf8.count
            if count + size > maxBytes { break }
            count += size
            end = self.index(after: index)
        }
        return String(self[startIndex..<end])
    }
}
