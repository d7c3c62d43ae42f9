/// Validates a JSON document in one pass without allocating, and reads the few fields every delivery is
/// filed under: `action`, `installation.id`, `repository.id`.
///
/// Most deliveries need nothing more (a comment without a command, an event we do not handle), so they
/// skip building a decoder's view of a 16 KB document. The grammar is RFC 8259's, UTF-8 checked, with a
/// depth limit.
struct JSONProbe {
    /// What the probe read from a valid document.
    struct Fields: Equatable {
        var isObject = false
        var action: String?
        var installationID: Int64?
        var repositoryID: Int64?
    }

    static let maxDepth = 512

    /// Returns the fields of `bytes`, or `nil` when it is not one valid JSON value.
    static func probe(_ bytes: UnsafeRawBufferPointer) -> Fields? {
        var probe = JSONProbe(bytes: bytes)
        var fields = Fields()
        do {
            probe.skipWhitespace()
            try probe.value(depth: 0, context: .root, fields: &fields)
            probe.skipWhitespace()
            guard probe.index == bytes.count else { return nil }
            return fields
        } catch {
            return nil
        }
    }

    private struct Invalid: Error {}

    private enum Context { case root, topLevel, installation, repository, other }

    private let bytes: UnsafeRawBufferPointer
    private var index = 0

    private init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    /// Parses a value; `context` says whose value it is, so the wanted fields can be kept.
    private mutating func value(depth: Int, context: Context, fields: inout Fields) throws {
        guard depth <= Self.maxDepth, let byte = current else { throw Invalid() }
        switch byte {
        case UInt8(ascii: "{"):
            if context == .root { fields.isObject = true }
            try object(depth: depth + 1, context: context == .root ? .topLevel : context, fields: &fields)
        case UInt8(ascii: "["):
            try array(depth: depth + 1, fields: &fields)
        case UInt8(ascii: "\""):
            _ = try string()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default:
            _ = try number()
        }
    }

