import ArgumentParser
import Accounting
import AsyncCodeApp
import Database
import Executor
import Foundation
import GitHub
import GitHubSimulator
import Logging
import PostgresNIO
import Synchronization

/// What the executor adds around an agent: a task's time from claim to completion less the agent's own
/// run, and from claim to the agent's start, on a large repository: without the repository cache (every task
/// clones), with it cold (the first task) and warm (the others), beside a raw `git clone` of the same repository
/// and the same git commands run by hand (clone, branch, add, commit, push) with the same token.
struct ExecutorOverheadBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "executor",
        abstract: "Executor overhead per task (all but the agent) on a large repository, with and without the repository cache.")

    @Option(help: "Files in the repository.") var files = 10_000
    @Option(help: "Kilobytes of (incompressible) content per file.") var fileKB = 10
    @Option(help: "Tasks run one at a time in each configuration (and as many raw git runs).") var tasks = 10
    @Flag(help: "Run the agent without the bubblewrap jail.") var noSandbox = false
    @Option(help: "Seconds each agent runs (sleeping; not counted in the overhead). 0: tasks back to back.") var agentSeconds = 0
    @Option(help: "Also run both configurations with workspaces (and the cache) in this folder, such as a tmpfs (/dev/shm).")
    var alsoIn: String?

    func run() async throws {
        try await EndToEndBench.withScratchDatabase(prefix: "bench_exec") { database, migrations, logger in
            try await measure(database: database, migrations: migrations, logger: logger)
        }
    }

    /// One task's figures (ms).
    struct Figures {
        var overhead: Double
        var toAgentStart: Double
    }

    private func measure(database: DatabaseURL, migrations: URL, logger: Logger) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bench-exec-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder + "/agents", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // The agent times itself: what is left of the task's time is the executor's.
        let script = folder + "/agents/edit.sh"
        try """
            #!/bin/sh
            start=$(date +%s%N)
            echo "agent-start-ns: $start"
            cat > /dev/null
            sleep \(agentSeconds)
            echo "edited $ASYNCCODE_TASK_ID" >> README.md
            end=$(date +%s%N)
            echo "agent-ns: $((end - start))"
            """.write(toFile: script, atomically: true, encoding: .utf8)
        for path in [folder, folder + "/agents", script] {
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        var agent = AgentCommand(name: "edit", command: [script], timeout: .seconds(300))
        agent.binds = [folder + "/agents"]
        agent.sandbox = noSandbox ? .none : .bwrap

        // Random content (base64 of random bytes) so that git cannot compress it away.
        var tree = ["README.md": "# Widgets\n"]
        var generator = SystemRandomNumberGenerator()
        for index in 0..<(files - 1) {
            let bytes = (0..<(fileKB * 768)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            tree["src/module\(index / 100)/file\(index).txt"] = Data(bytes).base64EncodedString(options: .lineLength76Characters) + "\n"
        }
        try await withGitHubSimulator { sim in
            let setup = try await sim.setUpAppWithRepository(owner: "acme", name: "widgets", files: tree)
            tree = [:]
            sim.setCollaborator("alice", role: "write", onRepositoryID: setup.repository.id)
            let packBytes = RepositoryCache.size(of: setup.repository.gitDirectory + "/objects")

            func runTasks(cacheBytes: Int64, label: String, in parent: String = folder, ready: Bool = true) async throws -> [Figures] {
                let secret = "bench-secret"
                var configuration = AppConfiguration(
                    databaseURL: database, webhookSecrets: [secret], appID: String(setup.app.id),
                    privateKeyPEM: setup.app.privateKeyPEM, githubAPIURL: URL(string: sim.apiURL)!, port: 0,
                    migrationsDirectory: migrations)
                configuration.workers = 1
                configuration.agents = AgentCatalog(defaultAgent: "edit", agents: ["edit": agent])
                configuration.agents.limits = .none
                configuration.workspaceDirectory = parent + "/workspaces-\(label)"
                configuration.repositoryCacheBytes = cacheBytes
                configuration.repositoryCacheReadyCheckouts = ready
                let port = Mutex<Int?>(nil)
                let app = try await buildApplication(configuration: configuration, logger: logger) { bound in port.withLock { $0 = bound } }
                let client = PostgresClient(configuration: database.clientConfiguration(), backgroundLogger: logger)
                return try await withThrowingTaskGroup(of: [Figures]?.self) { group in
                    group.addTask { try await app.runService(); return nil }
                    group.addTask { await client.run(); return nil }
                    defer { group.cancelAll() }
                    while port.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(5)) }
                    sim.configureWebhook(url: "http://127.0.0.1:\(port.withLock { $0 }!)/webhooks/github", secret: secret)
                    var figures: [Figures] = []
                    for index in 0..<tasks {
                        let issue = sim.createIssue(repositoryID: setup.repository.id, title: "Task \(label) \(index)", author: "alice")
                        _ = try await sim.postUserComment(
                            repositoryID: setup.repository.id, issueNumber: issue, body: "/asynccode fix task \(index)", author: "alice")
                        let deadline = ContinuousClock.now + .seconds(600)
                        var measured: Figures?
                        while measured == nil, ContinuousClock.now < deadline {
                            measured = try await Self.figures(client: client, issue: issue, logger: logger)
                            if measured == nil { try await Task.sleep(for: .milliseconds(20)) }
                        }
                        guard let measured else { throw ValidationError("task \(index) did not complete within 600 s") }
                        figures.append(measured)
                        if index == tasks - 1 { try await Self.printSteps(client: client, issue: issue, label: label, logger: logger) }
                    }
                    return figures
                }
            }
            let uncached = try await runTasks(cacheBytes: 0, label: "nocache")
            let mirrorOnly = try await runTasks(cacheBytes: 100 << 30, label: "cache-no-ready", ready: false)
            let cached = try await runTasks(cacheBytes: 100 << 30, label: "cache")
            var elsewhere: (uncached: [Figures], mirrorOnly: [Figures], cached: [Figures])?
            if let alsoIn {
                let parent = alsoIn + "/bench-exec-\(UUID().uuidString)"
                defer { try? FileManager.default.removeItem(atPath: parent) }
                elsewhere = (try await runTasks(cacheBytes: 0, label: "nocache-elsewhere", in: parent),
                             try await runTasks(cacheBytes: 100 << 30, label: "cache-no-ready-elsewhere", in: parent, ready: false),
                             try await runTasks(cacheBytes: 100 << 30, label: "cache-elsewhere", in: parent))
            }

            // By hand: a raw clone, and the same git commands with the same token, nothing else.
            let github = try GitHubClient(
                configuration: .init(apiURL: sim.apiURL),
                signer: try AppJWTSigner(issuer: String(setup.app.id), privateKeyPEM: setup.app.privateKeyPEM))
            let repo = RepositoryRef(owner: "acme", name: "widgets", id: setup.repository.id, installationID: setup.installationID)
            let token = try await github.installationToken(for: repo)
            try await github.shutdown()
            let cloneURL = setup.repository.cloneURL
            var clones: [Double] = []
            var raws: [Double] = []
            for index in 0..<tasks {
                let started = ContinuousClock.now
                let workspace = try GitWorkspace.create(in: folder + "/raw", taskID: Int64(index))
                try await workspace.clone(url: cloneURL, branch: "main", token: token)
                clones.append(EndToEndBench.milliseconds(ContinuousClock.now - started))
                try await workspace.createBranch("raw/\(index)")
                try "edited by hand \(index)\n".write(toFile: workspace.checkout + "/README.md", atomically: true, encoding: .utf8)
                _ = try await workspace.stageAll()
                _ = try await workspace.commit(message: "Raw \(index)", authorName: "bench", authorEmail: "bench@example.com")
                try await workspace.push(url: cloneURL, branch: "raw/\(index)", token: token, force: false)
                await workspace.remove()
                raws.append(EndToEndBench.milliseconds(ContinuousClock.now - started))
            }
            let jail = noSandbox ? "agent without a sandbox" : "agent in a bubblewrap jail"
            print("== executor overhead: \(files) files, \(packBytes >> 20) MB of objects, \(tasks) tasks one at a time per row, each agent running \(agentSeconds) s, \(jail), \(ProcessInfo.processInfo.activeProcessorCount) cores ==")
            func p(_ values: [Double], _ fraction: Double) -> Double { EndToEndBench.percentile(values, fraction) }
            func row(_ label: String, _ figures: [Figures]) {
                let overhead = figures.map(\.overhead)
                let start = figures.map(\.toAgentStart)
                print(String(format: "%@ claim→agent start p50 %6.0f ms p99 %6.0f ms · overhead (all but the agent) p50 %6.0f ms p99 %6.0f ms",
                             label.padding(toLength: 40, withPad: " ", startingAt: 0), p(start, 0.5), p(start, 0.99), p(overhead, 0.5), p(overhead, 0.99)))
            }
            row("no cache (every task clones)", uncached)
            row("cache, cold (first task)", Array(cached.prefix(1)))
            row("cache, warm, no ready checkout", Array(mirrorOnly.dropFirst()))
            row("cache, warm (tasks 2…\(tasks))", Array(cached.dropFirst()))
            if let elsewhere, let alsoIn {
                row("in \(alsoIn): no cache", elsewhere.uncached)
                row("in \(alsoIn): warm, no ready checkout", Array(elsewhere.mirrorOnly.dropFirst()))
                row("in \(alsoIn): cache, cold", Array(elsewhere.cached.prefix(1)))
                row("in \(alsoIn): cache, warm", Array(elsewhere.cached.dropFirst()))
            }
            print(String(format: "%@ p50 %6.0f ms p99 %6.0f ms", "raw git clone --depth 1".padding(toLength: 40, withPad: " ", startingAt: 0), p(clones, 0.5), p(clones, 0.99)))
            print(String(format: "%@ p50 %6.0f ms p99 %6.0f ms", "git by hand (clone … push)".padding(toLength: 40, withPad: " ", startingAt: 0), p(raws, 0.5), p(raws, 0.99)))
            let warm = Array(cached.dropFirst()).map(\.overhead)
            print(String(format: "warm overhead / no-cache overhead (p50): %.2fx", p(warm, 0.5) / max(p(uncached.map(\.overhead), 0.5), 0.001)))
            if let elsewhere, let alsoIn {
                let warmElsewhere = Array(elsewhere.cached.dropFirst()).map(\.overhead)
                print(String(format: "in %@: warm overhead / no-cache overhead on the first folder (p50): %.2fx", alsoIn,
                             p(warmElsewhere, 0.5) / max(p(uncached.map(\.overhead), 0.5), 0.001)))
            }
        }
    }

    /// Returns the completed task's figures, or `nil` while it runs.
    static func figures(client: PostgresClient, issue: Int, logger: Logger) async throws -> Figures? {
        let rows = try await client.query("""
            SELECT t.status::text, (extract(epoch FROM t.completed_at - t.started_at) * 1000)::float8,
                   (extract(epoch FROM t.started_at) * 1e9)::float8,
                   (SELECT r.content FROM task_results r WHERE r.task_id = t.id AND r.kind = 'agent' ORDER BY r.id DESC LIMIT 1)
            FROM tasks t WHERE t.issue_number = \(Int64(issue))
            """, logger: logger)
        for try await (status, total, startedNanoseconds, content) in rows.decode((String, Double?, Double?, String?).self) {
            if status == "failed" || status == "cancelled" { throw ValidationError("a task ended \(status)") }
            guard status == "completed", let total, let startedNanoseconds, let content,
                  let agent = number(after: "agent-ns: ", in: content), let agentStart = number(after: "agent-start-ns: ", in: content) else { return nil }
            return Figures(overhead: total - agent / 1e6, toAgentStart: (agentStart - startedNanoseconds) / 1e6)
        }
        return nil
    }

    /// Prints when each step of the task on `issue` began, from its claim (where the time goes).
    static func printSteps(client: PostgresClient, issue: Int, label: String, logger: Logger) async throws {
        let rows = try await client.query("""
            SELECT e.step, left(e.detail, 70), (extract(epoch FROM e.created_at - t.started_at) * 1000)::float8
            FROM task_events e JOIN tasks t ON t.id = e.task_id
            WHERE t.issue_number = \(Int64(issue)) AND e.kind IN ('task.step', 'task.status_updated', 'task.completed')
            ORDER BY e.id
            """, logger: logger)
        var lines: [String] = []
        for try await (step, detail, at) in rows.decode((String, String, Double).self) {
            lines.append(String(format: "  %7.0f ms  %@ %@", at, step, detail))
        }
        print("-- steps of the last task (\(label)), from its claim --\n" + lines.joined(separator: "\n"))
    }

    static func number(after prefix: String, in text: String) -> Double? {
        guard let range = text.range(of: prefix + "[0-9]+", options: .regularExpression) else { return nil }
        return Double(text[range].dropFirst(prefix.count))
    }
}
