import ArgumentParser
import AsyncCodeApp
import AsyncHTTPClient
import Database
import Demo
import Executor
import Foundation
import GitHubSimulator
import Logging
import NIOCore
import OpenSSLCrypto
import PostgresNIO
import Synchronization

/// How fast a line an agent prints reaches someone watching, and how many watchers one process holds: the real
/// application (sign-in, the executor, the agent in its jail, `task_events`, the event reader, SSE) against the
/// GitHub simulator.
struct LiveEventsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live", abstract: "Agent line to SSE client latency (p50, p99) and concurrent event streams per process with their memory.")

    @Option(help: "Lines the agent prints, one every --interval milliseconds.") var lines = 200
    @Option(help: "Milliseconds between the agent's lines.") var interval = 20
    @Option(help: "Event streams held open at once.") var streams = 2000
    @Flag(help: "Run the agent without the bubblewrap jail.") var noSandbox = false

    func run() async throws {
        try await EndToEndBench.withScratchDatabase(prefix: "bench_live") { database, migrations, logger in
            try await measure(database: database, migrations: migrations, logger: logger)
        }
    }

    private func measure(database: DatabaseURL, migrations: URL, logger: Logger) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bench-live-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder + "/agents", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let script = folder + "/agents/ticker.sh"
        let pause = String(format: "%.3f", Double(interval) / 1000)
        try """
            #!/bin/sh
            cat > /dev/null
            i=0
            while [ $i -lt \(lines) ]; do echo "tick $(date +%s%N)"; sleep \(pause); i=$((i + 1)); done
            echo "Printed \(lines) lines."
            """.write(toFile: script, atomically: true, encoding: .utf8)
        for path in [folder, folder + "/agents", script] {
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        var agent = AgentCommand(name: "ticker", command: [script], timeout: .seconds(300))
        agent.binds = [folder + "/agents"]
        agent.sandbox = noSandbox ? .none : .bwrap

        var http = HTTPClient.Configuration()
        http.redirectConfiguration = .disallow
        // Opening thousands of connections at once queues them in the client's pool: give them time.
        http.timeout = .init(connect: .seconds(120))
        http.connectionPool = .init(idleTimeout: .seconds(120), concurrentHTTP1ConnectionsPerHostSoftLimit: streams + 16)
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: http)
        do {
            try await measure(client: client, agent: agent, folder: folder, database: database, migrations: migrations, logger: logger)
            try await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func measure(client: HTTPClient, agent: AgentCommand, folder: String, database: DatabaseURL, migrations: URL,
                         logger: Logger) async throws {
        try await withGitHubSimulator { sim in
            let setup = try await sim.setUpAppWithRepository(owner: "acme", name: "widgets", files: ["README.md": "# Widgets\n"])
            sim.setCollaborator("alice", role: "write", onRepositoryID: setup.repository.id)
            let port = try DemoSignIn.freePort()
            let botURL = "http://127.0.0.1:\(port)"
            sim.setCallbackURLs(appID: setup.app.id, [botURL + "/auth/callback"])
            sim.setSignedInUser("alice")
            var configuration = AppConfiguration(
                databaseURL: database, webhookSecrets: ["bench-secret"], appID: String(setup.app.id),
                privateKeyPEM: setup.app.privateKeyPEM, githubAPIURL: URL(string: sim.apiURL)!, port: port,
                migrationsDirectory: migrations)
            configuration.workers = 1
            configuration.agents = AgentCatalog(defaultAgent: "ticker", agents: ["ticker": agent])
            configuration.agents.limits = .none
            configuration.workspaceDirectory = folder + "/workspaces"
            configuration.publicURL = URL(string: botURL)
            configuration.clientID = setup.app.clientID
            configuration.clientSecret = setup.app.clientSecret
            configuration.encryptionKeys = try KeyRing(parsing: try KeyRing.newEntry(id: "k1"))
            configuration.eventStreamsPerUser = streams + 16
            configuration.apiRequestsPerMinute = 100_000
            let running = Mutex(false)
            let app = try await buildApplication(configuration: configuration, logger: logger) { _ in running.withLock { $0 = true } }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await app.runService() }
                defer { group.cancelAll() }
                while !running.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
                sim.configureWebhook(url: botURL + "/webhooks/github", secret: "bench-secret")
                let session = try await DemoSignIn.session(client, botURL: botURL)
                let cores = ProcessInfo.processInfo.activeProcessorCount
                print("== live events: \(lines) agent lines one every \(interval) ms, \(noSandbox ? "agent without a sandbox" : "agent in a bubblewrap jail"), \(cores) cores ==")

                // 1. An agent's lines, through the executor, task_events and the reader, to an SSE client.
                let agentLatency = try await Self.watch(client, botURL: botURL, session: session, expecting: lines) {
                    let issue = sim.createIssue(repositoryID: setup.repository.id, title: "Tick", author: "alice")
                    _ = try await sim.postUserComment(repositoryID: setup.repository.id, issueNumber: issue, body: "/asynccode fix ticks", author: "alice")
                }
                // 2. The same lines written straight into task_events: what the reader and the stream add alone.
                let postgres = PostgresClient(configuration: database.clientConfiguration(), backgroundLogger: logger)
                let directLatency = try await withThrowingTaskGroup(of: [Double].self) { inner in
                    inner.addTask { await postgres.run(); return [] }
                    defer { inner.cancelAll() }
                    return try await Self.watch(client, botURL: botURL, session: session, expecting: lines) {
                        for _ in 0..<lines {
                            let text = "tick \(Self.nowNanoseconds())\n"
                            try await postgres.query("""
                                INSERT INTO task_events (task_id, kind, step, data)
                                SELECT max(id), 'task.log', 'log', jsonb_build_object('stream', 'stdout', 'source', 'agent', 'text', \(text)::text) FROM tasks
                                """, logger: logger)
                            try await Task.sleep(for: .milliseconds(interval))
                        }
                    }
                }
                func line(_ name: String, _ values: [Double]) -> String {
                    String(format: "%@ p50 %7.1f ms   p99 %7.1f ms   max %7.1f ms   (%d lines)", name.padding(toLength: 44, withPad: " ", startingAt: 0),
                           EndToEndBench.percentile(values, 0.5), EndToEndBench.percentile(values, 0.99), values.max() ?? 0, values.count)
                }
                print(line("agent prints a line → SSE client:", agentLatency))
                print(line("baseline, row inserted → SSE client:", directLatency))

                // 3. Many streams at once: memory, and one event to all of them.
                try await Self.holdStreams(client, botURL: botURL, session: session, count: streams, database: database, logger: logger)
            }
        }
    }

    static func nowNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// Opens `/api/events`, runs `act`, and returns the latency of each `tick <ns>` line the stream brings.
    static func watch(_ client: HTTPClient, botURL: String, session: String, expecting count: Int,
                      _ act: @Sendable () async throws -> Void) async throws -> [Double] {
        var request = HTTPClientRequest(url: botURL + "/api/events")
        request.headers.add(name: "Cookie", value: "asynccode_session=\(session)")
        let response = try await client.execute(request, timeout: .seconds(600))
        guard response.status == .ok else { throw ValidationError("GET /api/events answered \(response.status.code)") }
        let latencies = Shared<[Double]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var pending = ""
                for try await buffer in response.body {
                    let now = nowNanoseconds()
                    pending += String(buffer: buffer)
                    while let end = pending.range(of: "\n\n") {
                        let message = String(pending[..<end.lowerBound])
                        pending = String(pending[end.upperBound...])
                        guard let data = message.split(separator: "\n").first(where: { $0.hasPrefix("data: ") }),
                              let object = try? JSONSerialization.jsonObject(with: Data(data.dropFirst(6).utf8)) as? [String: Any],
                              object["kind"] as? String == "task.log", let text = (object["data"] as? [String: Any])?["text"] as? String else { continue }
                        for tick in text.split(separator: "\n") where tick.hasPrefix("tick ") {
                            if let sent = Int64(tick.dropFirst(5)) { latencies.value.withLock { $0.append(Double(now - sent) / 1e6) } }
                        }
                    }
                    if latencies.value.withLock({ $0.count }) >= count { return }
                }
            }
            try await act()
            let deadline = ContinuousClock.now + .seconds(300)
            while latencies.value.withLock({ $0.count }) < count {
                guard ContinuousClock.now < deadline else { throw ValidationError("only \(latencies.value.withLock { $0.count }) of \(count) lines arrived") }
                try await Task.sleep(for: .milliseconds(20))
            }
            group.cancelAll()
        }
        return latencies.value.withLock { $0 }
    }

    /// Opens `count` streams, then writes one event and times until every stream has it.
    static func holdStreams(_ client: HTTPClient, botURL: String, session: String, count: Int, database: DatabaseURL, logger: Logger) async throws {
        let before = residentKilobytes()
        let received = Shared(0)
        let opened = Shared(0)
        let failure = Shared<String?>(nil)
        let marker = "fan-out-\(UUID().uuidString)"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<count {
                group.addTask {
                    var request = HTTPClientRequest(url: botURL + "/api/events")
                    request.headers.add(name: "Cookie", value: "asynccode_session=\(session)")
                    let response: HTTPClientResponse
                    do {
                        response = try await client.execute(request, timeout: .seconds(600))
                    } catch {
                        failure.value.withLock { $0 = $0 ?? "\(error)" }
                        throw error
                    }
                    guard response.status == .ok else {
                        failure.value.withLock { $0 = $0 ?? "answered \(response.status.code)" }
                        throw ValidationError("a stream was refused: \(response.status.code)")
                    }
                    var seen = false
                    for try await buffer in response.body {
                        if !seen, String(buffer: buffer).contains(": connected") { opened.value.withLock { $0 += 1 }; seen = true }
                        if String(buffer: buffer).contains(marker) { received.value.withLock { $0 += 1 }; return }
                    }
                }
            }
            let opening = ContinuousClock.now
            let deadline = opening + .seconds(300)
            while opened.value.withLock({ $0 }) < count {
                if let first = failure.value.withLock({ $0 }) { throw ValidationError("a stream could not open: \(first)") }
                guard ContinuousClock.now < deadline else { throw ValidationError("only \(opened.value.withLock { $0 }) of \(count) streams opened") }
                try await Task.sleep(for: .milliseconds(20))
            }
            let openedIn = EndToEndBench.milliseconds(ContinuousClock.now - opening) / 1000
            let held = residentKilobytes()
            let postgres = PostgresClient(configuration: database.clientConfiguration(), backgroundLogger: logger)
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { inner in
                inner.addTask { await postgres.run() }
                defer { inner.cancelAll() }
                try await postgres.query("""
                    INSERT INTO task_events (task_id, kind, step, data)
                    SELECT max(id), 'task.log', 'log', jsonb_build_object('stream', 'stdout', 'source', 'agent', 'text', \(marker)::text) FROM tasks
                    """, logger: logger)
            }
            while received.value.withLock({ $0 }) < count {
                guard ContinuousClock.now < deadline else { throw ValidationError("only \(received.value.withLock { $0 }) of \(count) streams got the event") }
                try await Task.sleep(for: .milliseconds(5))
            }
            let fanOut = EndToEndBench.milliseconds(ContinuousClock.now - started)
            print(String(format: "%d streams held by one process: resident memory %.1f MB before, %.1f MB with them: %.1f KB per stream (server and client in one process: an upper bound)",
                         count, Double(before) / 1024, Double(held) / 1024, Double(held - before) / Double(count)))
            print(String(format: "one event to all %d streams: %.1f ms; opening them took %.1f s (%.0f a second, each signed in and its access read)",
                         count, fanOut, openedIn, Double(count) / openedIn))
            group.cancelAll()
        }
    }

    /// The process's resident set (VmRSS), in kilobytes.
    static func residentKilobytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
}

/// A value shared by the benchmark's child tasks.
final class Shared<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
}
