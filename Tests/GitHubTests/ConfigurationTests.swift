import Foundation
import GitHub
import GitHubSimulator
import OpenSSLCrypto
import Testing

@Suite(.timeLimit(.minutes(2))) struct ConfigurationTests {
    static func signer() throws -> AppJWTSigner {
        try AppJWTSigner(issuer: "1", privateKeyPEM: RSAPrivateKey.generate().pkcs1PEMRepresentation())
    }

    @Test func environmentSetsBaseURLAndCABundle() {
        let configuration = GitHubClient.Configuration.fromEnvironment(["GITHUB_API_URL": "https://ghe.example/api/v3", "GITHUB_CA_BUNDLE": "/etc/ca.pem"])
        #expect(configuration.apiURL == "https://ghe.example/api/v3")
        #expect(configuration.caBundlePath == "/etc/ca.pem")
        let defaults = GitHubClient.Configuration.fromEnvironment([:])
        #expect(defaults.apiURL == "https://api.github.com")
        #expect(defaults.caBundlePath == nil)
    }

    @Test func badBaseURLOrCABundleFailAtStartUp() async throws {
        let badURL = #expect(throws: GitHubError.self) {
            try GitHubClient(configuration: .init(apiURL: "api.github.com"), signer: Self.signer())
        }
        #expect(badURL?.code == .invalidConfiguration)
        let badBundle = #expect(throws: GitHubError.self) {
            try GitHubClient(configuration: .init(caBundlePath: "/nonexistent/ca.pem"), signer: Self.signer())
        }
        #expect(badBundle?.code == .invalidConfiguration)
        #expect(badBundle?.description.contains("/nonexistent/ca.pem") == true)

        // A real PEM certificate is accepted as trust root.
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try await run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(directory)/ca.key",
                                  "-out", "\(directory)/ca.pem", "-days", "1", "-subj", "/CN=ghe.example"])
        try #require(made.status == 0, "\(made.output)")
        let client = try GitHubClient(configuration: .init(apiURL: "https://ghe.example/api/v3", caBundlePath: "\(directory)/ca.pem"), signer: Self.signer())
        #expect(client.configuration.caBundlePath == "\(directory)/ca.pem")
        try await client.shutdown()
    }

    @Test func enterpriseStyleBaseURLWithPathPrefix() async throws {
        try await withGitHubSimulator { sim in
            let setup = try await sim.setUpAppWithRepository()
            let client = try GitHubClient(configuration: .init(apiURL: sim.apiURL + "/api/v3/", version: "9.9"),
                                          signer: AppJWTSigner(issuer: String(setup.app.id), privateKeyPEM: setup.app.privateKeyPEM))
            let repo = RepositoryRef(owner: "acme", name: "widgets", id: setup.repository.id, installationID: setup.installationID)
            #expect(try await client.getRepository(repo).fullName == "acme/widgets")
            try await client.shutdown()
            let paths = sim.requests.map(\.path)
            #expect(paths.contains("/repos/acme/widgets"))
            #expect(sim.requests.allSatisfy { $0.headers["user-agent"] == "asynccode/9.9" })
            #expect(OpenAPIConformance.shared.violations(in: sim.requests).isEmpty)
        }
    }
}
