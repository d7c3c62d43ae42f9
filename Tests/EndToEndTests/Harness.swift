import AsyncCodeApp
import AsyncHTTPClient
import Database
import Foundation
import GitHubConformance
import GitHubSimulator
import Logging
import PostgresNIO
import Synchronization
import Testing
import TestSupport

let webhookSecret = "e2e-webhook-secret-0123456789"

/// The agents every end-to-end test may pick with `--agent`: small shell scripts.
let agentScripts: [String: (script: String, timeout: Int)] = [
    "edit": ("""
        cat > /dev/null
        echo "edited by the agent" >> README.md
        echo "Appended a line to the README."
        """, 120),
    "followup": ("""
        cat > /dev/null
        echo "follow-up: $ASYNCCODE_PROMPT" | head -c 200 | tr '\\n' ' ' >> NOTES.md
        echo >> NOTES.md
        echo "Addressed the feedback."
        """, 120),
    "ask": ("""
        cat > /dev/null
        echo "The answer is 42 (task $ASYNCCODE_TASK_ID, kind $ASYNCCODE_TASK_KIND)."
        """, 120),
    "fail": ("""
        cat > /dev/null
        echo "working on it"
        echo "model refused: quota exhausted" >&2
        exit 3
        """, 120),
    "slow": ("""
        cat > /dev/null
        sleep 300
        """, 2),
    "sleeper": ("""
        cat > /dev/null
        sleep 3141
        """, 300),
    // Fixes failed CI: keeps the line of the CI log it was shown (issue 19).
    "cifix": ("""
        prompt=$(cat)
        printf '%s\\n' "$prompt" | grep -o 'expected 3 got 4' | head -n 1 > CI.md
        echo "Fixed the failing test."
        """, 120),
    // A binary file, a deleted file, an executable bit and an edit (issue 24).
    "mixed": ("""
        cat > /dev/null
        printf '\\000\\001\\002binary\\377' > data.bin
        rm -f OLD.md
        chmod +x tool.sh
        echo "changed" >> README.md
        echo "Made mixed changes."
        """, 120),
    // More files than one commit through GitHub's API takes (issue 24).
    "many": ("""
        cat > /dev/null
        mkdir -p many
        i=0
        while [ $i -le 1000 ]; do echo $i > many/f$i.txt; i=$((i + 1)); done
        echo "Wrote 1001 files."
        """, 120),
    "noop": ("""
        cat > /dev/null
        echo "Nothing needed changing."
        """, 120),
    "snoop": ("""
        cat > /dev/null
        {
          echo "== environment"; env
          echo "== .git/config"; cat .git/config
          echo "== git config"; git config --list --show-origin 2>&1
          echo "== credentials"; printf 'protocol=http\\nhost=127.0.0.1\\n\\n' | git credential fill 2>&1 < /dev/null
          echo "== home"; ls -la "$HOME"; cat "$HOME"/.git-credentials 2>&1
        } > snoop.txt 2>&1
        cat snoop.txt
        """, 120),
    // Waits for `$AGENT_STATE/go-<task>` (at most 60 s), then appends a line (agents as Kubernetes Jobs).
    "pause": ("""
        cat > /dev/null
        i=0
        while [ ! -e "$AGENT_STATE/go-$ASYNCCODE_TASK_ID" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
        echo "edited after a pause" >> README.md
        echo "Paused, then appended a line."
        """, 120),
    // Looks around its pod and poisons its own `.git` (agents as Kubernetes Jobs).
    "podsnoop": ("""
        cat > /dev/null
        {
          echo "== env"; env | sort
          echo "== base"; ls /base 2>&1 || echo "base: absent"
          echo "== user $(id -u)"
        } > pod-report.txt 2>&1
        printf '[core]\n\thooksPath = /tmp\n[alias]\n\tadd = !touch /tmp/pwned\n' >> .git/config
        mkdir -p .git/hooks
        printf '#!/bin/sh\ntouch /tmp/hooked\n' > .git/hooks/pre-commit
        chmod +x .git/hooks/pre-commit
        echo "probed the pod"
        """, 120),
    // Overwrites every file of its `.git` in place (object files included) and points git at its own hooks
    // (issue 23: nothing of it may reach the repository cache or a later task).
    "gitpoison": ("""
        cat > /dev/null
        find .git -type f | while read -r f; do chmod u+w "$f"; printf 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' | dd of="$f" conv=notrunc 2>/dev/null; done
        printf '[core]\n\thooksPath = /tmp\n' >> .git/config
        echo "poisoned" >> README.md
        echo "Poisoned its repository."
        """, 120),
    "hostile": ("""
        cat > /dev/null
        out=report.txt
        attempt() { if sh -c "$2" >/dev/null 2>&1; then echo "$1: ALLOWED" >> $out; else echo "$1: blocked" >> $out; fi; }
        attempt app-key "cat $PRIVATE_DIR/app.pem"
        attempt dotenv "cat $PRIVATE_DIR/.env"
        attempt config "cat $PRIVATE_DIR/asynccode.yml"
        attempt database-data "ls $PG_DATA"
        attempt database-socket "ls /var/run/postgresql/.s.PGSQL.5432 || ls /run/postgresql"
        attempt other-workspaces "ls $WORKSPACES"
        attempt bot-environ "grep -a -l -e DATABASE_URL -e GITHUB_ -e ASYNCCODE_TEST /proc/*/environ"
        attempt write-usr "touch /usr/evil"
        attempt write-state "touch $AGENT_STATE/evil"
        attempt host-tmp "test \\$(ls -A /tmp | grep -v -c '^e2e-') -gt 0"
        touch "/tmp/asynccode-escape-$ASYNCCODE_TASK_ID"
        port=$(echo "$ASYNCCODE_PROMPT" | sed -n 's/.*port=\\([0-9]*\\).*/\\1/p' | head -n 1)
        echo "port $port" >> $out
        echo "user $(id -u) $(id -un)" >> $out
        if cat /etc/passwd > /dev/null && { [ ! -e /etc/hosts ] || cat /etc/hosts > /dev/null; }; then echo "etc: readable" >> $out; else echo "etc: UNREADABLE" >> $out; fi
        attempt network "bash -c 'exec 3<>/dev/tcp/127.0.0.1/$port'"
        attempt fork-bomb "for i in \\$(seq 1 300); do sleep 30 & done; wait"
        attempt big-file "head -c 3000000 /dev/zero > big.bin"
        rm -f big.bin
        echo "probed the jail"
        """, 120),
    // Attacks the bot through what it leaves in the checkout's `.git` (the vector is `vector=NAME` in the
    // request). A marker in $AGENT_STATE (read-only in the jail) can only appear if the bot runs the agent's
    // command on the host; $VICTIM is a folder of the host the jail does not show.
    "gitattack": (#"""
        cat > /dev/null
        v=$(echo "$ASYNCCODE_PROMPT" | sed -n 's/.*vector=\([a-z]*\).*/\1/p' | head -n 1)
        mark="$AGENT_STATE/pwned-$v"
        run="touch $mark; false"
        echo "attacked through $v" >> README.md
        evil_config() { printf '[core]\n\trepositoryformatversion = 0\n\tfsmonitor = "%s"\n\thooksPath = hooks\n[filter "evil"]\n\tclean = "%s"\n' "$run" "$run" > "$1/config"; }
        case "$v" in
          config)
            git config core.fsmonitor "$run"
            git config filter.evil.clean "$run"
            git config core.hooksPath .git/evil-hooks
            git config diff.external "$AGENT_STATE/pwned-diff"
            mkdir -p .git/hooks .git/evil-hooks .git/info
            for hook in pre-commit post-commit reference-transaction pre-push post-index-change; do
              printf '#!/bin/sh\ntouch %s\n' "$mark" > .git/hooks/$hook; chmod +x .git/hooks/$hook; cp .git/hooks/$hook .git/evil-hooks/
            done
            printf '* filter=evil\n' > .git/info/attributes
            ;;
          commondir)
            mkdir -p evil/objects evil/refs
            evil_config evil
            echo "../evil" > .git/commondir
            ;;
          gitfile)
            mkdir -p evil
            cp -r .git/. evil/
            evil_config evil
            rm -rf .git
            echo "gitdir: evil" > .git
            ;;
          symlink)
            rm -rf .git
            ln -s "$VICTIM" .git
            ;;
          refs)
            echo "$VICTIM/objects" > .git/objects/info/alternates
            printf 'ref: refs/heads/evil\n' > .git/HEAD
            echo "0000000000000000000000000000000000000000 refs/heads/evil" > .git/packed-refs
            echo "shallow-junk" > .git/shallow
            ln -s "$VICTIM" .git/worktrees
            ;;
          nested)
            mkdir -p sub && (cd sub && git init -q && git config core.fsmonitor "$run" && echo nested > file.txt)
            mkdir -p deep/.GIT && evil_config deep/.GIT
            ;;
          links)
            ln -s "$VICTIM/secret.txt" key-link
            ln -s "$VICTIM" victim-link
            mkfifo pipe
            ;;
          selfcommit)
            git -c user.name=mallory -c user.email=m@example.com commit -qam "the agent's own commit"
            ;;
          protected)
            mkdir -p secrets && echo "leaked" > secrets/key.txt
            git add secrets && git -c user.name=mallory -c user.email=m@example.com commit -qm "sneak a protected change in"
            echo "an uncommitted edit" >> README.md
            ;;
        esac
        echo "Attacked through $v."
        """#, 120),
    // Runs until the test writes $AGENT_STATE/release-waiter (its `sleep 1` matches no other test's pgrep).
    "waiter": ("""
        cat > /dev/null
        while [ ! -f "$AGENT_STATE/release-waiter" ]; do sleep 1; done
        echo "waited" >> README.md
        echo "Waited."
        """, 300),
    // Prints a marker, a configured secret and a token each split across two writes, then waits for
    // $AGENT_STATE/release-live (the live output tests).
    "live": ("""
        cat > /dev/null
        echo "live-marker-7f3a: starting"
        printf 'the secret is e2e-webhook-sec'; sleep 1; printf 'ret-0123456789 and a token ghs_0123456789abcdef'
        sleep 1
        printf '0123456789abcdef0123\\n'
        while [ ! -f "$AGENT_STATE/release-live" ]; do sleep 1; done
        echo "live" >> README.md
        echo "Went live."
        """, 300),
    // Prints a configured secret, then 20 MB as fast as it can (the live output's cap).
    "flood": ("""
        cat > /dev/null
        echo "the secret is e2e-webhook-secret-0123456789"
        yes "a noisy agent prints this line over and over 0123456789" | head -c 20000000
        echo
        echo "flooded" >> README.md
        echo "Flooded."
        """, 300),
    // Prints a marker line, then runs until the test writes $AGENT_STATE/release-marker (issue 21: the page shows
    // the line while the agent still runs).
    "marker": ("""
        cat > /dev/null
        echo "marker: the agent is at work"
        while [ ! -f "$AGENT_STATE/release-marker" ]; do sleep 1; done
        echo "marked" >> README.md
        echo "Marked."
        """, 300),
    // Holds 63 of its 64 processes (itself, 61 sleeps and the one that polls) until the test lets it go.
    "hog": ("""
        cat > /dev/null
        i=0
        while [ $i -lt 61 ]; do i=$((i + 1)); sleep 600 & done
        while [ ! -f "$AGENT_STATE/release-hog" ]; do sleep 1; done
        echo "hogged" >> README.md
        echo "Let go."
        """, 300),
    // Starts 20 processes, one after another.
    "forker": ("""
        cat > /dev/null
        i=0
        while [ $i -lt 20 ]; do i=$((i + 1)); sh -c 'true' || exit 3; done
        echo "forked" >> README.md
        echo "Forked twenty times."
        """, 120),
    "bigfile": ("""
        cat > /dev/null
        head -c 3000000 /dev/zero > big.bin
        """, 120),
    "metered": ("""
        cat > /dev/null
        echo "metered edit" >> README.md
        echo '{"asynccode_usage": {"input_tokens": 1000, "output_tokens": 500}}'
        echo "Edited the README, counting tokens."
        """, 120),
    "spender": ("""
        cat > /dev/null
        echo "spent" >> README.md
        i=0
        while [ $i -lt 600 ]; do
          i=$((i + 1))
          echo "{\\"asynccode_usage\\": {\\"input_tokens\\": $((i * 1000)), \\"output_tokens\\": 0}}"
          sleep 0.1
        done
        echo "Spent everything."
        """, 1200),
    "pricey": ("""
        cat > /dev/null
        echo "pricey edit" >> README.md
        echo "Edited at a price."
        """, 1200),
    "workflow": ("""
        cat > /dev/null
        mkdir -p .github/workflows
        echo "on: push" > .github/workflows/deploy.yml
        echo "edited" >> README.md
        echo "Changed the deploy workflow."
        """, 120),
    "promptdump": ("""
        cat > PROMPT.md
        echo "Wrote the prompt down."
        """, 120),
    // Fixes the `status` check only once its prompt carries the check's failure (its second round).
    "fixer": ("""
        prompt=$(cat)
        if printf '%s' "$prompt" | grep -q "BEGIN CHECK OUTPUT"; then
          echo fixed > STATUS.md
          echo "Fixed the status after the failing check."
        else
          echo broken > STATUS.md
          echo "Wrote the status."
        fi
        """, 120),
    "once": ("""
        cat > /dev/null
        if [ ! -f "$AGENT_STATE/release" ]; then
          sleep 3142
        fi
        echo "edited after a restart" >> README.md
        echo "Done on the second try."
        """, 300),
]

/// Per-agent YAML lines beyond the command (indented under the agent).
let extraAgentSettings: [String: String] = [
    "hostile": "    network: none\n    limits: {processes: 64, fileSizeMB: 1}\n",
    "bigfile": "    limits: {fileSizeMB: 1}\n",
    "hog": "    limits: {processes: 64}\n",
    "forker": "    limits: {processes: 64}\n",
    // 1 credit per 1,000 tokens; reports 1,500 tokens: 1.5 credits (the reservation: 20,000 tokens, 20 credits).
    "metered": "    costPerToken: 0.001\n    maxTokens: 20000\n    displayName: Metered Model\n    description: reports its tokens\n",
    "spender": "    costPerToken: 0.001\n    maxTokens: 1000000\n",
    // 10 credits a minute for up to 20 minutes: a reservation of 200, more than a new account has.
    "pricey": "    costPerMinute: 10\n",
    // Free, but it changes a workflow file.
    "workflow": "",
]

/// The usage limits of every end-to-end run unless a test gives its own: none, so tests that run many
/// tasks at once are not held back.
let noLimitsYAML = "limits: {tasksPerRequesterPerHour: 0, runningTasksPerRepository: 0, creditsPerAccountPerDay: 0}\n"

/// One end-to-end run: a fresh database, the GitHub simulator with an App installed on `acme/widgets`,
/// and the real `serve` application (intake and workers) wired to both.
struct EndToEnd: Sendable {
    let sim: GitHubSimulator
    let setup: SimulatedSetup
    let db: TestDatabase
    let port: Int
    /// Shared with the scripted agents (`$AGENT_STATE`, read-only in their jail).
    let stateDirectory: String
    /// Where the agent scripts are (bound read-only into the jail).
    let agentsDirectory: String
    /// A folder of the bot's that no agent may see.
    let privateDirectory: String
    let configPath: String
    let workspaceDirectory: String
    let logs: LogCapture
    /// The bot's configuration (to start a second process of the same deployment).
    let configuration: AppConfiguration

    var repositoryID: Int64 { setup.repository.id }

    /// Runs `body` with the application serving and `workers` workers.
    static func with(
        workers: Int = 2, leaseSeconds: Int = 60, limitsYAML: String = noLimitsYAML,
        repositoryFiles: [String: String] = [:],
        extraAgentsYAML: @Sendable (_ agentsDirectory: String, _ stateDirectory: String) -> String = { _, _ in "" },
        configure: @Sendable (inout AppConfiguration, SimulatedSetup) throws -> Void = { _, _ in },
        _ body: @Sendable (EndToEnd) async throws -> Void
    ) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-\(UUID().uuidString)").path
        let stateDirectory = folder + "/state"
        let agentsDirectory = folder + "/agents"
        let privateDirectory = folder + "/private"
        let workspaceDirectory = folder + "/workspaces"
        for directory in [stateDirectory, agentsDirectory, privateDirectory] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        // The jail's agent user (nobody, when tests run as root) must read the scripts and the state.
        for directory in [folder, stateDirectory, agentsDirectory] {
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory)
        }
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var yaml = "defaultAgent: edit\n" + limitsYAML + "agents:\n"
        for (name, agent) in agentScripts.sorted(by: { $0.key < $1.key }) {
            let path = "\(agentsDirectory)/\(name).sh"
            try ("#!/bin/sh\n" + agent.script + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
            var environment = ["AGENT_STATE": stateDirectory]
            if name == "gitattack" { environment["VICTIM"] = folder + "/victim" }
            if name == "hostile" {
                environment["PRIVATE_DIR"] = privateDirectory
                environment["WORKSPACES"] = workspaceDirectory
                environment["HOST_FOLDER"] = folder
                environment["PG_DATA"] = postgresDataDirectory()
            }
            let envYAML = environment.sorted { $0.key < $1.key }.map { "\($0.key): \"\($0.value)\"" }.joined(separator: ", ")
            yaml += "  \(name):\n    command: [\"\(path)\"]\n    timeout: \(agent.timeout)\n    env: {\(envYAML)}\n"
            yaml += "    binds: [\"\(agentsDirectory)\", \"\(stateDirectory)\"]\n" + (extraAgentSettings[name] ?? "")
        }
        yaml += extraAgentsYAML(agentsDirectory, stateDirectory)
        let configPath = privateDirectory + "/asynccode.yml"
        // What a bot's own folder holds: the App key and a .env with the database URL.
        try "-----BEGIN RSA PRIVATE KEY-----\nnot-a-real-key\n-----END RSA PRIVATE KEY-----\n"
            .write(toFile: privateDirectory + "/app.pem", atomically: true, encoding: .utf8)
        try "DATABASE_URL=postgres://asynccode:secret@127.0.0.1/asynccode\n"
            .write(toFile: privateDirectory + "/.env", atomically: true, encoding: .utf8)
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)

        try await TestDatabase.with { db in
            try await withGitHubSimulator { sim in
                let setup = try await sim.setUpAppWithRepository(
                    owner: "acme", name: "widgets", files: ["README.md": "# Widgets\n"].merging(repositoryFiles) { $1 })
                sim.setCollaborator("alice", role: "write", onRepositoryID: setup.repository.id)
                sim.setCollaborator("rita", role: "read", onRepositoryID: setup.repository.id)

                var configuration = AppConfiguration(
                    databaseURL: db.url, webhookSecrets: [webhookSecret], appID: String(setup.app.id),
                    privateKeyPEM: setup.app.privateKeyPEM, githubAPIURL: URL(string: sim.apiURL)!, port: 0,
                    configFilePath: configPath, migrationsDirectory: TestEnvironment.migrationsDirectory)
                configuration.workers = workers
                configuration.agents = try AppConfiguration.load(
                    environment: ["DATABASE_URL": "postgres://x@127.0.0.1/x", "ASYNCCODE_CONFIG": configPath,
                                  // Agents with `runner: kubernetes` need it; their tests set the real one.
                                  "ASYNCCODE_AGENT_JOB_URL": "http://127.0.0.1:9",
                                  "ASYNCCODE_MIGRATIONS_DIR": TestEnvironment.migrationsDirectory.path],
                    dotEnvPath: nil, requireWebhookSecret: false).agents
                configuration.workspaceDirectory = workspaceDirectory
                configuration.leaseDuration = .seconds(leaseSeconds)
                configuration.shutdownGracePeriod = .seconds(5)
                configuration.executorRetryBaseDelay = .seconds(1)
                // Tests run delivery recovery themselves.
                configuration.recoveryInterval = nil
                try configure(&configuration, setup)

                let logs = LogCapture()
                let logger = logs.logger(label: "e2e", level: .debug)
                let port = Mutex<Int?>(nil)
                let app = try await buildApplication(configuration: configuration, logger: logger) { bound in
                    port.withLock { $0 = bound }
                }
                // Stopped as SIGTERM stops it once the body is done (see `withRunning`).
                try await withRunning(app, logger: logger) {
                    // 90 s: at the start of a run some twenty of these start at once on two cores; one fresh clone's
                    // run saw a server not listening after 30 s there (it listens within a second alone).
                    let starting = ContinuousClock.now
                    try await eventually("the server listens", timeout: .seconds(90)) { port.withLock { $0 } != nil }
                    if ContinuousClock.now - starting > .seconds(10) { print("e2e: the server took \(ContinuousClock.now - starting) to listen") }
                    let bound = port.withLock { $0 }!
                    sim.configureWebhook(url: "http://127.0.0.1:\(bound)/webhooks/github", secret: webhookSecret)
                    try await body(EndToEnd(
                        sim: sim, setup: setup, db: db, port: bound, stateDirectory: stateDirectory,
                        agentsDirectory: agentsDirectory, privateDirectory: privateDirectory, configPath: configPath,
                        workspaceDirectory: workspaceDirectory, logs: logs, configuration: configuration))
                    // Every REST call the bot made is one GitHub would accept.
                    let violations = try OpenAPIConformance.shared.violations(in: sim.requests)
                    #expect(violations.isEmpty, "requests GitHub would reject:\n\(violations.joined(separator: "\n"))")
                    // No minted token in any log line.
                    for line in logs.lines {
                        for token in sim.issuedTokens.map(\.token) { #expect(!line.contains(token)) }
                    }
                }
            }
        }
    }

    /// Creates an issue by `author`.
    func issue(_ title: String = "README needs a line", body: String = "Please add a line to the README.") -> Int {
        sim.createIssue(repositoryID: repositoryID, title: title, body: body, author: "alice")
    }

    /// Comments `text` as `author` and returns the id of the task it queued.
    @discardableResult
    func comment(_ text: String, on issue: Int, by author: String = "alice") async throws -> Int64 {
        let delivery = try await sim.postUserComment(repositoryID: repositoryID, issueNumber: issue, body: text, author: author)
        #expect(delivery.delivery.statusCode == 202 || delivery.delivery.statusCode == 200)
        return try await latestTask(on: issue)
    }

    /// Returns the newest task of the thread, waiting for it to appear.
    func latestTask(on issue: Int) async throws -> Int64 {
        var id: Int64?
        try await eventually("a task is queued for #\(issue)") {
            id = try await db.scalar("SELECT max(id) FROM tasks WHERE issue_number = \(issue)", as: Int64?.self) ?? nil
            return id != nil
        }
        return id!
    }

    /// Waits until the task reaches `status` (and fails fast on another final status).
    func waitFor(task id: Int64, status expected: String, timeout: Duration = .seconds(90)) async throws {
        var seen = ""
        try await eventually("task \(id) ends \(expected) (last seen: \(seen))", timeout: timeout) {
            seen = try await db.scalar("SELECT status::text FROM tasks WHERE id = \(id)", as: String.self) ?? ""
            if seen == expected { return true }
            if ["completed", "failed", "cancelled"].contains(seen), seen != expected {
                let error = try await db.scalar("SELECT coalesce(error, '') FROM tasks WHERE id = \(id)", as: String.self) ?? ""
                Issue.record("task \(id) ended \(seen) instead of \(expected): \(error)")
                return true
            }
            return false
        }
    }

    /// Returns the bot's comments on the thread (the progress comment first).
    func botComments(on issue: Int) -> [SimulatedComment] {
        sim.comments(repositoryID: repositoryID, issueNumber: issue).filter { $0.author == setup.app.botLogin }
    }

    /// Returns a file of a branch as the simulator's repository holds it.
    func file(_ path: String, on branch: String) async throws -> String? {
        let result = try await TestSupport.run(
            ["git", "--git-dir", setup.repository.gitDirectory, "show", "\(branch):\(path)"])
        return result.status == 0 ? result.output : nil
    }

    /// Returns the number of commits on `branch`.
    func commitCount(on branch: String) async throws -> Int {
        let result = try await TestSupport.run(["git", "--git-dir", setup.repository.gitDirectory, "rev-list", "--count", branch])
        return Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// Returns what `GET /metrics` serves (on the bot's port unless `port` names another), as Prometheus
    /// would scrape it.
    func metrics(port other: Int? = nil) async throws -> String {
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        do {
            let response = try await http.execute(HTTPClientRequest(url: "http://127.0.0.1:\(other ?? port)/metrics"), timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 4 * 1024 * 1024)
            try await http.shutdown()
            return String(buffer: body)
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    /// Returns the value of the first sample whose series starts with `prefix` (name and labels), if any.
    func sample(_ prefix: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
            if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { return value }
        }
        return nil
    }

    func string(_ sql: String) async throws -> String? {
        try await db.scalar(sql, as: String?.self) ?? nil
    }
}

/// Returns the test cluster's data folder (from `scripts/setup`'s env file), for the jail tests.
func postgresDataDirectory() -> String {
    TestEnvironment.setupValue("ASYNCCODE_PG_DATA")
        ?? TestEnvironment.packageRoot.appendingPathComponent(".local/postgres/data").path
}

/// Polls `condition` until it holds or `timeout` passes (then records a failure and throws).
func eventually(
    _ what: @autoclosure () -> String, timeout: Duration = .seconds(60), interval: Duration = .milliseconds(100),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: interval)
    }
    if try await condition() { return }
    Issue.record("timed out waiting until \(what())")
    throw CancellationError()
}
