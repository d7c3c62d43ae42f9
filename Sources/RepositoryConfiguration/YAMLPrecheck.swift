/// Checks run on the raw text before Yams reads it, for the two things Yams does not bound.
///
/// 1. Alias bombs. Yams resolves each alias (`*x`) to the anchored node while composing, and hashes whole mapping
///    keys to find duplicates, so `? *bomb` over nested aliases costs exponential time before any node is seen.
///    An alias is harmless without an anchor (`&x`), so text that may hold both is refused here; text that may
///    hold only anchors is composed and any real anchor is refused on the nodes (see `SettingsDecoder`).
/// 2. Stack depth. Yams composes recursively; libyaml stops at 1,000 levels, which is too deep for a 512 KB
///    thread stack. The depth is bounded here from above: block nesting by the indentation, flow nesting by the
///    number of `[` and `{` that start a node.
///
/// Neither check parses YAML: both look at characters where a node could start (after line breaks, indentation,
/// `- `, `? `, `: `, `[`, `{`, `,` or a tag), which is a superset of where YAML really starts one. Text inside
/// quotes or block scalars can be flagged needlessly; real anchors, aliases and brackets are never missed.
enum YAMLPrecheck {
    /// The deepest indentation accepted, counting `- `, `? ` and `: ` at the start of a line as indentation.
    static let maxIndent = 100
    /// The most `[` and `{` accepted where a node could start.
    static let maxFlowOpeners = 100

    static let aliasProblem = "YAML anchors (`&name`) and aliases (`*name`) are not allowed; quote a value that starts with `&` or `*`, such as \"*.pem\""

    static func check(_ text: String) throws(RepositoryConfigurationError) {
        let scalars = Array(text.unicodeScalars)
        var line = 1
        var firstAnchorLine: Int?
        var firstAliasLine: Int?
        var flowOpeners = 0
        var index = 0
        var lineStart = true
        while index < scalars.count {
            let scalar = scalars[index]
            if isBreak(scalar) {
                if !(scalar == "\r" && index + 1 < scalars.count && scalars[index + 1] == "\n") { line += 1 }
                lineStart = true
                index += 1
                continue
            }
            if lineStart {
                lineStart = false
                let column = indentation(scalars, from: index)
                if column > maxIndent {
                    throw RepositoryConfigurationError(line: line, problem: "the line is indented or nested more than \(maxIndent) columns deep")
                }
            }
            switch scalar {
            case "&", "*":
                let next = index + 1 < scalars.count ? scalars[index + 1] : " "
                if !isBlank(next) && !isBreak(next) && !",[]{}".unicodeScalars.contains(next) && startsNode(scalars, at: index) {
                    if scalar == "&" {
                        firstAnchorLine = firstAnchorLine ?? line
                    } else {
                        firstAliasLine = firstAliasLine ?? line
                    }
                }
            case "[", "{":
                if startsNode(scalars, at: index) {
                    flowOpeners += 1
                    if flowOpeners > maxFlowOpeners {
                        throw RepositoryConfigurationError(line: line, problem: "the file has more than \(maxFlowOpeners) `[` or `{`; write long lists one `- item` per line")
                    }
                }
            default:
                break
            }
            index += 1
        }
        if let firstAnchorLine, let firstAliasLine {
            throw RepositoryConfigurationError(line: min(firstAnchorLine, firstAliasLine), problem: aliasProblem)
        }
    }

    /// Returns the column after the line's indentation and any leading `- `, `? `, `: ` or `--- ` indicators,
    /// or 0 for a line holding only blanks or a comment.
    private static func indentation(_ scalars: [Unicode.Scalar], from start: Int) -> Int {
        var index = start
        var sawIndicator = false
        while index < scalars.count {
            let scalar = scalars[index]
            if isBlank(scalar) {
                index += 1
                continue
            }
            var length = 0
            if scalar == "-" || scalar == "?" || scalar == ":" {
                length = 1
            }
            if scalar == "-" && index + 2 < scalars.count && scalars[index + 1] == "-" && scalars[index + 2] == "-" {
                length = 3
            }
            let after = index + length
            if length > 0 && (after == scalars.count || isBlank(scalars[after]) || isBreak(scalars[after])) {
                sawIndicator = true
                index = after
                continue
            }
            if isBreak(scalar) || (scalar == "#" && !sawIndicator) { return sawIndicator ? index - start : 0 }
            return index - start
        }
        return sawIndicator ? index - start : 0
    }

    /// Returns whether a node could start at `index`: at the start of a line or after indentation, right after `[`,
    /// `{`, `,`, `:` or `?`, or after blanks that follow `-`, `?`, `:`, `,`, `[`, `{` or a tag or anchor.
    private static func startsNode(_ scalars: [Unicode.Scalar], at index: Int) -> Bool {
        guard index > 0 else { return true }
        let previous = scalars[index - 1]
        // In flow context libyaml reads `?` and `:` as indicators even when no blank follows.
        if isBreak(previous) || "[{,:?".unicodeScalars.contains(previous) { return true }
        guard isBlank(previous) else { return false }
        var end = index - 1
        while end >= 0 && isBlank(scalars[end]) { end -= 1 }
        guard end >= 0, !isBreak(scalars[end]) else { return true }
        if "-?:,[{".unicodeScalars.contains(scalars[end]) { return true }
        var start = end
        while start > 0 && !isBlank(scalars[start - 1]) && !isBreak(scalars[start - 1]) { start -= 1 }
        return scalars[start...end].contains("!") || scalars[start] == "&"
    }

    /// Returns whether libyaml treats `scalar` as a line break.
    static func isBreak(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "\n" || scalar == "\r" || scalar == "\u{85}" || scalar == "\u{2028}" || scalar == "\u{2029}"
    }

    /// Returns whether `scalar` separates tokens (a byte order mark counts, to stay on the safe side).
    private static func isBlank(_ scalar: Unicode.Scalar) -> Bool {
        scalar == " " || scalar == "\t" || scalar == "\u{FEFF}"
    }
}
