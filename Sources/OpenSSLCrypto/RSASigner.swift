import COpenSSL

/// An error from loading, generating or using an RSA key. Its description is one line and never
/// contains key material.
public struct RSAKeyError: Error, CustomStringConvertible, Sendable {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        /// The PEM text could not be parsed as a private or public key.
        public static let unreadableKey = Code(raw: "unreadableKey")
        /// The key parsed but is not an RSA key.
        public static let notRSA = Code(raw: "notRSA")
        /// Signing, verifying, generating or exporting failed inside OpenSSL.
        public static let operationFailed = Code(raw: "operationFailed")
        public var description: String { raw }
    }

    /// The kind of failure.
    public var code: Code
    /// A one-line explanation (OpenSSL's reason where there is one).
    public var reason: String

    public var description: String { "RSA key error (\(code)): \(reason)" }

    init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    static func openSSL(_ code: Code, _ what: String) -> RSAKeyError {
        RSAKeyError(code, "\(what): \(drainOpenSSLErrors())")
    }
}

/// Returns the last OpenSSL error of this thread's queue as text and clears the queue.
func drainOpenSSLErrors() -> String {
    var last: UInt = 0
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        last = code
    }
    guard last != 0 else { return "no OpenSSL error reported" }
    var buffer = [CChar](repeating: 0, count: 256)
    ERR_error_string_n(last, &buffer, buffer.count)
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A passphrase callback that refuses: encrypted PEM files fail instead of prompting on a terminal.
private let refusePassphrase: @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32, UnsafeMutableRawPointer?) -> Int32 = { _, _, _, _ in 0 }

/// Reads a PEM into an `EVP_PKEY`. The BIO lives only inside the buffer closure (`BIO_new_mem_buf`
/// does not copy).
private func readPEM(_ pem: String, isPrivate: Bool) -> OpaquePointer? {
    ERR_clear_error()
    let bytes = Array(pem.utf8)
    return bytes.withUnsafeBytes { raw -> OpaquePointer? in
        guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
        defer { BIO_free(bio) }
        if isPrivate {
            return PEM_read_bio_PrivateKey(bio, nil, refusePassphrase, nil)
        } else {
            return PEM_read_bio_PUBKEY(bio, nil, refusePassphrase, nil)
        }
    }
}

/// Writes with `write` into a memory BIO and returns its contents as text.
private func writePEM(_ write: (OpaquePointer) -> Int32) throws(RSAKeyError) -> String {
    guard let bio = BIO_new(BIO_s_mem()) else { throw .openSSL(.operationFailed, "BIO_new") }
    defer { BIO_free(bio) }
    guard write(bio) == 1 else { throw .openSSL(.operationFailed, "PEM export") }
    var data: UnsafeMutablePointer<CChar>? = nil
    let length = asynccode_bio_get_mem_data(bio, &data)
    guard length > 0, let data else { throw .openSSL(.operationFailed, "PEM export is empty") }
    return data.withMemoryRebound(to: UInt8.self, capacity: length) {
        String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
    }
}

/// An RSA private key held by OpenSSL, for RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signatures.
public final class RSAPrivateKey: @unchecked Sendable {
    // EVP_PKEY is immutable once loaded; OpenSSL 3 allows concurrent signing with one key.
    let key: OpaquePointer

    /// Creates a key from a PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`) PEM.
    public init(pemRepresentation pem: String) throws(RSAKeyError) {
        guard let key = readPEM(pem, isPrivate: true) else {
            throw .openSSL(.unreadableKey, "not a readable unencrypted PEM private key")
        }
        guard EVP_PKEY_get_base_id(key) == NID_rsaEncryption else {
            EVP_PKEY_free(key)
            throw RSAKeyError(.notRSA, "the PEM holds a non-RSA private key; GitHub App keys are RSA")
        }
        self.key = key
    }

    private init(owning key: OpaquePointer) { self.key = key }

    deinit { EVP_PKEY_free(key) }

    /// Generates a new RSA key pair with OpenSSL (2048 bits unless told otherwise).
    public static func generate(bits: Int = 2048) throws(RSAKeyError) -> RSAPrivateKey {
        ERR_clear_error()
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "RSA", nil) else {
            throw .openSSL(.operationFailed, "EVP_PKEY_CTX_new_from_name")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1,
              EVP_PKEY_CTX_set_rsa_keygen_bits(context, Int32(bits)) == 1 else {
            throw .openSSL(.operationFailed, "RSA key generation setup")
        }
        var key: OpaquePointer? = nil
        guard EVP_PKEY_generate(context, &key) == 1, let key else {
            throw .openSSL(.operationFailed, "RSA key generation")
        }
        return RSAPrivateKey(owning: key)
    }

    /// Returns the RS256 signature of `message`.
    public func signSHA256(_ message: [UInt8]) throws(RSAKeyError) -> [UInt8] {
        ERR_clear_error()
        guard let context = EVP_MD_CTX_new() else { throw .openSSL(.operationFailed, "EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit(context, nil, EVP_sha256(), nil, key) == 1 else {
            throw .openSSL(.operationFailed, "EVP_DigestSignInit")
        }
        var length = 0
        guard EVP_DigestSign(context, nil, &length, message, message.count) == 1 else {
            throw .openSSL(.operationFailed, "EVP_DigestSign (length)")
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &signature, &length, message, message.count) == 1 else {
            throw .openSSL(.operationFailed, "EVP_DigestSign")
        }
        return Array(signature.prefix(length))
    }

    /// Returns the key as a PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`), the form GitHub hands out.
    public func pkcs1PEMRepresentation() throws(RSAKeyError) -> String {
        try writePEM { PEM_write_bio_PrivateKey_traditional($0, key, nil, nil, 0, nil, nil) }
    }

    /// Returns the key as a PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    public func pkcs8PEMRepresentation() throws(RSAKeyError) -> String {
        try writePEM { PEM_write_bio_PKCS8PrivateKey($0, key, nil, nil, 0, nil, nil) }
    }

    /// Returns the public half as a SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`).
    public func publicKeyPEMRepresentation() throws(RSAKeyError) -> String {
        try writePEM { PEM_write_bio_PUBKEY($0, key) }
    }

    /// Returns the public half.
    public func publicKey() throws(RSAKeyError) -> RSAPublicKey {
        try RSAPublicKey(pemRepresentation: publicKeyPEMRepresentation())
    }
}

/// An RSA public key held by OpenSSL, for checking RS256 signatures.
public final class RSAPublicKey: @unchecked Sendable {
    let key: OpaquePointer

    /// Creates a key from a `BEGIN PUBLIC KEY` PEM.
    public init(pemRepresentation pem: String) throws(RSAKeyError) {
        guard let key = readPEM(pem, isPrivate: false) else {
            throw .openSSL(.unreadableKey, "not a readable PEM public key")
        }
        guard EVP_PKEY_get_base_id(key) == NID_rsaEncryption else {
            EVP_PKEY_free(key)
            throw RSAKeyError(.notRSA, "the PEM holds a non-RSA public key")
        }
        self.key = key
    }

    deinit { EVP_PKEY_free(key) }

    /// Returns whether `signature` is a valid RS256 signature of `message` by this key.
    public func isValidSHA256Signature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context); ERR_clear_error() }
        guard EVP_DigestVerifyInit(context, nil, EVP_sha256(), nil, key) == 1 else { return false }
        return EVP_DigestVerify(context, signature, signature.count, message, message.count) == 1
    }
}
