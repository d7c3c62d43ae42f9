/// Byte searches eight bytes at a time (SWAR: SIMD within a register) over unaligned loads.
enum WordScan {
    static let ones: UInt64 = 0x0101_0101_0101_0101
    static let highs: UInt64 = 0x8080_8080_8080_8080

    /// Returns whether any byte of `word` equals `byte`.
    @inline(__always)
    static func contains(_ word: UInt64, _ byte: UInt8) -> Bool {
        let x = word ^ (ones &* UInt64(byte))
        return (x &- ones) & ~x & highs != 0
    }

    /// Returns whether any byte of `word` is below 0x20 or above 0x7F.
    @inline(__always)
    static func hasControlOrNonASCII(_ word: UInt64) -> Bool {
        ((word &- ones &* 0x20) | word) & highs != 0
    }

    /// Returns the index of the first byte at or after `start` that a JSON string scan must look at
    /// (a quote, a backslash, a control byte or a non-ASCII byte), or `bytes.count`.
    @inline(__always)
    static func nextSpecialInString(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        var index = start
        while index + 8 <= bytes.count {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            if contains(word, UInt8(ascii: "\"")) || contains(word, UInt8(ascii: "\\")) || hasControlOrNonASCII(word) {
                break
            }
            index += 8
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 || byte >= 0x80 { return index }
            index += 1
        }
        return index
    }

    /// Letters from rarest to most common in English text and JSON keys: the scan looks for the needle's
    /// rarest letter, so ordinary text seldom leaves the eight-bytes-at-a-time path.
    static let rarity: [UInt8] = Array("zqxjkyvbpgwfmhulcdrnsiotae".utf8)

    /// Returns the offset of the needle's rarest letter (or 0 when it has none).
    static func probeOffset(_ needle: [UInt8]) -> Int {
        var best = 0
        var bestRank = Int.max
        for (offset, byte) in needle.enumerated() {
            if let rank = rarity.firstIndex(of: byte), rank < bestRank {
                best = offset
                bestRank = rank
            }
        }
        return best
    }

    /// Returns whether `bytes` hold `lowercaseNeedle` (ASCII letters) in any case. Its rarest letter is the
    /// byte searched for, eight bytes at a time.
    static func containsCaseInsensitive(_ bytes: UnsafeRawBufferPointer, lowercaseNeedle needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, bytes.count >= needle.count else { return false }
        let offset = probeOffset(needle)
        let probe = needle[offset]
        func matches(at start: Int) -> Bool {
            guard start >= 0, start + needle.count <= bytes.count else { return false }
            for index in 0..<needle.count where bytes[start + index] | 0x20 != needle[index] { return false }
            return true
        }
        var index = offset
        let end = bytes.count - (needle.count - 1 - offset)
        while index < end {
            if index + 8 <= end {
                let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) | (ones &* 0x20)
                if !contains(word, probe) {
                    index += 8
                    continue
                }
                for position in index..<(index + 8) where bytes[position] | 0x20 == probe && matches(at: position - offset) {
                    return true
                }
                index += 8
            } else {
                if bytes[index] | 0x20 == probe && matches(at: index - offset) { return true }
                index += 1
            }
        }
        return false
    }
}
