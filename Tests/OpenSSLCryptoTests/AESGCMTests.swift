import Foundation
import OpenSSLCrypto
import Testing

/// AES-256-GCM and the key ring that encrypt user tokens at rest (issue 20).
@Suite(.timeLimit(.minutes(2))) struct AESGCMTests {
    static let key = [UInt8](repeating: 7, count: 32)

    /// NIST's GCM test case 16 (AES-256, 60-byte plaintext, 20 bytes of associated data): the ciphertext and tag
    /// come out as published, so this is AES-256-GCM and not merely something that round-trips.
    @Test func openingNISTsSealedValueGivesItsPlaintext() throws {
        let key = Hex.decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")!
        let nonce = Hex.decode("cafebabefacedbaddecaf888")!
        let plaintext = Hex.decode("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")!
        let aad = Hex.decode("feedfacedeadbeeffeedfacedeadbeefabaddad2")!
        let ciphertext = Hex.decode("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662")!
        let tag = Hex.decode("76fc6ece0f4e1768cddf8853bb2d551b")!
        #expect(try AESGCM.open(nonce + ciphertext + tag, key: key, associatedData: aad) == plaintext)
        var altered = nonce + ciphertext + tag
        altered[20] ^= 1
        #expect(throws: AESGCM.Failure.self) { try AESGCM.open(altered, key: key, associatedData: aad) }
    }

    @Test func sealedValuesOpenOnlyWithTheirKeyAndPlace() throws {
        let secret = Array("ghu_0123456789abcdef".utf8)
        let sealed = try AESGCM.seal(secret, key: Self.key, associatedData: Array("user_tokens.access_token:1".utf8))
        #expect(sealed.count == 12 + secret.count + 16)
        #expect(!String(decoding: sealed, as: UTF8.self).contains("ghu_"))
        #expect(try AESGCM.open(sealed, key: Self.key, associatedData: Array("user_tokens.access_token:1".utf8)) == secret)
        // Another row, another key, a flipped bit: refused.
        #expect(throws: AESGCM.Failure.self) {
            try AESGCM.open(sealed, key: Self.key, associatedData: Array("user_tokens.access_token:2".utf8))
        }
        #expect(throws: AESGCM.Failure.self) {
            try AESGCM.open(sealed, key: [UInt8](repeating: 8, count: 32), associatedData: Array("user_tokens.access_token:1".utf8))
        }
        var flipped = sealed
        flipped[flipped.count - 1] ^= 0x80
        #expect(throws: AESGCM.Failure.self) {
            try AESGCM.open(flipped, key: Self.key, associatedData: Array("user_tokens.access_token:1".utf8))
        }
        // A fresh nonce per value: sealing twice gives two values.
        #expect(try AESGCM.seal(secret, key: Self.key, associatedData: []) != AESGCM.seal(secret, key: Self.key, associatedData: []))
        #expect(try AESGCM.open(try AESGCM.seal([], key: Self.key, associatedData: []), key: Self.key, associatedData: []) == [])
    }

    @Test func theRingEncryptsWithTheFirstKeyAndDecryptsWithAny() throws {
        let oldEntry = try KeyRing.newEntry(id: "old")
        let old = try KeyRing(parsing: oldEntry)
        let sealed = try old.seal(Array("ghr_refresh".utf8), place: "user_tokens.refresh_token:3")
        #expect(sealed.keyID == "old")
        let both = try KeyRing(parsing: try KeyRing.newEntry(id: "new") + ", " + oldEntry)
        #expect(both.current.id == "new")
        #expect(try both.open(sealed, place: "user_tokens.refresh_token:3") == Array("ghr_refresh".utf8))
        #expect(try both.seal([1], place: "x").keyID == "new")
        let newOnly = try KeyRing(parsing: try KeyRing.newEntry(id: "new"))
        #expect(throws: KeyRing.Failure.self) { try newOnly.open(sealed, place: "user_tokens.refresh_token:3") }
        #expect("\(both.current)" == "key new")
    }

    @Test(arguments: ["", "nocolon", "BAD:" + Data(count: 32).base64EncodedString(), "k:" + Data(count: 16).base64EncodedString(),
                      "k:not-base64!", "a:" + Data(count: 32).base64EncodedString() + ",a:" + Data(count: 32).base64EncodedString()])
    func badSettingsAreRefusedWithoutTheKey(_ text: String) {
        #expect(throws: KeyRing.Failure.self) { try KeyRing(parsing: text) }
    }
}
