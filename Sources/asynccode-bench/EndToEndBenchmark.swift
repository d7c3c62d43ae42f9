import ArgumentParser
import AsyncCodeApp
import Database
import Executor
import Foundation
import GitHubSimulator
import Logging
import PostgresNIO
import Synchronization

/// What a collaborator waits for: from posting `/asynccode …` to the bot's first answer (the progress
/// comment) and to the pull request, through the real application, PostgreSQL, git over HTTP and a
/// scripted agent, with the GitHub simulator standing in for GitHub.
struct EndToEndBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e", abstract: "Comment-to-answer and comment-to-pull-request latency against the GitHub simulator.")

    @Option(help: "Commands posted, one at a time (each on its own issue).") var tasks = 40
    @Option(help: "Task workers.") var workers = 2
    @Flag(help: "Run the agent without the bubblewrap jail.") var noSandbox = false

    func run() async throws {
        try await Self.withScratchDatabase(prefix: "bench_e2e") { database, migrations, logger in
            try await measure(database: database, migrations: migrations, logger: logger)
        }
    }

    /// Runs `body` with a scratch database on the server `DATABASE_URL` names (dropped afterwards), the
    /// migrations folder and a quiet logger.
    static func withScratchDatabase(
        prefix: String, _ body: @Sendable (DatabaseURL, URL, Logger) async throws -> Void
    ) async throws {
        guard let raw = ProcessInfo.processInfo.environment["DATABASE_URL"] else {
            throw ValidationError("DATABASE_URL must name a server where this benchmark may create a database")
        }
        let server = try DatabaseURL(raw)
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        guard let migrations = Migration.locateDirectory() else { throw ValidationError("no migrations folder found") }
        try await ScratchDatabase.with(on: server, prefix: prefix, logger: logger) { database in
            try await body(database, migrations, logger)
        }
    }

    private func measure(database: DatabaseURL, migrations: URL, logger: Logger) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bench-e2e-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder + "/agents", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let script = folder + "/agents/edit.sh"
        try "#!/bin/sh\ncat > /dev/null\necho 'edited' >> README.md\necho 'Appended a line.'\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        for path in [folder, folder + "/agents", script] {
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        var agent = AgentCommand(name: "edit", command: [script], timeout: .seconds(120))
        agent.binds = [folder + "/agents"]
        agent.sandbox = noSandbox ? .none : .bwrap

        try await withGitHubSimulator { sim in
            let setup = try await sim.setUpAppWithRepository(owner: "acme", name: "widgets", files: ["README.md": "# Widgets\n"])
            sim.setCollaborator("alice", role: "write", onRepositoryID: setup.repository.id)
            let secret = "bench-secret"
            var configuration = AppConfiguration(
                databaseURL: database, webhookSecrets: [secret], appID: String(setup.app.id),
                privateKeyPEM: setup.app.privateKeyPEM, githubAPIURL: URL(string: sim.apiURL)!, port: 0,
                migrationsDirectory: migrations)
            configuration.workers = workers
            configuration.agents = AgentCatalog(defaultAgent: "edit", agents: ["edit": agent])
            // One requester posts every command: the hourly limit per requester (20 by default) would stop it.
            configuration.agents.limits = .none
            configuration.workspaceDirectory = folder + "/workspaces"
            let port = Mutex<Int?>(nil)
            let app = try await buildApplication(configuration: configuration, logger: logger) { bound in port.withLock { $0 = bound } }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await app.runService() }
                defer { group.cancelAll() }
                while port.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(5)) }
                sim.configureWebhook(url: "http://127.0.0.1:\(port.withLock { $0 }!)/webhooks/github", secret: secret)

                var answers: [Double] = []
                var pulls: [Double] = []
                for index in 0..<tasks {
                    let issue = sim.createIssue(repositoryID: setup.repository.id, title: "Task \(index)", author: "alice")
                    let started = ContinuousClock.now
                    _ = try await sim.postUserComment(
                        repositoryID: setup.repository.id, issueNumber: issue, body: "/asynccode fix task \(index)", author: "alice")
                    var answered: Duration?
                    let deadline = started + .seconds(120)
                    while ContinuousClock.now < deadline {
                        if answered == nil,
                           sim.comments(repositoryID: setup.repository.id, issueNumber: issue).contains(where: { $0.author == setup.app.botLogin }) {
                            answered = ContinuousClock.now - started
                        }
                        if sim.pullRequests(repositoryID: setup.repository.id).contains(where: { $0.body?.contains("Closes #\(issue)") == true }) {
                            break
                        }
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    guard let answered, ContinuousClock.now < deadline else {
                        throw ValidationError("task \(index) did not finish within 120 s")
                    }
                    answers.append(Self.milliseconds(answered))
                    pulls.append(Self.milliseconds(ContinuousClock.now - started))
                }
                let jail = noSandbox ? "agent without a sandbox" : "agent in a bubblewrap jail"
                print("== end to end: \(tasks) commands one at a time, \(workers) workers, \(jail), \(ProcessInfo.processInfo.activeProcessorCount) cores ==")
                print(String(format: "comment to progress comment: p50 %.1f ms, p99 %.1f ms", Self.percentile(answers, 0.5), Self.percentile(answers, 0.99)))
                print(String(format: "comment to pull request:     p50 %.1f ms, p99 %.1f ms", Self.percentile(pulls, 0.5), Self.percentile(pulls, 0.99)))
            }
        }
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }

    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * fraction).rounded()))]
    }
}