    private mutating func object(depth: Int, context: Context, fields: inout Fields) throws {
        index += 1
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            guard current == UInt8(ascii: "\"") else { throw Invalid() }
            let key = try string()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw Invalid() }
            index += 1
            skipWhitespace()
            // Keys are compared as bytes: no string is made for the hundreds of keys a payload has.
            switch context {
            case .topLevel where current == UInt8(ascii: "\"") && matches(key, "action"):
                if let range = try string() { fields.action = decodeString(range) }
            case .topLevel where current == UInt8(ascii: "{") && matches(key, "installation"):
                try object(depth: depth + 1, context: .installation, fields: &fields)
            case .topLevel where current == UInt8(ascii: "{") && matches(key, "repository"):
                try object(depth: depth + 1, context: .repository, fields: &fields)
            case .installation where startsNumber && matches(key, "id"), .repository where startsNumber && matches(key, "id"):
                let id = try number().flatMap(integer(in:))
                if context == .installation { fields.installationID = id } else { fields.repositoryID = id }
            default:
                try value(depth: depth, context: .other, fields: &fields)
            }
            skipWhitespace()
            guard let separator = current else { throw Invalid() }
            index += 1
            if separator == UInt8(ascii: "}") { return }
            guard separator == UInt8(ascii: ",") else { throw Invalid() }
            skipWhitespace()
        }
    }

    private mutating func array(depth: Int, fields: inout Fields) throws {
        index += 1
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            try value(depth: depth, context: .other, fields: &fields)
            skipWhitespace()
            guard let separator = current else { throw Invalid() }
            index += 1
            if separator == UInt8(ascii: "]") { return }
            guard separator == UInt8(ascii: ",") else { throw Invalid() }
            skipWhitespace()
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw Invalid() }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { throw Invalid() }
        index += count
    }

    /// Parses a number; returns its range when it is an integer (the only numbers read).
    private mutating func number() throws -> Range<Int>? {
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        guard let first = current, isDigit(first) else { throw Invalid() }
        index += 1
        if first != UInt8(ascii: "0") {
            while let byte = current, isDigit(byte) { index += 1 }
        }
        var integral = true
        if current == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard let byte = current, isDigit(byte) else { throw Invalid() }
            while let byte = current, isDigit(byte) { index += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            integral = false
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard let byte = current, isDigit(byte) else { throw Invalid() }
            while let byte = current, isDigit(byte) { index += 1 }
        }
        return integral ? start..<index : nil
    }

    /// Whether a number starts at the current byte.
    private var startsNumber: Bool { current.map { isDigit($0) || $0 == UInt8(ascii: "-") } ?? false }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// Parses a string; returns the range of its contents when it has no escapes (else `nil`, still valid).
    private mutating func string() throws -> Range<Int>? {
        index += 1
        let start = index
        var escaped = false
        while index < bytes.count {
            index = WordScan.nextSpecialInString(bytes, from: index)
            guard index < bytes.count else { break }
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return escaped ? nil : start..<(index - 1)
            case UInt8(ascii: "\\"):
                escaped = true
                index += 1
                guard let next = current else { throw Invalid() }
                switch next {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 1
                case UInt8(ascii: "u"):
                    guard index + 4 < bytes.count else { throw Invalid() }
                    for offset in 1...4 where !isHexDigit(bytes[index + offset]) { throw Invalid() }
                    index += 5
                default:
                    throw Invalid()
                }
            case 0..<0x20:
                throw Invalid()
            case 0x20..<0x80:
                index += 1
            default:
                index += try utf8SequenceLength(at: index)
            }
        }
        throw Invalid()
    }

    private func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte | 0x20)
    }

    /// Returns the length of the well-formed UTF-8 sequence at `position` (Unicode table 3-7).
    private func utf8SequenceLength(at position: Int) throws -> Int {
        let lead = bytes[position]
        func continuation(_ offset: Int, _ range: ClosedRange<UInt8> = 0x80...0xBF) throws {
            guard position + offset < bytes.count, range.contains(bytes[position + offset]) else { throw Invalid() }
        }
        switch lead {
        case 0xC2...0xDF:
            try continuation(1)
            return 2
        case 0xE0:
            try continuation(1, 0xA0...0xBF); try continuation(2)
            return 3
        case 0xE1...0xEC, 0xEE...0xEF:
            try continuation(1); try continuation(2)
            return 3
        case 0xED:
            try continuation(1, 0x80...0x9F); try continuation(2)
            return 3
        case 0xF0:
            try continuation(1, 0x90...0xBF); try continuation(2); try continuation(3)
            return 4
        case 0xF1...0xF3:
            try continuation(1); try continuation(2); try continuation(3)
            return 4
        case 0xF4:
            try continuation(1, 0x80...0x8F); try continuation(2); try continuation(3)
            return 4
        default:
            throw Invalid()
        }
    }

    /// Returns whether the key at `range` (`nil`: it had escapes) is `word`.
    private func matches(_ range: Range<Int>?, _ word: StaticString) -> Bool {
        guard let range, range.count == word.utf8CodeUnitCount else { return false }
        for offset in 0..<range.count where bytes[range.lowerBound + offset] != word.utf8Start[offset] { return false }
        return true
    }

    /// Returns the integer at `range` (an optional minus and digits), or `nil` when it does not fit 64 bits.
    private func integer(in range: Range<Int>) -> Int64? {
        let negative = bytes[range.lowerBound] == UInt8(ascii: "-")
        var value: Int64 = 0
        for index in (negative ? range.lowerBound + 1 : range.lowerBound)..<range.upperBound {
            let digit = Int64(bytes[index] &- UInt8(ascii: "0"))
            let (scaled, overflow) = value.multipliedReportingOverflow(by: 10)
            let (next, overflowAgain) = negative ? scaled.subtractingReportingOverflow(digit) : scaled.addingReportingOverflow(digit)
            guard !overflow, !overflowAgain else { return nil }
            value = next
        }
        return value
    }

    /// Returns the string at `range`, already checked as UTF-8 by ``string()``; `nil` past 64 bytes.
    private func decodeString(_ range: Range<Int>) -> String? {
        guard range.count <= 64 else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }
}
