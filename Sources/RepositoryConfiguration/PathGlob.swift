/// A gitignore-like pattern matched against whole repository-relative paths, such as `.github/workflows/**`.
///
/// Paths use `/` between segments and are matched case-sensitively, character by character (Unicode scalars):
///
/// - `*` matches any run of characters within one segment (never `/`); `?` matches one character other than `/`.
/// - `**` as a whole segment matches zero or more segments: `a/**` matches `a` and everything under it,
///   `**/x` matches `x` at any depth, `a/**/b` matches `a/b`, `a/x/b`, `a/x/y/b`. Elsewhere (`a**b`) it is a `*`.
/// - `[abc]`, `[a-z]` match one character of the class; `[!a-z]` or `[^a-z]` one character outside it. A `]` just
///   after the opening `[` (or `[!`, `[^`) is a member. Classes never match `/`.
/// - `\` makes the next character literal: `\*` matches a `*`, `\[` a `[`.
/// - A pattern without `/` (such as `*.pem`) matches the last segment at any depth, as in gitignore.
/// - A pattern ending in `/` (such as `docs/`) matches that directory and everything under it; if it has no other
///   `/`, the directory may be at any depth (`docs/` matches `docs/a` and `src/docs/a`).
///
/// Matching takes time proportional to the pattern's length times the path's length, whatever the pattern:
/// there is no backtracking that can grow exponentially.
public struct PathGlob: Sendable, Hashable {
    /// The longest pattern accepted, in UTF-8 bytes.
    public static let maxBytes = 256

    /// The pattern as written.
    public let pattern: String
    /// The compiled segments; a pattern without `/` starts with a `**` segment.
    let segments: [Segment]

    /// Creates a glob from `pattern`.
    ///
    /// Refuses an empty pattern, one over ``maxBytes`` bytes, one containing NUL or a line break, an absolute path
    /// (leading `/`), empty (`a//b`), `.` and `..` segments, a trailing `\`, and an unclosed or reversed `[` class.
    public init(_ pattern: String) throws(RepositoryConfigurationError) {
        func refuse(_ problem: String) -> RepositoryConfigurationError {
            RepositoryConfigurationError(problem: "the glob `\(pattern.debugSafe)` \(problem)")
        }
        guard !pattern.isEmpty else { throw RepositoryConfigurationError(problem: "a glob must not be empty") }
        guard pattern.utf8.count <= Self.maxBytes else { throw refuse("is over \(Self.maxBytes) bytes") }
        guard !pattern.unicodeScalars.contains(where: { $0 == "\0" || $0 == "\n" || $0 == "\r" }) else {
            throw refuse("contains a NUL or a line break")
        }
        guard !pattern.hasPrefix("/") else { throw refuse("is an absolute path; write it relative to the repository root") }

        var text = Array(pattern.unicodeScalars)
        var directory = false
        if text.last == "/" {
            directory = true
            text.removeLast()
        }
        var rawSegments: [[Unicode.Scalar]] = [[]]
        var escaped = false
        for scalar in text {
            if escaped && scalar == "/" { throw refuse("escapes a `/`; a name cannot contain `/`") }
            if !escaped && scalar == "/" {
                rawSegments.append([])
            } else {
                rawSegments[rawSegments.count - 1].append(scalar)
            }
            escaped = !escaped && scalar == "\\"
        }
        if escaped { throw refuse("ends with a `\\` that escapes nothing") }

        var segments: [Segment] = []
        if rawSegments.count == 1 { segments.append(.globstar) }  // No `/`: match the base name at any depth.
        for raw in rawSegments {
            if raw.isEmpty { throw refuse("has an empty segment (`//`)") }
            if raw == ["."] || raw == [".", "."] { throw refuse("has a `\(String(String.UnicodeScalarView(raw)))` segment") }
            if raw == ["*", "*"] {
                if segments.last != .globstar { segments.append(.globstar) }
                continue
            }
            do {
                segments.append(.tokens(try Self.compile(raw)))
            } catch {
                throw refuse(error.problem)
            }
        }
        if directory && segments.last != .globstar { segments.append(.globstar) }
        self.pattern = pattern
        self.segments = segments
    }

    /// Returns whether `path`, a repository-relative path with `/` separators, matches the whole pattern.
    public func matches(_ path: String) -> Bool {
        var steps = 0
        return matches(path, steps: &steps)
    }

