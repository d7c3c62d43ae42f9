import GitHubConformance
import Foundation
import GitHub
import GitHubSimulator
import OpenSSLCrypto
import Testing
import TestSupport

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
            #expect(try OpenAPIConformance.shared.violations(in: sim.requests).isEmpty)
        }
    }

    @Test func redactionCoversTokensJWTsAndKeys() throws {
        let pem = try RSAPrivateKey.generate().pkcs1PEMRepresentation()
        let jwt = try AppJWTSigner(issuer: "1", privateKeyPEM: pem).makeJWT()
        let samples = [
            "ghs_" + String(repeating: "a1B2", count: 9), "ghp_" + String(repeating: "Z9y8", count: 9),
            "github_pat_" + String(repeating: "x", count: 40), jwt, pem,
        ]
        for secret in samples {
            let error = GitHubError(.httpStatus, status: 500, route: "GET /x", message: "echo: \(secret) end")
            #expect(!error.description.contains(secret))
            #expect(error.description.contains("[REDACTED]"))
            #expect(error.description.contains("end"))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func simulatorRunsAsAService() async throws {
        let (urls, continuation) = AsyncStream.makeStream(of: String.self)
        let service = GitHubSimulatorService { sim in continuation.yield(sim.apiURL) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await service.run() }
            var iterator = urls.makeAsyncIterator()
            let url = try #require(await iterator.next())
            let up = try await run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "\(url)/repos/a/b"])
            #expect(up.output == "401")
            group.cancelAll()
            try await group.waitForAll()
            let down = try await run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "\(url)/repos/a/b"])
            #expect(down.output == "000")
        }
    }
}
