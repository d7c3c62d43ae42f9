import Foundation
import GitHub
import GitHubSimulator
import OpenSSLCrypto
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2))) struct AppJWTTests {
    /// Generates a key with the openssl CLI: `pkcs1` → `BEGIN RSA PRIVATE KEY`, else PKCS#8.
    static func generateKey(pkcs1: Bool, in directory: String) async throws -> (keyPath: String, publicPath: String) {
        let keyPath = "\(directory)/key-\(pkcs1 ? "pkcs1" : "pkcs8").pem"
        let publicPath = "\(directory)/public-\(pkcs1 ? "pkcs1" : "pkcs8").pem"
        let generate = pkcs1
            ? ["openssl", "genrsa", "-traditional", "-out", keyPath, "2048"]
            : ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", keyPath]
        let generated = try await run(generate)
        try #require(generated.status == 0, "\(generated.output)")
        let exported = try await run(["openssl", "rsa", "-in", keyPath, "-pubout", "-out", publicPath])
        try #require(exported.status == 0, "\(exported.output)")
        return (keyPath, publicPath)
    }

    @Test(arguments: [true, false])
    func jwtVerifiesWithOpenSSLCLIAndHasGitHubClaims(pkcs1: Bool) async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (keyPath, publicPath) = try await Self.generateKey(pkcs1: pkcs1, in: directory)
        let pem = try String(contentsOfFile: keyPath, encoding: .utf8)
        #expect(pem.hasPrefix(pkcs1 ? "-----BEGIN RSA PRIVATE KEY-----" : "-----BEGIN PRIVATE KEY-----"))

        let signer = try AppJWTSigner(issuer: "12345", privateKeyPath: keyPath)
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let jwt = try signer.makeJWT(now: now)
        let parts = jwt.split(separator: ".").map(String.init)
        try #require(parts.count == 3)

        // Signature checked by the openssl CLI.
        try Data("\(parts[0]).\(parts[1])".utf8).write(to: URL(fileURLWithPath: "\(directory)/input"))
        try Data(try #require(Base64URL.decode(parts[2]))).write(to: URL(fileURLWithPath: "\(directory)/signature"))
        let verified = try await run(["openssl", "dgst", "-sha256", "-verify", publicPath, "-signature", "\(directory)/signature", "\(directory)/input"])
        #expect(verified.status == 0)
        #expect(verified.output.contains("Verified OK"))

        // A tampered payload does not verify.
        try Data("\(parts[0]).\(parts[1])x".utf8).write(to: URL(fileURLWithPath: "\(directory)/input"))
        let tampered = try await run(["openssl", "dgst", "-sha256", "-verify", publicPath, "-signature", "\(directory)/signature", "\(directory)/input"])
        #expect(tampered.status != 0)

        let header = try JSONSerialization.jsonObject(with: Data(try #require(Base64URL.decode(parts[0])))) as? [String: Any]
        #expect(header?["alg"] as? String == "RS256")
        #expect(header?["typ"] as? String == "JWT")
        let payloadBytes = try #require(Base64URL.decode(parts[1]))
        let claims = try #require(try JSONSerialization.jsonObject(with: Data(payloadBytes)) as? [String: Any])
        #expect((claims["iat"] as? NSNumber)?.intValue == 1_700_000_000 - 60)
        #expect((claims["exp"] as? NSNumber)?.intValue == 1_700_000_000 + 540)
        #expect((claims["iss"] as? NSNumber)?.intValue == 12345)
    }

    @Test func clientIDIssuerIsAString() throws {
        let key = try RSAPrivateKey.generate()
        let signer = try AppJWTSigner(issuer: "Iv1.abc123", privateKeyPEM: key.pkcs8PEMRepresentation())
        let parts = try signer.makeJWT().split(separator: ".")
        let claims = try JSONSerialization.jsonObject(with: Data(try #require(Base64URL.decode(parts[1])))) as? [String: Any]
        #expect(claims?["iss"] as? String == "Iv1.abc123")
    }

    @Test func unreadableKeyFailsWithOneLine() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Garbage.
        let garbage = #expect(throws: GitHubError.self) {
            try AppJWTSigner(issuer: "1", privateKeyPEM: "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n")
        }
        #expect(garbage?.code == .invalidPrivateKey)
        #expect(garbage?.description.contains("\n") == false)
        #expect(garbage?.description.contains("not a key") == false)
        // Missing file.
        let missing = #expect(throws: GitHubError.self) { try AppJWTSigner(issuer: "1", privateKeyPath: "\(directory)/nope.pem") }
        #expect(missing?.description.contains("cannot read file") == true)
        // An EC key is not RSA.
        let ecPath = "\(directory)/ec.pem"
        let generated = try await run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ecPath])
        try #require(generated.status == 0)
        let ec = #expect(throws: GitHubError.self) { try AppJWTSigner(issuer: "1", privateKeyPath: ecPath) }
        #expect(ec?.code == .invalidPrivateKey)
        #expect(ec?.description.contains("non-RSA") == true)
        #expect(ec?.description.contains("\n") == false)
        #expect(ec?.description.contains("PRIVATE KEY-----") == false)
    }

    @Test func signingIsFast() throws {
        let key = try RSAPrivateKey.generate()
        let signer = try AppJWTSigner(issuer: "1", privateKeyPEM: key.pkcs1PEMRepresentation())
        let start = ContinuousClock.now
        for _ in 0..<200 { _ = try signer.makeJWT() }
        let perJWT = (ContinuousClock.now - start) / 200
        print("JWT sign time: \(perJWT)")
        #expect(perJWT < .milliseconds(50))
    }

    @Test func simulatorRejectsJWTFromAnotherKey() async throws {
        try await withGitHubSimulator { sim in
            let app = try sim.createApp()
            let other = try RSAPrivateKey.generate()
            let signer = try AppJWTSigner(issuer: String(app.id), privateKeyPEM: other.pkcs1PEMRepresentation())
            let client = try GitHubClient(configuration: .init(apiURL: sim.apiURL), signer: signer, clock: ManualClock())
            let error = await #expect(throws: GitHubError.self) { try await client.getApp() }
            #expect(error?.status == 401)
            let good = try GitHubClient(configuration: .init(apiURL: sim.apiURL),
                                        signer: try AppJWTSigner(issuer: app.clientID, privateKeyPEM: app.privateKeyPKCS8PEM))
            let fetched = try await good.getApp()
            #expect(fetched.id == app.id)
            #expect(fetched.slug == app.slug)
            try await good.shutdown()
            try await client.shutdown()
        }
    }
}
