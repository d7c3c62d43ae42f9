import AsyncCodeApp
import AsyncHTTPClient
import Executor
import Foundation
import OpenSSLCrypto
import GitHubConformance
import GitHubSimulator
import NIOCore
import NIOHTTP1
import Synchronization
import Testing
import TestSupport

/// The setup wizard through GitHub's manifest flow, against the simulator: a browser's steps, the
/// refusals that write nothing, and an App that works without a restart.
@Suite(.serialized, .timeLimit(.minutes(10))) struct SetupWizardTests {
    static let publicURL = "https://asynccode.test"
    static let token = "setup-token-0123456789abcdef"

    /// A browser: follows no redirects, so each hop is checked.
    struct Browser {
        let http: HTTPClient
        /// Where this server really listens (the tunnel behind `publicURL`).
        let botURL: String

        func get(_ url: String) async throws -> (status: Int, location: String?, body: String) {
            try await send(url, method: .GET, form: nil)
        }

        func send(_ url: String, method: HTTPMethod, form: [(String, String)]?) async throws -> (status: Int, location: String?, body: String) {
            var request = HTTPClientRequest(url: url.replacingOccurrences(of: SetupWizardTests.publicURL, with: botURL))
            request.method = method
            request.headers.add(name: "User-Agent", value: "Mozilla/5.0 (test browser)")
            if let form {
                let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
                let encoded = form.map { name, value in
                    name + "=" + (value.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")
                }.joined(separator: "&")
                request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
                request.body = .bytes(ByteBuffer(string: encoded))
            }
            let response = try await http.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1024 * 1024)
            return (Int(response.status.code), response.headers.first(name: "Location"), String(buffer: body))
        }
    }

    @Test func registersTheAppAndServesWithoutARestart() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("setup-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let dotEnv = folder + "/.env"
        let originalEnv = "# the operator's own settings\nDATABASE_URL=postgres://u:p@127.0.0.1/db\nGITHUB_APP_PRIVATE_KEY='stale'\n"
        try originalEnv.write(toFile: dotEnv, atomically: true, encoding: .utf8)
        let agent = folder + "/edit.sh"
        try "#!/bin/sh\ncat > /dev/null\necho 'set up' >> README.md\necho done\n".write(toFile: agent, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: agent)

        try await TestDatabase.with { db in
            try await withGitHubSimulator { sim in
                var configuration = AppConfiguration(
                    databaseURL: db.url, webhookSecrets: [], githubAPIURL: URL(string: sim.apiURL)!, port: 0,
                    migrationsDirectory: TestEnvironment.migrationsDirectory)
                configuration.publicURL = URL(string: Self.publicURL)
                configuration.setupToken = Self.token
                configuration.setupDirectory = folder
                configuration.workers = 1
                configuration.recoveryInterval = nil
                var edit = AgentCommand(name: "edit", command: [agent], timeout: .seconds(60))
                edit.sandbox = .none
                configuration.agents = AgentCatalog(defaultAgent: "edit", agents: ["edit": edit])
                configuration.workspaceDirectory = folder + "/workspaces"

                let logs = LogCapture()
                let port = Mutex<Int?>(nil)
                let app = try await buildApplication(configuration: configuration, logger: logs.logger(label: "setup", level: .debug)) { bound in
                    port.withLock { $0 = bound }
                }
                let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup,
                                      configuration: .init(redirectConfiguration: .disallow))
                do {
                try await withRunning(app, logger: logs.logger(label: "setup", level: .debug)) {
                    try await eventually("the server listens") { port.withLock { $0 } != nil }
                    let botURL = "http://127.0.0.1:\(port.withLock { $0 }!)"
                    let browser = Browser(http: http, botURL: botURL)
                    try await walkThrough(browser: browser, sim: sim, db: db, folder: folder, originalEnv: originalEnv, logs: logs)
                }
                } catch {
                    try? await http.shutdown()
                    throw error
                }
                try await http.shutdown()
            }
        }
    }

    private func walkThrough(
        browser: Browser, sim: GitHubSimulator, db: TestDatabase, folder: String, originalEnv: String, logs: LogCapture
    ) async throws {
        let dotEnv = folder + "/.env"
        // Before the App exists, webhooks are refused with 503 (nothing to check them with).
        var webhook = HTTPClientRequest(url: browser.botURL + "/webhooks/github")
        webhook.method = .POST
        webhook.headers.add(name: "Content-Type", value: "application/json")
        webhook.body = .bytes(ByteBuffer(string: "{}"))
        #expect(try await browser.http.execute(webhook, timeout: .seconds(10)).status.code == 503)

        // The setup page needs the token printed at start.
        #expect(try await browser.get(Self.publicURL + "/").status == 403)
        #expect(try await browser.get(Self.publicURL + "/?token=wrong-token-0123456789").status == 403)
        let home = try await browser.get(Self.publicURL + "/?token=\(Self.token)")
        #expect(home.status == 200)
        #expect(home.body.contains("action=\"/setup/start\""))
        #expect(try await browser.get(Self.publicURL + "/setup/start?token=\(Self.token)&name=bad%3Cname%3E").status == 400)

        // Start: a page that posts the manifest to GitHub with a fresh state.
        func start() async throws -> (action: String, manifest: String) {
            let page = try await browser.get(Self.publicURL + "/setup/start?token=\(Self.token)&name=asynccode-e2e&organization=acme")
            #expect(page.status == 200)
            let action = try #require(Self.attribute("action", in: page.body, after: "id=\"manifest-form\""))
            let manifest = try #require(Self.attribute("value", in: page.body, after: "name=\"manifest\""))
            return (action, manifest)
        }
        let (action, manifestText) = try await start()
        #expect(action.hasPrefix(sim.baseURL + "/organizations/acme/settings/apps/new?state="))
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(manifestText.utf8)) as? [String: Any])
        #expect(manifest["name"] as? String == "asynccode-e2e")
        #expect(manifest["url"] as? String == Self.publicURL)
        #expect(manifest["redirect_url"] as? String == Self.publicURL + "/setup/callback")
        #expect((manifest["hook_attributes"] as? [String: Any])?["url"] as? String == Self.publicURL + "/webhooks/github")
        #expect(manifest["public"] as? Bool == false)
        #expect(manifest["default_permissions"] as? [String: String] == [
            "contents": "write", "issues": "write", "pull_requests": "write", "metadata": "read", "checks": "write", "actions": "read"])
        #expect(Set(manifest["default_events"] as? [String] ?? []) == [
            "issues", "issue_comment", "pull_request", "pull_request_review", "pull_request_review_comment", "check_suite",
            "workflow_run"])

        // Refusals write nothing: an unknown state, a code GitHub does not know.
        func nothingWritten() throws {
            #expect(try String(contentsOfFile: dotEnv, encoding: .utf8) == originalEnv)
            let files = try FileManager.default.contentsOfDirectory(atPath: folder)
            #expect(!files.contains { $0.hasSuffix(".pem") || $0.contains(".tmp-") }, "files: \(files)")
        }
        #expect(try await browser.get(Self.publicURL + "/setup/callback?code=abc&state=forged").status == 400)
        try nothingWritten()
        let (otherAction, _) = try await start()
        let otherState = try #require(URLComponents(string: otherAction)?.queryItems?.first { $0.name == "state" }?.value)
        let refused = try await browser.get(Self.publicURL + "/setup/callback?code=not-a-real-code&state=\(otherState)")
        #expect(refused.status == 502)
        #expect(refused.body.contains("Nothing was written"))
        try nothingWritten()

        // The browser posts the manifest; GitHub sends it back to the callback with a code.
        let github = try await browser.send(action, method: .POST, form: [("manifest", manifestText)])
        #expect(github.status == 302)
        let callback = try #require(github.location)
        #expect(callback.hasPrefix(Self.publicURL + "/setup/callback?code="))
        let done = try await browser.get(callback)
        #expect(done.status == 200, "\(done.body)")
        #expect(done.body.contains("/installations/new"))

        // .env keeps the operator's lines, gains the App's, drops the stale inline key; both files are 0600.
        let env = try String(contentsOfFile: dotEnv, encoding: .utf8)
        #expect(env.contains("# the operator's own settings\nDATABASE_URL=postgres://u:p@127.0.0.1/db\n"))
        #expect(!env.contains("stale"))
        let values = try AppConfiguration.settings(environment: [:], dotEnvPath: dotEnv)
        let appID = try #require(values["GITHUB_APP_ID"].flatMap { Int64($0) })
        let secret = try #require(values["GITHUB_WEBHOOK_SECRET"])
        let keyPath = try #require(values["GITHUB_APP_PRIVATE_KEY_PATH"])
        #expect(keyPath == folder + "/github-app-\(appID).private-key.pem")
        // The OAuth client and a first encryption key, for "Sign in with GitHub".
        let app = try #require(sim.app(id: appID))
        #expect(values["GITHUB_CLIENT_ID"] == app.clientID)
        #expect(values["GITHUB_CLIENT_SECRET"] == app.clientSecret)
        #expect(try KeyRing(parsing: try #require(values["ASYNCCODE_ENCRYPTION_KEYS"])).current.id == "k1")
        #expect(app.callbackURLs == [Self.publicURL + "/auth/callback"])
        #expect(try String(contentsOfFile: keyPath, encoding: .utf8).contains("-----BEGIN RSA PRIVATE KEY-----"))
        for path in [dotEnv, keyPath] {
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(path) has mode \(String(mode ?? 0, radix: 8))")
        }

        // The same redirect again (reused state) is refused and changes nothing.
        let again = try await browser.get(callback)
        #expect(again.status == 400)
        #expect(try String(contentsOfFile: dotEnv, encoding: .utf8) == env)

        // Without a restart: the App's webhooks are accepted and its workers run a task to a pull request.
        let installation = sim.createInstallation(appID: appID, account: "acme")
        let repository = try await sim.createRepository(owner: "acme", name: "widgets", installationID: installation)
        sim.setCollaborator("alice", role: "write", onRepositoryID: repository.id)
        sim.configureWebhook(url: browser.botURL + "/webhooks/github", secret: secret)
        let issue = sim.createIssue(repositoryID: repository.id, title: "Set up", author: "alice")
        let posted = try await sim.postUserComment(repositoryID: repository.id, issueNumber: issue, body: "/asynccode fix", author: "alice")
        #expect(posted.delivery.statusCode == 202)
        try await eventually("the task opens a pull request", timeout: .seconds(90)) {
            !sim.pullRequests(repositoryID: repository.id).isEmpty
        }
        // The server stops only once the task has ended, not while its last calls are in flight.
        try await eventually("the task ends completed", timeout: .seconds(90)) {
            try await db.scalar("SELECT status::text FROM tasks", as: String.self) == "completed"
        }

        // Every call GitHub would accept; no key or secret in any log line.
        let violations = try OpenAPIConformance.shared.violations(in: sim.requests)
        #expect(violations.isEmpty, "\(violations)")
        #expect(sim.requests.contains { $0.method == "POST" && $0.path.hasPrefix("/app-manifests/") })
        let pem = try String(contentsOfFile: keyPath, encoding: .utf8)
        let keyLine = try #require(pem.split(separator: "\n").dropFirst().first.map(String.init))
        for line in logs.lines {
            #expect(!line.contains(secret))
            #expect(!line.contains(keyLine))
            #expect(!line.contains(Self.token))
        }
    }

    /// Returns the HTML-unescaped value of `name="…"` in the first tag after `marker`.
    static func attribute(_ name: String, in html: String, after marker: String) -> String? {
        guard let markerRange = html.range(of: marker) else { return nil }
        let tagStart = html[..<markerRange.lowerBound].lastIndex(of: "<") ?? markerRange.lowerBound
        let tag = html[tagStart...].prefix { $0 != ">" }
        guard let start = tag.range(of: " \(name)=\"") else { return nil }
        let value = tag[start.upperBound...].prefix { $0 != "\"" }
        return value.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&lt;", with: "<")
            .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}
