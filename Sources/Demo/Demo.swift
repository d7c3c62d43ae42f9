import AsyncCodeApp
import Database
import Executor
import Foundation
import OpenSSLCrypto
import GitHubSimulator
import Logging
import Queue
import Synchronization

/// `asynccode demo`: the whole pipeline on this machine, with no GitHub account and no network.
///
/// Starts a GitHub simulator holding `acme/widgets` and issue #1, the bot (on a scratch database of
/// the given PostgreSQL server) and a built-in demo agent; delivers a signed `/asynccode fix readme`
/// comment; narrates the progress comment (the repository's `readme` check fails after the agent's first
/// round and passes after its second), the pull request and its diff; then a follow-up comment on the pull
/// request; then stops everything it started.
public struct Demo: Sendable {
    /// What the demo is told.
    public struct Options: Sendable {
        /// The PostgreSQL server on which the demo makes (and drops) its own database.
        public var server: DatabaseURL
        /// Where the log, the agent script and the workspaces go.
        public var folder: String
        /// Leaves the bot and the simulator running until Ctrl-C.
        public var keep = false
        /// How long each step may take.
        public var stepTimeout: Duration = .seconds(120)

        /// Creates options.
        public init(server: DatabaseURL, folder: String) {
            self.server = server
            self.folder = folder
        }
    }

    /// A step of the demo that did not happen; the description says which and where the logs are.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    let options: Options
    let print: @Sendable (String) -> Void

    /// Creates a demo that narrates with `print` (standard output by default).
    public init(options: Options, print: @escaping @Sendable (String) -> Void = { Swift.print($0) }) {
        self.options = options
        self.print = print
    }

    var logPath: String { options.folder + "/demo.log" }

    /// Runs the demo; throws ``Failure`` naming the step that broke.
    public func run() async throws {
        let fileManager = FileManager.default
        try? fileManager.removeItem(atPath: options.folder + "/workspaces")
        try fileManager.createDirectory(atPath: options.folder + "/agent", withIntermediateDirectories: true)
        _ = fileManager.createFile(atPath: logPath, contents: nil)
        guard let log = FileHandle(forWritingAtPath: logPath) else { throw Failure(description: "cannot write \(logPath)") }
        defer { try? log.close() }
        let logger = Logger(label: "asynccode.demo") { label in
            var handler = JSONLogHandler(label: label) { line in log.write(Data(line.utf8)) }
            handler.logLevel = .debug
            return handler
        }
        guard let migrations = Migration.locateDirectory() else {
            throw Failure(description: "no migrations folder found: run the demo from the project folder (scripts/run demo)")
        }
        let scratch: ScratchDatabase
        do {
            scratch = try await ScratchDatabase.create(on: options.server, prefix: "asynccode_demo", logger: logger)
        } catch {
            throw Failure(description: "cannot create a database on \(options.server.host):\(options.server.port) (\(describe(error))); is PostgreSQL running? scripts/run demo starts it")
        }
        do {
            try await run(database: scratch.url, migrations: migrations, logger: logger)
        } catch {
            try? await scratch.drop(logger: logger)
            throw error
        }
        try? await scratch.drop(logger: logger)
    }

    private func run(database: DatabaseURL, migrations: URL, logger: Logger) async throws {
        let agent = try await writeAgent()
        let simulatorLogger = Logger(label: "asynccode.demo.simulator") { _ in SwiftLogNoOpLogHandler() }
        let sim = try await GitHubSimulator.start(logger: simulatorLogger)
        do {
            try await run(sim: sim, database: database, migrations: migrations, agent: agent, logger: logger)
            await sim.shutdown()
        } catch {
            await sim.shutdown()
            throw error
        }
    }