    /// Returns whether `path` matches, adding the work done to `steps` (for tests that bound the cost).
    package func matches(_ path: String, steps: inout Int) -> Bool {
        let pathSegments = path.split(separator: "/", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
        let count = pathSegments.count
        // reachable[j]: the pattern's segments so far match the path's first j segments.
        var reachable = [Bool](repeating: false, count: count + 1)
        reachable[0] = true
        for segment in segments {
            var next = [Bool](repeating: false, count: count + 1)
            var any = false
            switch segment {
            case .globstar:
                for j in 0...count {
                    steps += 1
                    if reachable[j] { any = true }
                    next[j] = any
                }
            case .tokens(let tokens):
                for j in 0..<count where reachable[j] {
                    steps += 1
                    if Self.match(tokens, pathSegments[j], steps: &steps) {
                        next[j + 1] = true
                        any = true
                    }
                }
            }
            guard any else { return false }
            reachable = next
        }
        return reachable[count]
    }

    // MARK: - Compiled form

    enum Segment: Sendable, Hashable {
        /// `**`: zero or more whole segments.
        case globstar
        /// A segment matched character by character.
        case tokens([Token])
    }

    enum Token: Sendable, Hashable {
        case literal(Unicode.Scalar)
        /// `?`
        case one
        /// `*`
        case star
        case characterClass(CharacterClass)
    }

    struct CharacterClass: Sendable, Hashable {
        var negated: Bool
        var ranges: [ClosedRange<UInt32>]

        func contains(_ scalar: Unicode.Scalar) -> Bool {
            guard scalar != "/" else { return false }
            return ranges.contains { $0.contains(scalar.value) } != negated
        }
    }

    private struct CompileError: Error { var problem: String }

    private static func compile(_ raw: [Unicode.Scalar]) throws(CompileError) -> [Token] {
        var tokens: [Token] = []
        var index = 0
        while index < raw.count {
            let scalar = raw[index]
            index += 1
            switch scalar {
            case "\\":
                tokens.append(.literal(raw[index]))  // A trailing `\` was refused before.
                index += 1
            case "?":
                tokens.append(.one)
            case "*":
                if tokens.last != .star { tokens.append(.star) }  // `**` inside a segment is one `*`.
            case "[":
                var negated = false
                if index < raw.count && (raw[index] == "!" || raw[index] == "^") {
                    negated = true
                    index += 1
                }
                var ranges: [ClosedRange<UInt32>] = []
                var first = true
                var closed = false
                while index < raw.count {
                    var low = raw[index]
                    index += 1
                    if low == "]" && !first {
                        closed = true
                        break
                    }
                    first = false
                    if low == "\\" {
                        guard index < raw.count else { break }
                        low = raw[index]
                        index += 1
                    }
                    var high = low
                    if index + 1 < raw.count && raw[index] == "-" && raw[index + 1] != "]" {
                        high = raw[index + 1]
                        index += 2
                        if high == "\\" {
                            guard index < raw.count else { break }
                            high = raw[index]
                            index += 1
                        }
                    }
                    guard low.value <= high.value else {
                        throw CompileError(problem: "has a reversed range `\(low)-\(high)` in a `[` class")
                    }
                    ranges.append(low.value...high.value)
                }
                guard closed else { throw CompileError(problem: "has a `[` class without its closing `]` (write `\\[` for a literal `[`)") }
                tokens.append(.characterClass(CharacterClass(negated: negated, ranges: ranges)))
            default:
                tokens.append(.literal(scalar))
            }
        }
        return tokens
    }

    /// Returns whether `tokens` match all of `text`: the classic wildcard walk that only ever resumes from the last
    /// `*`, so it takes at most `tokens.count × text.count` steps.
    private static func match(_ tokens: [Token], _ text: [Unicode.Scalar], steps: inout Int) -> Bool {
        var t = 0, s = 0
        var starToken = -1, starText = 0
        while s < text.count {
            steps += 1
            if t < tokens.count {
                switch tokens[t] {
                case .star:
                    starToken = t
                    starText = s
                    t += 1
                    continue
                case .one:
                    t += 1
                    s += 1
                    continue
                case .literal(let scalar) where scalar == text[s]:
                    t += 1
                    s += 1
                    continue
                case .characterClass(let set) where set.contains(text[s]):
                    t += 1
                    s += 1
                    continue
                default:
                    break
                }
            }
            guard starToken >= 0 else { return false }
            t = starToken + 1
            starText += 1
            s = starText
        }
        while t < tokens.count && tokens[t] == .star { t += 1 }
        return t == tokens.count
    }
}

extension String {
    /// The string with control characters shown escaped, for quoting untrusted text in messages.
    var debugSafe: String {
        var result = ""
        for scalar in unicodeScalars {
            if scalar.properties.generalCategory == .control {
                result += scalar.escaped(asASCII: true)
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
