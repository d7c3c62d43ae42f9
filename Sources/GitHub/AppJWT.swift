import Foundation
import OpenSSLCrypto

/// Signs GitHub App JWTs (RS256) with the App's private key through OpenSSL.
public struct AppJWTSigner: Sendable {
    /// The `iss` claim: the App id, or the App's client id.
    public let issuer: String
    private let key: RSAPrivateKey

    /// Creates a signer from a PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 PEM.
    ///
    /// Throws ``GitHubError/Code/invalidPrivateKey`` with one line of explanation when the PEM is
    /// unreadable or not RSA.
    public init(issuer: String, privateKeyPEM: String) throws(GitHubError) {
        self.key = try Self.loadKey(privateKeyPEM, source: nil)
        self.issuer = issuer
    }

    /// Creates a signer from a PEM file, failing with one clear line if it cannot be read.
    public init(issuer: String, privateKeyPath: String) throws(GitHubError) {
        guard let data = FileManager.default.contents(atPath: privateKeyPath) else {
            throw GitHubError(.invalidPrivateKey, message: "GitHub App private key: cannot read file \(privateKeyPath)")
        }
        self.key = try Self.loadKey(String(decoding: data, as: UTF8.self), source: privateKeyPath)
        self.issuer = issuer
    }

    private static func loadKey(_ pem: String, source: String?) throws(GitHubError) -> RSAPrivateKey {
        do {
            return try RSAPrivateKey(pemRepresentation: pem)
        } catch {
            let location = source.map { " (file \($0))" } ?? ""
            throw GitHubError(.invalidPrivateKey, message: "GitHub App private key\(location): \(error.reason)")
        }
    }

    /// Returns a JWT with `iat` = now − 60 s, `exp` = now + 9 min and `iss` = ``issuer``.
    public func makeJWT(now: Date = Date()) throws(GitHubError) -> String {
        let issuedAt = Int(now.timeIntervalSince1970) - 60
        let expiresAt = Int(now.timeIntervalSince1970) + 9 * 60
        let header = #"{"alg":"RS256","typ":"JWT"}"#
        let issuerJSON: String
        if let number = Int(issuer) {
            issuerJSON = String(number)
        } else {
            let encoded = (try? JSONEncoder().encode(issuer)).map { String(decoding: $0, as: UTF8.self) }
            issuerJSON = encoded ?? "\"\""
        }
        let payload = #"{"iat":\#(issuedAt),"exp":\#(expiresAt),"iss":\#(issuerJSON)}"#
        let signingInput = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8))
        do {
            let signature = try key.signSHA256(Array(signingInput.utf8))
            return signingInput + "." + Base64URL.encode(signature)
        } catch {
            throw GitHubError(.invalidPrivateKey, message: "signing the App JWT failed: \(error.reason)")
        }
    }
}