    private func run(sim: GitHubSimulator, database: DatabaseURL, migrations: URL, agent: AgentCommand, logger: Logger) async throws {
        let setup = try await sim.setUpAppWithRepository(owner: "acme", name: "widgets", files: [
            "README.md": "# Widgets\n\nWidgets for everyone.\n",
            "widgets.py": "def widget():\n    return \"widget\"\n",
            ".github/asynccode.yml": Self.repositorySettings,
        ])
        let repositoryID = setup.repository.id
        sim.setCollaborator("alice", role: "write", onRepositoryID: repositoryID)
        let issue = sim.createIssue(repositoryID: repositoryID, title: "The README says too little",
                                    body: "It should tell people how to try the project.", author: "alice")
        let secret = randomToken()
        // Sign-in needs the callback address before the bot listens: a port chosen now.
        let chosenPort = try DemoSignIn.freePort()
        var configuration = AppConfiguration(
            databaseURL: database, webhookSecrets: [secret], appID: String(setup.app.id), privateKeyPEM: setup.app.privateKeyPEM,
            githubAPIURL: URL(string: sim.apiURL)!, port: chosenPort, migrationsDirectory: migrations)
        configuration.publicURL = URL(string: "http://127.0.0.1:\(chosenPort)")
        configuration.clientID = setup.app.clientID
        configuration.clientSecret = setup.app.clientSecret
        configuration.encryptionKeys = try KeyRing(parsing: try KeyRing.newEntry(id: "demo"))
        sim.setCallbackURLs(appID: setup.app.id, ["http://127.0.0.1:\(chosenPort)/auth/callback"])
        configuration.workers = 2
        configuration.agents = AgentCatalog(defaultAgent: "demo", agents: ["demo": agent])
        configuration.workspaceDirectory = options.folder + "/workspaces"
        configuration.recoveryInterval = nil
        configuration.executorRetryBaseDelay = .seconds(1)

        let port = Mutex<Int?>(nil)
        let app = try await buildApplication(configuration: configuration, logger: logger) { bound in port.withLock { $0 = bound } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService() }
            defer { group.cancelAll() }
            try await waitUntil("the bot to listen", timeout: .seconds(60)) { port.withLock { $0 } != nil }
            let botURL = "http://127.0.0.1:\(port.withLock { $0 }!)"
            sim.configureWebhook(url: botURL + "/webhooks/github", secret: secret)
            let jail = agent.sandbox == .bwrap ? "in a bubblewrap jail" : "without a jail (bubblewrap is not usable here)"
            print("asynccode demo: a GitHub simulator at \(sim.baseURL), the bot at \(botURL), the demo agent \(jail)")
            print("  repository acme/widgets, issue #\(issue) \"The README says too little\" by @alice")

            // 1. A command on the issue.
            let command = "/asynccode fix readme"
            print("\n@alice comments on acme/widgets#\(issue): \(command)")
            let first = try await sim.postUserComment(repositoryID: repositoryID, issueNumber: issue, body: command, author: "alice")
            print("  webhook delivered, signed with the App's secret: the bot answered HTTP \(first.delivery.statusCode)")
            let progress = try await follow(sim: sim, repositoryID: repositoryID, thread: issue, after: first.comment.id,
                                            botLogin: setup.app.botLogin)
            let rounds = Self.checkLines(progress)
            guard rounds.count == 2, rounds[0].contains("❌"), rounds[0].contains("· round 1 of "),
                  rounds[1].contains("✅"), rounds[1].contains("· round 2 of ") else {
                throw Failure(description: "the readme check did not fail in round 1 and pass in round 2 "
                    + "(see the progress comment above and \(logPath))")
            }
            print("\nThe checks failed in round 1 and passed in round 2: the agent got the failing readme check's output "
                + "back in its prompt, fenced as data, and fixed the README:")
            for line in rounds { print("  " + line) }
            guard let pull = sim.pullRequests(repositoryID: repositoryID).first(where: { $0.body?.contains("Closes #\(issue)") == true }) else {
                throw Failure(description: "the task ended without a pull request (see the progress comment above and \(logPath))")
            }
            print("\nPull request #\(pull.number): \(pull.title)")
            print("  branch \(pull.head) → \(pull.base), review requested from \(pull.requestedReviewers.map { "@\($0)" }.joined(separator: ", "))")
            print(indent(pull.body ?? "", by: "  │ "))
            print("\nIts diff:")
            print(indent(try await sim.gitOutput(repositoryID: repositoryID, ["diff", "\(pull.base)...\(pull.head)"]), by: "  "))

            // 2. A follow-up on the pull request: same branch, a new commit.
            let followUp = "/asynccode also mention the demo"
            print("\n@alice comments on pull request #\(pull.number): \(followUp)")
            let second = try await sim.postUserComment(repositoryID: repositoryID, issueNumber: pull.number, body: followUp, author: "alice")
            print("  the bot answered HTTP \(second.delivery.statusCode)")
            try await follow(sim: sim, repositoryID: repositoryID, thread: pull.number, after: second.comment.id, botLogin: setup.app.botLogin)
            let pulls = sim.pullRequests(repositoryID: repositoryID)
            let commits = try await sim.gitOutput(repositoryID: repositoryID, ["rev-list", "--count", "\(pull.base)..\(pull.head)"])
                .trimmingCharacters(in: .whitespacesAndNewlines)
            print("\nThe follow-up pushed to the same branch (\(commits) commits on \(pull.head), still \(pulls.count) pull request):")
            print(indent(try await sim.gitOutput(repositoryID: repositoryID, ["show", "--format=%s", pull.head]), by: "  "))

            // 3. @alice signs in to the bot with GitHub and reads her tasks through the API.
            sim.setSignedInUser("alice")
            let tasks = try await DemoSignIn.listTasks(botURL: botURL)
            print("\nSigned in as @alice through GitHub's sign-in (PKCE, an encrypted token, a session cookie); GET /api/tasks lists \(tasks.count) task\(tasks.count == 1 ? "" : "s"):")
            for task in tasks { print("  " + task) }

            if options.keep {
                print("""

                    The bot and the simulator keep running; Ctrl-C stops them. Send more commands as @alice with:
                      curl -s -X POST \(sim.baseURL)/_simulator/comments -d '{"repository": "acme/widgets", "issue": \(issue), "author": "alice", "body": "/asynccode ask what does widget() return?"}'
                    and read the thread with:
                      curl -s -H 'Accept: application/vnd.github+json' \(sim.baseURL)/repos/acme/widgets/issues/\(issue)/comments
                    Webhooks go to \(botURL)/webhooks/github (secret in this process only); logs: \(logPath)
                    """)
                try await waitForInterrupt()
            }
            print("\nasynccode demo: done; the bot and the simulator are stopped.")
        }
    }

    /// Prints the progress comment's states for the command `after` on `thread` until it ends; returns its final body.
    @discardableResult
    private func follow(sim: GitHubSimulator, repositoryID: Int64, thread: Int, after commandID: Int64, botLogin: String) async throws -> String {
        let started = ContinuousClock.now
        var printed: [String] = []
        var finalBody = ""
        try await waitUntil("the task on #\(thread) to end", timeout: options.stepTimeout) {
            guard let progress = sim.comments(repositoryID: repositoryID, issueNumber: thread)
                .last(where: { $0.author == botLogin && $0.id > commandID && $0.body.contains("<!-- asynccode:task:") }) else { return false }
            for body in progress.history {
                for line in Self.stateLines(body) where !printed.contains(line) {
                    printed.append(line)
                    print(String(format: "  %6.2f s  ", (ContinuousClock.now - started).inSeconds) + line)
                }
            }
            let body = Self.plain(progress.body)
            guard ["✅ Completed", "❌ Failed", "🚫 ", "⏱️ Timed out"].contains(where: { body.contains($0) }) else { return false }
            for line in Self.summaryLines(progress.body) { print("            " + line) }
            finalBody = progress.body
            return true
        }
        return finalBody
    }

    /// Returns the checks' round lines of a progress comment ("Checks: readme ❌ 0 s · round 1 of 3"), in order.
    static func checkLines(_ body: String) -> [String] {
        body.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("- "), let start = line.range(of: "Checks: ") else { return nil }
            return plain(String(line[start.lowerBound...]))
        }
    }

    /// Returns the finished step lines and then the headline of a progress comment, without Markdown emphasis.
    static func stateLines(_ body: String) -> [String] {
        let lines = body.split(separator: "\n").map(String.init)
        let steps = lines.filter { line in ["- ✅", "- ❌", "- ⏭️"].contains { line.hasPrefix($0) } }
        let headline = lines.filter { line in ["⏳", "🔄", "✅", "❌", "🚫", "⚠️", "⏱️"].contains { line.hasPrefix($0) } }
        return (steps + headline).map(plain)
    }

    /// Returns the lines of a final progress comment after its steps (the summary), without the agent's output.
    static func summaryLines(_ body: String) -> [String] {
        let lines = body.components(separatedBy: "<details>")[0].split(separator: "\n").map(String.init)
        guard let lastStep = lines.lastIndex(where: { $0.hasPrefix("- ") }) else { return [] }
        return lines[(lastStep + 1)...].filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(plain)
    }

    static func plain(_ line: String) -> String {
        line.replacingOccurrences(of: "**", with: "").replacingOccurrences(of: "`", with: "")
    }

    /// The demo repository's `.github/asynccode.yml`: one check, which passes once the README says how to install.
    static let repositorySettings = """
        # asynccode runs this check after the agent, in its jail; a failing check goes back to the agent.
        checks:
          - name: readme
            run: "grep -q 'pip install widgets' README.md || { echo 'README.md does not say how to install widgets'; exit 1; }"
            timeout: 60

        """

    /// Writes the demo agent: a shell script that makes a visible edit to the README. Its first round leaves
    /// out the install step, so the `readme` check fails; when its prompt carries that failure (a fix round),
    /// it adds the step.
    private func writeAgent() async throws -> AgentCommand {
        let folder = options.folder + "/agent"
        let script = folder + "/demo-agent.sh"
        try """
            #!/bin/sh
            # The asynccode demo agent: reads the prompt on stdin and makes a visible edit to the README.
            prompt=$(cat)
            if ! grep -q '^## Trying it' README.md; then
              printf '\\n## Trying it\\n\\n- Import `widgets` and call `widget()`.\\n' >> README.md
              echo "Added a 'Trying it' section to the README."
            elif printf '%s' "$prompt" | grep -q 'Check `readme`' && ! grep -q 'pip install widgets' README.md; then
              echo '- Install it with `pip install widgets`.' >> README.md
              echo "Added a 'Trying it' section to the README, with the install step the failing readme check asked for."
            else
              echo '- Or try the whole pipeline offline first: `scripts/run demo`.' >> README.md
              echo "Mentioned the demo in the README."
            fi

            """.write(toFile: script, atomically: true, encoding: .utf8)
        for path in [options.folder, folder, script] {
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        var agent = AgentCommand(name: "demo", command: [script], timeout: .seconds(60))
        agent.binds = [folder]
        agent.sandbox = await Sandbox.problem() == nil ? .bwrap : .none
        return agent
    }

    private func waitUntil(_ what: String, timeout: Duration, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        if try await condition() { return }
        throw Failure(description: "timed out after \(timeout.components.seconds) s waiting for \(what); the bot's log: \(logPath)")
    }

    private func waitForInterrupt() async throws {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
        let source = DispatchSource.makeSignalSource(signal: SIGINT)
        signal(SIGINT, SIG_IGN)
        source.setEventHandler { continuation.finish() }
        source.resume()
        for await _ in stream {}
        source.cancel()
    }

    private func indent(_ text: String, by prefix: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { prefix + $0 }.joined(separator: "\n")
    }

}
