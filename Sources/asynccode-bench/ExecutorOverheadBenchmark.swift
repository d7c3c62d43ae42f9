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
/// run, on a repository of many files, beside the same git commands run by hand (clone, branch, add,
/// commit, push) with the same token.
struct ExecutorOverheadBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "executor",
        abstract: "Executor overhead per task (all but the agent) on a large repository, beside the raw git commands.")

    @Option(help: "Files in the repository.") var files = 10_000
    @Option(help: "Tasks run one at a time (and as many raw git runs).") var tasks = 10
    @Flag(help: "Run the agent without the bubblewrap jail.") var noSandbox = false

    func run() async throws {
        try await EndToEndBench.withScratchDatabase(prefix: "bench_exec") { database, migrations, logger in
            try await measure(database: database, migrations: migrations, logger: logger)
        }
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
            cat > /dev/null
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

        var tree = ["README.md": "# Widgets\n"]
        for index in 0..<(files - 1) {
            tree["src/module\(index / 100)/file\(index).swift"] = "let value\(index) = \(index)\n"
        }
        try await withGitHubSimulator { sim in
            let setup = try await sim.setUpAppWithRepository(owner: "acme", name: "widgets", files: tree)
            sim.setCollaborator("alice", role: "write", onRepositoryID: setup.repository.id)
            let secret = "bench-secret"
            var configuration = AppConfiguration(
                databaseURL: database, webhookSecrets: [secret], appID: String(setup.app.id),
                privateKeyPEM: setup.app.privateKeyPEM, githubAPIURL: URL(string: sim.apiURL)!, port: 0,
                migrationsDirectory: migrations)
            configuration.workers = 1
            configuration.agents = AgentCatalog(defaultAgent: "edit", agents: ["edit": agent])
            configuration.agents.limits = .none
            configuration.workspaceDirectory = folder + "/workspaces"
            let port = Mutex<Int?>(nil)
            let app = try await buildApplication(configuration: configuration, logger: logger) { bound in port.withLock { $0 = bound } }
            let client = PostgresClient(configuration: database.clientConfiguration(), backgroundLogger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await app.runService() }
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                while port.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(5)) }
                sim.configureWebhook(url: "http://127.0.0.1:\(port.withLock { $0 }!)/webhooks/github", secret: secret)

                // The executor: one task at a time; the overhead is claim-to-completion less the agent.
                var overheads: [Double] = []
                for index in 0..<tasks {
                    let issue = sim.createIssue(repositoryID: setup.repository.id, title: "Task \(index)", author: "alice")
                    _ = try await sim.postUserComment(
                        repositoryID: setup.repository.id, issueNumber: issue, body: "/asynccode fix task \(index)", author: "alice")
                    let deadline = ContinuousClock.now + .seconds(300)
                    var measured: Double?
                    while measured == nil, ContinuousClock.now < deadline {
                        measured = try await Self.overhead(client: client, issue: issue, logger: logger)
                        if measured == nil { try await Task.sleep(for: .milliseconds(20)) }
                    }
                    guard let measured else { throw ValidationError("task \(index) did not complete within 300 s") }
                    overheads.append(measured)
                }

                // By hand: the same git commands with the same token, nothing else.
                let github = try GitHubClient(
                    configuration: .init(apiURL: sim.apiURL),
                    signer: try AppJWTSigner(issuer: String(setup.app.id), privateKeyPEM: setup.app.privateKeyPEM))
                let repo = RepositoryRef(owner: "acme", name: "widgets", id: setup.repository.id, installationID: setup.installationID)
                let token = try await github.installationToken(for: repo)
                try await github.shutdown()
                let cloneURL = setup.repository.cloneURL
                var raws: [Double] = []
                for index in 0..<tasks {
                    let started = ContinuousClock.now
                    let workspace = try GitWorkspace.create(in: folder + "/raw", taskID: Int64(index))
                    try await workspace.clone(url: cloneURL, branch: "main", token: token)
                    try await workspace.createBranch("raw/\(index)")
                    try "edited by hand \(index)\n".write(toFile: workspace.checkout + "/README.md", atomically: true, encoding: .utf8)
                    _ = try await workspace.stageAll()
                    _ = try await workspace.commit(message: "Raw \(index)", authorName: "bench", authorEmail: "bench@example.com")
                    try await workspace.push(url: cloneURL, branch: "raw/\(index)", token: token, force: false)
                    await workspace.remove()
                    raws.append(EndToEndBench.milliseconds(ContinuousClock.now - started))
                }
                let executor = EndToEndBench.percentile(overheads, 0.5)
                let byHand = EndToEndBench.percentile(raws, 0.5)
                let jail = noSandbox ? "agent without a sandbox" : "agent in a bubblewrap jail"
                print("== executor overhead: \(files) files, \(tasks) tasks one at a time, \(jail), \(ProcessInfo.processInfo.activeProcessorCount) cores ==")
                print(String(format: "executor, claim to completion less the agent: p50 %.0f ms, p90 %.0f ms", executor, EndToEndBench.percentile(overheads, 0.9)))
                print(String(format: "git by hand (clone, branch, add, commit, push):  p50 %.0f ms, p90 %.0f ms", byHand, EndToEndBench.percentile(raws, 0.9)))
                print(String(format: "ratio (p50): %.2fx", executor / max(byHand, 0.001)))
            }
        }
    }

    /// Returns the completed task's claim-to-completion time less its agent's run (ms), or `nil` while it runs.
    static func overhead(client: PostgresClient, issue: Int, logger: Logger) async throws -> Double? {
        let rows = try await client.query("""
            SELECT t.status::text, (extract(epoch FROM t.completed_at - t.started_at) * 1000)::float8,
                   (SELECT r.content FROM task_results r WHERE r.task_id = t.id AND r.kind = 'agent' ORDER BY r.id DESC LIMIT 1)
            FROM tasks t WHERE t.issue_number = \(Int64(issue))
            """, logger: logger)
        for try await (status, total, content) in rows.decode((String, Double?, String?).self) {
            if status == "failed" || status == "cancelled" { throw ValidationError("a task ended \(status)") }
            guard status == "completed", let total, let content,
                  let range = content.range(of: #"agent-ns: [0-9]+"#, options: .regularExpression),
                  let nanoseconds = Double(content[range].dropFirst("agent-ns: ".count)) else { return nil }
            return total - nanoseconds / 1e6
        }
        return nil
    }
}
