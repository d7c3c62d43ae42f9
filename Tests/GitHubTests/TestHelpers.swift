import GitHubConformance
import Foundation
import GitHub
import GitHubSimulator
import Logging
import Testing
import TestSupport

/// A clock whose sleeps return at once, advance `now` and are recorded.
final class ManualClock: GitHubClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date
    private var recorded: [Duration] = []

    init(now: Date = Date()) { current = now }

    func now() -> Date { lock.withLock { current } }
    func advance(by seconds: TimeInterval) { lock.withLock { current = current.addingTimeInterval(seconds) } }
    var sleeps: [Duration] { lock.withLock { recorded } }

    func sleep(for duration: Duration) async throws {
        lock.withLock {
            recorded.append(duration)
            current = current.addingTimeInterval(duration.totalSeconds)
        }
        await Task.yield()
    }
}

extension Duration {
    var totalSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// A simulator with one App, installation and repository, and a client for it.
struct Fixture: Sendable {
    let sim: GitHubSimulator
    let app: SimulatedApp
    let installationID: Int64
    let repository: SimulatedRepository
    let client: GitHubClient
    let clock: ManualClock
    let logs: LogCapture

    var repo: RepositoryRef {
        RepositoryRef(owner: repository.owner, name: repository.name, id: repository.id, installationID: installationID)
    }

    /// Fails the test if any request the client sent would be rejected by GitHub's OpenAPI description.
    func expectConformance(sourceLocation: SourceLocation = #_sourceLocation) {
        let requests = sim.requests
        let violations: [String]
        do { violations = try OpenAPIConformance.shared.violations(in: requests) } catch {
            Issue.record(error, sourceLocation: sourceLocation)
            return
        }
        #expect(violations.isEmpty, "requests GitHub would reject:\n\(violations.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    /// Fails the test if a minted token or the App key appears in a log line.
    func expectNoSecretsLogged(sourceLocation: SourceLocation = #_sourceLocation) {
        let secrets = sim.issuedTokens.map(\.token)
        for line in logs.lines {
            for secret in secrets {
                #expect(!line.contains(secret), "token in log line: \(line)", sourceLocation: sourceLocation)
            }
            #expect(!line.contains("eyJ"), "JWT in log line: \(line)", sourceLocation: sourceLocation)
        }
    }
}

func withFixture<T>(
    retryPolicy: RetryPolicy = RetryPolicy(),
    simulator configuration: GitHubSimulator.Configuration = GitHubSimulator.Configuration(),
    checkConformance: Bool = true,
    _ body: (Fixture) async throws -> T
) async throws -> T {
    let clock = ManualClock()
    var configuration = configuration
    configuration.clock = { clock.now() }
    return try await withGitHubSimulator(configuration: configuration) { sim in
        let setup = try await sim.setUpAppWithRepository(files: ["README.md": "# Widgets\n", ".asynccode.yml": "agent: claude\n"])
        let (app, installationID, repository) = (setup.app, setup.installationID, setup.repository)
        let logs = LogCapture()
        let signer = try AppJWTSigner(issuer: String(app.id), privateKeyPEM: app.privateKeyPEM)
        let client = try GitHubClient(configuration: .init(apiURL: sim.apiURL, version: "test", retryPolicy: retryPolicy),
                                      signer: signer, clock: clock, logger: logs.logger())
        let fixture = Fixture(sim: sim, app: app, installationID: installationID, repository: repository, client: client, clock: clock, logs: logs)
        do {
            let result = try await body(fixture)
            try await client.shutdown()
            if checkConformance { fixture.expectConformance() }
            fixture.expectNoSecretsLogged()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

func makeTemporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("asynccode-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
