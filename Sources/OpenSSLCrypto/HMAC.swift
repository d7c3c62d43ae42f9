import COpenSSL

/// HMAC-SHA256 and constant-time comparison through the system OpenSSL.
public enum HMACSHA256 {
    /// Byte length of an HMAC-SHA256 digest.
    public static let digestLength = 32

    /// Returns the HMAC-SHA256 of `message` under `key`.
    public static func authenticationCode(for message: some ContiguousBytes, key: some ContiguousBytes) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var outputLength: UInt32 = 0
        key.withUnsafeBytes { keyBytes in
            message.withUnsafeBytes { messageBytes in
                output.withUnsafeMutableBytes { out in
                    // One-shot HMAC() is not deprecated in OpenSSL 3 and allocates nothing we must free.
                    _ = HMAC(
                        EVP_sha256(),
                        keyBytes.baseAddress, Int32(keyBytes.count),
                        messageBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), messageBytes.count,
                        out.baseAddress?.assumingMemoryBound(to: UInt8.self), &outputLength)
                }
            }
        }
        return Array(output.prefix(Int(outputLength)))
    }

    /// Returns whether `code` is the HMAC-SHA256 of `message` under `key`, compared in constant time.
    public static func isValid(code: [UInt8], for message: some ContiguousBytes, key: some ContiguousBytes) -> Bool {
        let expected = authenticationCode(for: message, key: key)
        return ConstantTime.equals(expected, code)
    }
}

/// Comparisons whose duration does not depend on where two byte strings differ.
public enum ConstantTime {
    /// Returns whether `lhs` and `rhs` hold the same bytes, using `CRYPTO_memcmp`.
    ///
    /// Lengths are public (a digest's length is), so a length mismatch returns early.
    public static func equals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.isEmpty { return true }
        return lhs.withUnsafeBytes { l in
            rhs.withUnsafeBytes { r in
                CRYPTO_memcmp(l.baseAddress, r.baseAddress, l.count) == 0
            }
        }
    }
}

/// Byte containers that can lend their contiguous storage.
public protocol ContiguousBytes {
    /// Calls `body` with the bytes.
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}
extension UnsafeRawBufferPointer: ContiguousBytes {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self) }
}
