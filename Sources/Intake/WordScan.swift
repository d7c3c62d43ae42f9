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

    /// Returns whether `bytes` hold `lowercaseNeedle` in any case. The needle's second byte must be a letter;
    /// it is the one searched for, eight bytes at a time.
    static func containsCaseInsensitive(_ bytes: UnsafeRawBufferPointer, lowercaseNeedle needle: [UInt8]) -> Bool {
        guard needle.count >= 2, bytes.count >= needle.count else { return false }
        let probe = needle[1]
        func matches(at start: Int) -> Bool {
            guard start >= 0, start + needle.count <= bytes.count else { return false }
            for offset in 0..<needle.count where bytes[start + offset] | 0x20 != needle[offset] { return false }
            return true
        }
        var index = 1
        while index < bytes.count {
            if index + 8 <= bytes.count {
                let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) | (ones &* 0x20)
                if !contains(word, probe) {
                    index += 8
                    continue
                }
                for position in index..<(index + 8) where bytes[position] | 0x20 == probe && matches(at: position - 1) {
                    return true
                }
                index += 8
            } else {
                if bytes[index] | 0x20 == probe && matches(at: index - 1) { return true }
                index += 1
            }
        }
        return false
    }
}
