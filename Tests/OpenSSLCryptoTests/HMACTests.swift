import Foundation
import OpenSSLCrypto
import Testing
import TestSupport

struct HMACVector: Decodable {
    var source: String
    var secret: String
    var body_base64: String
    var x_hub_signature_256: String
}

@Suite(.timeLimit(.minutes(10))) struct HMACTests {
    static let vectors: [HMACVector] = {
        let data = Data(try! TestEnvironment.fixture("hmac-test-vectors.json"))
        return try! JSONDecoder().decode([HMACVector].self, from: data)
    }()

    @Test(arguments: HMACTests.vectors.indices)
    func githubVectors(index: Int) throws {
        let vector = Self.vectors[index]
        let body = Array(Data(base64Encoded: vector.body_base64)!)
        let code = HMACSHA256.authenticationCode(for: body, key: Array(vector.secret.utf8))
        #expect("sha256=" + Hex.encode(code) == vector.x_hub_signature_256, "\(vector.source)")
        #expect(HMACSHA256.isValid(code: code, for: body, key: Array(vector.secret.utf8)))
        var tampered = body
        tampered[0] ^= 1
        #expect(!HMACSHA256.isValid(code: code, for: tampered, key: Array(vector.secret.utf8)))
        #expect(!HMACSHA256.isValid(code: code, for: body, key: Array((vector.secret + "x").utf8)))
    }

    @Test func fourVectorsArePresent() {
        #expect(Self.vectors.count == 4)
    }

    @Test func constantTimeComparison() {
        #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
        #expect(ConstantTime.equals([], []))
    }

    @Test func hexRoundTrip() {
        let bytes: [UInt8] = [0, 1, 0x7f, 0x80, 0xff]
        #expect(Hex.encode(bytes) == "00017f80ff")
        #expect(Hex.decode("00017F80ff") == bytes)
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
    }

    @Test func sha256KnownAnswer() {
        #expect(SHA256Digest.hexHash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
