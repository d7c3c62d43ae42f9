/// Splits a SQL script into statements at top-level semicolons.
///
/// PostgreSQL's extended protocol takes one statement per query, so a migration file is run statement by
/// statement. Semicolons inside quotes, quoted identifiers, dollar-quoted bodies and comments do not split.
public enum SQLStatementSplitter {
    /// Returns the statements of `script`, trimmed, without empty ones.
    public static func split(_ script: String) -> [String] {
        let bytes = Array(script.utf8)
        var statements: [String] = []
        var start = 0
        var index = 0
        var hasCode = false
        func flush(upTo end: Int) {
            if hasCode {
                let text = String(decoding: bytes[start..<end], as: UTF8.self)
                let trimmed = text.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()
                statements.append(String(trimmed))
            }
            hasCode = false
        }
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "-") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "-"):
                while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
                continue
            case UInt8(ascii: "/") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "*"):
                var depth = 1
                index += 2
                while index < bytes.count, depth > 0 {
                    if bytes[index] == UInt8(ascii: "/"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "*") {
                        depth += 1
                        index += 2
                    } else if bytes[index] == UInt8(ascii: "*"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "/") {
                        depth -= 1
                        index += 2
                    } else {
                        index += 1
                    }
                }
                continue
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                hasCode = true
                let backslashEscapes = byte == UInt8(ascii: "'") && index > 0
                    && (bytes[index - 1] == UInt8(ascii: "E") || bytes[index - 1] == UInt8(ascii: "e"))
                index += 1
                while index < bytes.count {
                    if backslashEscapes, bytes[index] == UInt8(ascii: "\\") {
                        index += 2
                        continue
                    }
                    if bytes[index] == byte {
                        if index + 1 < bytes.count, bytes[index + 1] == byte {
                            index += 2
                            continue
                        }
                        break
                    }
                    index += 1
                }
                index += 1
                continue
            case UInt8(ascii: "$"):
                hasCode = true
                if let tagEnd = dollarTagEnd(bytes, from: index) {
                    let tag = Array(bytes[index...tagEnd])
                    var search = tagEnd + 1
                    var closed = false
                    while search + tag.count <= bytes.count {
                        if bytes[search] == UInt8(ascii: "$"), Array(bytes[search..<(search + tag.count)]) == tag {
                            index = search + tag.count
                            closed = true
                            break
                        }
                        search += 1
                    }
                    if !closed { index = bytes.count }
                    continue
                }
            case UInt8(ascii: ";"):
                flush(upTo: index)
                start = index + 1
                index += 1
                continue
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                break
            default:
                hasCode = true
            }
            index += 1
        }
        flush(upTo: bytes.count)
        return statements
    }

    /// Returns the index of the closing `$` of a dollar-quote tag (`$$` or `$tag$`) that opens at `start`.
    private static func dollarTagEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        // `$1` is a parameter, not a tag; a tag may not start with a digit.
        var index = start + 1
        if index < bytes.count, bytes[index] == UInt8(ascii: "$") { return index }
        guard index < bytes.count, isTagStart(bytes[index]) else { return nil }
        while index < bytes.count, isTagByte(bytes[index]) { index += 1 }
        return index < bytes.count && bytes[index] == UInt8(ascii: "$") ? index : nil
    }

    private static func isTagStart(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte | 0x20) || byte == UInt8(ascii: "_") || byte >= 0x80
    }

    private static func isTagByte(_ byte: UInt8) -> Bool {
        isTagStart(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
