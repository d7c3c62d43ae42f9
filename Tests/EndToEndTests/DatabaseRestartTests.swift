import AsyncCodeApp
import Database
import Foundation
import GitHub
import GitHubSimulator
import Logging
import PostgresNIO
import Recovery
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif
import Synchronization
import Testing
import TestSupport

/// A PostgreSQL cluster of the test's own (the shared test cluster is never restarted), run by a non-root
/// user as PostgreSQL requires: `postgres` when the tests run as root.
struct PrivateCluster {
    let bin: String
    let folder: String
    let port: Int
    var data: String { folder + "/data" }
    var socket: String { folder + "/run" }
    var log: String { folder + "/server.log" }
    static var asRoot: Bool { getuid() == 0 }

    var url: DatabaseURL { get throws { try DatabaseURL("postgres://asynccode@127.0.0.1:\(port)/postgres") } }

    static func create() async throws -> PrivateCluster {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let version = versions.sorted(by: { $0.compare($1, options: .numeric) == .orderedAscending }).last else {
            throw TestSetupError("no PostgreSQL server under /usr/lib/postgresql")
        }
        let folder = "/tmp/asynccode-pg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder + "/data", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: folder + "/run", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: folder + "/server.log", contents: nil)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder)
        for path in [folder + "/data", folder + "/run"] {
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: path)
        }
        if asRoot {
            _ = try await TestSupport.run(["chown", "-R", "postgres", folder + "/data", folder + "/run", folder + "/server.log"])
        }
        let cluster = PrivateCluster(bin: "/usr/lib/postgresql/\(version)/bin", folder: folder, port: Int.random(in: 20_000...40_000))
        let initdb = try await cluster.asServerUser([cluster.bin + "/initdb", "-D", cluster.data, "-U", "asynccode", "--auth=trust",
                                                     "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        guard initdb.status == 0 else { throw TestSetupError("initdb failed: \(initdb.output)") }
        return cluster
    }

    /// Runs `arguments` as the server's user, waiting for that process alone (swift-subprocess waits on the
    /// process; Foundation's `Process` waits until every holder of a socket it hands the child has closed it,
    /// which the server pg_ctl leaves running would never do).
    func asServerUser(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let command = Self.asRoot ? ["/usr/sbin/runuser", "-u", "postgres", "--"] + arguments : arguments
        let outcome = try await Subprocess.run(
            .path(FilePath(command[0])), arguments: Arguments(Array(command.dropFirst())),
            workingDirectory: FilePath(folder), output: .discarded, error: .discarded)
        if case .exited(let code) = outcome.terminationStatus { return (code, "see \(log)") }
        return (-1, "see \(log)")
    }

    func start() async throws {
        let started = try await asServerUser([
            bin + "/pg_ctl", "-D", data, "-l", log, "-w", "-t", "60",
            "-o", "-p \(port) -k \(socket) -c listen_addresses=127.0.0.1 -c fsync=off", "start",
        ])
        guard started.status == 0 else { throw TestSetupError("pg_ctl start failed: \(started.output)") }
    }

    func stop() async throws {
        let stopped = try await asServerUser([bin + "/pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop"])
        guard stopped.status == 0 else { throw TestSetupError("pg_ctl stop failed: \(stopped.output)") }
    }

    func remove() async {
        _ = try? await asServerUser([bin + "/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: folder)
    }
}

@Suite(.serialized, .timeLimit(.minutes(10))) struct DatabaseRestartTests {
    // This test found a hang: PostgresNIO can leave a query unanswered forever when the server closes the
    // connection as the query is written, and the intake's timeout waited for it. Every intake statement now
    // has a deadline that does not wait for the query (`PostgresConnection.rows(_:logger:deadline:)`).
    @Test
    func deliveriesStreamingThroughARestartAreAllRecordedOnce() async throws {
        let cluster = try await PrivateCluster.create()
        do {
            try await cluster.start()
            try await stream(through: cluster)
        } catch {
            await cluster.remove()
            throw error
        }
        await cluster.remove()
    }

    private func stream(through cluster: PrivateCluster) async throws {
        let url = try cluster.url
        let logs = LogCapture()
        let logger = logs.logger(label: "restart", level: .info)
        try await withGitHubSimulator { sim in
            let setup = try await sim.setUpAppWithRepository(owner: "acme", name: "widgets", files: ["README.md": "# Widgets\n"])
            sim.setCollaborator("alice", role: "write", onRepositoryID: setup.repository.id)
            let issue = sim.createIssue(repositoryID: setup.repository.id, title: "Many commands", author: "alice")
            var configuration = AppConfiguration(
                databaseURL: url, webhookSecrets: [webhookSecret], appID: String(setup.app.id),
                privateKeyPEM: setup.app.privateKeyPEM, githubAPIURL: URL(string: sim.apiURL)!, port: 0,
                migrationsDirectory: TestEnvironment.migrationsDirectory)
            // The intake alone: what is measured is what reaches the database.
            configuration.workers = 0
            configuration.recoveryInterval = nil
            let port = Mutex<Int?>(nil)
            let app = try await buildApplication(configuration: configuration, logger: logger) { bound in port.withLock { $0 = bound } }
            let client = PostgresClient(configuration: url.clientConfiguration(), backgroundLogger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                try await withRunning(app, logger: logger) {
                    try await eventually("the server listens", timeout: .seconds(60)) { port.withLock { $0 } != nil }
                    sim.configureWebhook(url: "http://127.0.0.1:\(port.withLock { $0 }!)/webhooks/github", secret: webhookSecret)

                    // 200 commands at 50 a second; the database stops at the 50th for 2 s, then starts again.
                    let (sent, downtime) = try await Self.send(sim: sim, repositoryID: setup.repository.id, issue: issue, cluster: cluster)
                    #expect(sent.count == 200)
                    // Every delivery is answered (2xx, or 503 within the commit deadline): none waits out the sender.
                    #expect(sent.allSatisfy { $0.statusCode != 0 }, "a delivery was never answered")
                    let answered = sent.filter { (200..<300).contains($0.statusCode) }
                    let refused = sent.filter { !(200..<300).contains($0.statusCode) }

                    // Every delivery answered 2xx is in the database.
                    let recorded = try await guids(client, logger)
                    #expect(answered.allSatisfy { recorded.contains($0.guid) }, "a delivery answered 2xx is missing")

                    // Delivery recovery brings back every one that was refused.
                    let github = try GitHubClient(
                        configuration: .init(apiURL: sim.apiURL),
                        signer: AppJWTSigner(issuer: String(setup.app.id), privateKeyPEM: setup.app.privateKeyPEM))
                    let recovery = DeliveryRecovery(log: github, client: client, logger: logger)
                    var redelivered = 0
                    var complete = false
                    // A bound, not a target: alone it takes seconds; beside the whole suite on 2 cores, a refused
                    // delivery was seen back after 60 s.
                    let deadline = ContinuousClock.now + .seconds(180)
                    while ContinuousClock.now < deadline {
                        let after = try await guids(client, logger)
                        if sent.allSatisfy({ after.contains($0.guid) }) {
                            complete = true
                            break
                        }
                        redelivered += try await recovery.recoverOnce().redelivered
                        try await Task.sleep(for: .milliseconds(500))
                    }
                    try await github.shutdown()
                    #expect(complete, "a refused delivery was not brought back within 180 s")
                    // Only refused deliveries are asked for again (one refused after its commit landed is not).
                    #expect(redelivered <= refused.count)
                    #expect(refused.isEmpty || redelivered > 0)

                    // One task per command, none twice.
                    let rows = try await client.query(
                        "SELECT count(*), count(DISTINCT comment_id) FROM tasks WHERE issue_number = \(Int64(issue))", logger: logger)
                    for try await (tasks, distinct) in rows.decode((Int64, Int64).self) {
                        #expect(tasks == 200 && distinct == 200)
                    }
                    print("database restart: down \(Int(EndToEndMilliseconds.of(downtime))) ms during 200 deliveries at 50/s; \(answered.count) answered 2xx, "
                        + "\(refused.count) refused (\(Set(refused.map(\.statusCode)).sorted())); recovery redelivered \(redelivered); "
                        + "200 tasks, none twice")
                }
            }
        }
    }

    /// Posts 200 commands at 50 a second, stopping the database at the 50th and starting it 2 s later;
    /// returns the deliveries and how long the database was down.
    static func send(sim: GitHubSimulator, repositoryID: Int64, issue: Int, cluster: PrivateCluster) async throws
        -> ([SimulatedDelivery], Duration) {
        final class Results: Sendable {
            let deliveries = Mutex<[SimulatedDelivery]>([])
            let downtime = Mutex<Duration>(.zero)
        }
        let results = Results()
        try await withThrowingTaskGroup(of: Void.self) { senders in
            for index in 0..<200 {
                senders.addTask {
                    let sent = try await sim.postUserComment(
                        repositoryID: repositoryID, issueNumber: issue, body: "/asynccode --agent noop fix \(index)", author: "alice")
                    results.deliveries.withLock { $0.append(sent.delivery) }
                }
                if index == 50 {
                    senders.addTask {
                        let down = ContinuousClock.now
                        try await cluster.stop()
                        try await Task.sleep(for: .seconds(2))
                        try await cluster.start()
                        let elapsed = ContinuousClock.now - down
                        results.downtime.withLock { $0 = elapsed }
                    }
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            try await senders.waitForAll()
        }
        return (results.deliveries.withLock { $0 }, results.downtime.withLock { $0 })
    }

    private func guids(_ client: PostgresClient, _ logger: Logger) async throws -> Set<String> {
        var found = Set<String>()
        let rows = try await client.query("SELECT delivery_guid FROM webhook_deliveries", logger: logger)
        for try await guid in rows.decode(String.self) { found.insert(guid) }
        return found
    }
}

enum EndToEndMilliseconds {
    static func of(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }
}
