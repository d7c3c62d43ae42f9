import COpenSSL

/// AES-256-GCM through the system OpenSSL: authenticated encryption for secrets kept at rest.
///
/// A sealed value is `nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`; the nonce is random per value. The
/// associated data is authenticated, not stored: opening with other associated data (another row or column)
/// fails, so a ciphertext copied elsewhere does not decrypt.
public enum AESGCM {
    /// Key, nonce and tag lengths in bytes.
    public static let keyLength = 32
    public static let nonceLength = 12
    public static let tagLength = 16

    /// Why a value cannot be sealed or opened; the description never holds key or plaintext.
    public struct Failure: Error, Sendable, Hashable, CustomStringConvertible {
        public enum Code: String, Sendable, Hashable {
            case badKey, tooShort, authenticationFailed, openSSL
        }

        public var code: Code
        public var description: String {
            switch code {
            case .badKey: "the key is not 32 bytes"
            case .tooShort: "the sealed value is shorter than a nonce and a tag"
            case .authenticationFailed: "the sealed value does not authenticate (another key, another place, or altered)"
            case .openSSL: "OpenSSL could not run AES-256-GCM"
            }
        }
    }

    /// Encrypts `plaintext` under `key`, authenticating `associatedData` too.
    public static func seal(_ plaintext: [UInt8], key: [UInt8], associatedData: [UInt8]) throws(Failure) -> [UInt8] {
        guard key.count == keyLength else { throw Failure(code: .badKey) }
        let nonce = try randomBytes(nonceLength)
        guard let context = EVP_CIPHER_CTX_new() else { throw Failure(code: .openSSL) }
        defer { EVP_CIPHER_CTX_free(context) }
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count + 16)
        var tag = [UInt8](repeating: 0, count: tagLength)
        var length: Int32 = 0
        var total = 0
        guard EVP_EncryptInit_ex(context, EVP_aes_256_gcm(), nil, nil, nil) == 1,
              EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_IVLEN, Int32(nonceLength), nil) == 1,
              EVP_EncryptInit_ex(context, nil, nil, key, nonce) == 1 else { throw Failure(code: .openSSL) }
        if !associatedData.isEmpty {
            guard EVP_EncryptUpdate(context, nil, &length, associatedData, Int32(associatedData.count)) == 1 else {
                throw Failure(code: .openSSL)
            }
        }
        let updated = ciphertext.withUnsafeMutableBufferPointer { out in
            plaintext.isEmpty ? 1 : EVP_EncryptUpdate(context, out.baseAddress, &length, plaintext, Int32(plaintext.count))
        }
        guard updated == 1 else { throw Failure(code: .openSSL) }
        total = plaintext.isEmpty ? 0 : Int(length)
        let finished = ciphertext.withUnsafeMutableBufferPointer { out in
            EVP_EncryptFinal_ex(context, out.baseAddress! + total, &length)
        }
        guard finished == 1 else { throw Failure(code: .openSSL) }
        total += Int(length)
        guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, Int32(tagLength), &tag) == 1 else { throw Failure(code: .openSSL) }
        return nonce + ciphertext.prefix(total) + tag
    }

    /// Decrypts a value ``seal(_:key:associatedData:)`` made with the same key and associated data.
    public static func open(_ sealed: [UInt8], key: [UInt8], associatedData: [UInt8]) throws(Failure) -> [UInt8] {
        guard key.count == keyLength else { throw Failure(code: .badKey) }
        guard sealed.count >= nonceLength + tagLength else { throw Failure(code: .tooShort) }
        let nonce = Array(sealed.prefix(nonceLength))
        var tag = Array(sealed.suffix(tagLength))
        let ciphertext = Array(sealed.dropFirst(nonceLength).dropLast(tagLength))
        guard let context = EVP_CIPHER_CTX_new() else { throw Failure(code: .openSSL) }
        defer { EVP_CIPHER_CTX_free(context) }
        var plaintext = [UInt8](repeating: 0, count: ciphertext.count + 16)
        var length: Int32 = 0
        var total = 0
        guard EVP_DecryptInit_ex(context, EVP_aes_256_gcm(), nil, nil, nil) == 1,
              EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_IVLEN, Int32(nonceLength), nil) == 1,
              EVP_DecryptInit_ex(context, nil, nil, key, nonce) == 1 else { throw Failure(code: .openSSL) }
        if !associatedData.isEmpty {
            guard EVP_DecryptUpdate(context, nil, &length, associatedData, Int32(associatedData.count)) == 1 else {
                throw Failure(code: .openSSL)
            }
        }
        if !ciphertext.isEmpty {
            let updated = plaintext.withUnsafeMutableBufferPointer { out in
                EVP_DecryptUpdate(context, out.baseAddress, &length, ciphertext, Int32(ciphertext.count))
            }
            guard updated == 1 else { throw Failure(code: .openSSL) }
            total = Int(length)
        }
        guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, Int32(tagLength), &tag) == 1 else { throw Failure(code: .openSSL) }
        let verified = plaintext.withUnsafeMutableBufferPointer { out in
            EVP_DecryptFinal_ex(context, out.baseAddress! + total, &length)
        }
        guard verified == 1 else { throw Failure(code: .authenticationFailed) }
        total += Int(length)
        return Array(plaintext.prefix(total))
    }

    /// Returns `count` cryptographically random bytes (`RAND_bytes`).
    public static func randomBytes(_ count: Int) throws(Failure) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&bytes, Int32(count)) == 1 else { throw Failure(code: .openSSL) }
        return bytes
    }
}
