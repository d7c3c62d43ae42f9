import COpenSSL

/// SHA-256 digests through the system OpenSSL.
public enum SHA256Digest {
    /// Returns the SHA-256 digest of `data`.
    public static func hash(_ data: some ContiguousBytes) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        data.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { out in
                _ = SHA256(input.baseAddress?.assumingMemoryBound(to: UInt8.self), input.count,
                           out.baseAddress?.assumingMemoryBound(to: UInt8.self))
            }
        }
        return output
    }

    /// Returns the lowercase hexadecimal SHA-256 digest of a UTF-8 string.
    public static func hexHash(_ string: String) -> String {
        Hex.encode(hash(Array(string.utf8)))
    }
}

/// Lowercase hexadecimal encoding and decoding.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    /// Returns `bytes` as lowercase hexadecimal.
    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Returns the bytes a hexadecimal string encodes (either case), or `nil` if it is not hexadecimal.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        decode(utf8: Array(text.utf8))
    }

    /// Returns the bytes the hexadecimal digits `utf8` encode (either case), or `nil` if any is not one.
    public static func decode(utf8: [UInt8]) -> [UInt8]? {
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = value(utf8[index]), let low = value(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
