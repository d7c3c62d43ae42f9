import Database
import Foundation
import GitHub
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import OpenSSLCrypto
import Synchronization

extension AppConfiguration {
    /// Returns the setup page's address (this server's public URL, else where it listens), with the
    /// setup token when `withToken` is true.
    public func setupPageURL(withToken: Bool) -> String {
        let base = publicURL?.absoluteString ?? "http://\(host == "0.0.0.0" ? "127.0.0.1" : host):\(port)"
        return base + "/" + (withToken ? "?token=\(setupToken)" : "")
    }
}

/// The setup wizard (GitHub's App manifest flow), served while no App is configured:
///
/// - `GET /?token=…`: the form (App name, optional organization).
/// - `GET /setup/start`: a page that posts the manifest, filled with `ASYNCCODE_PUBLIC_URL`, to GitHub
///   with a random one-time `state`.
/// - `GET /setup/callback?code=…&state=…`: GitHub's redirect. Checks the state, exchanges the code,
///   writes `.env` and the key file (0600), and starts webhooks and workers without a restart.
///
/// A wrong, expired or reused state, or a failed exchange, answers a page that says so and writes nothing.
final class SetupWizard: Sendable {
    /// How long a `state` stays valid (GitHub's codes live one hour too).
    static let stateLifetime: TimeInterval = 3600
    static let maxOpenStates = 64

    let configuration: AppConfiguration
    let secrets: WebhookSecrets
    let completion: SetupCompletion
    let logger: Logger
    let exchange: AppManifestExchange
    private let states = Mutex<[String: (issuedAt: Date, used: Bool)]>([:])

    init(configuration: AppConfiguration, secrets: WebhookSecrets, completion: SetupCompletion, logger: Logger) {
        self.configuration = configuration
        self.secrets = secrets
        self.completion = completion
        self.logger = logger
        self.exchange = AppManifestExchange(configuration: .init(
            apiURL: configuration.githubAPIURL.absoluteString, caBundlePath: configuration.caBundlePath))
    }

    func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/") { request, _ in self.home(request) }
        router.get("/setup/start") { request, _ in self.start(request) }
        router.get("/setup/callback") { request, _ in await self.callback(request) }
    }

    // MARK: Pages

    func home(_ request: Request) -> Response {
        if completion.isComplete { return Self.page(.ok, "asynccode is set up", "<p>The GitHub App is registered; this server receives its webhooks.</p>") }
        guard hasToken(request) else { return tokenRefusal() }
        guard let publicURL = configuration.publicURL else {
            return Self.page(.ok, "Set ASYNCCODE_PUBLIC_URL first", """
                <p>GitHub must reach this server to deliver webhooks, and your browser must reach it when GitHub sends you
                back. Set <code>ASYNCCODE_PUBLIC_URL</code> to that address (for example <code>https://asynccode.example.com</code>,
                or a tunnel's URL), restart asynccode and open this page again.</p>
                """)
        }
        let token = Self.escape(configuration.setupToken)
        let name = "asynccode-" + String(randomToken().prefix(6))
        return Self.page(.ok, "Register the asynccode GitHub App", """
            <p>This creates a private GitHub App from <code>app-manifest/manifest.json</code>: permissions contents, issues,
            pull requests and checks (write), metadata and actions (read); events issues, issue comments, pull requests,
            reviews, review comments, check suites and workflow runs; webhooks to <code>\(Self.escape(publicURL.absoluteString))/webhooks/github</code>.</p>
            <form method="get" action="/setup/start">
              <input type="hidden" name="token" value="\(token)">
              <p><label>App name (unique on GitHub, at most 34 characters)<br>
                 <input name="name" value="\(Self.escape(name))" maxlength="34" required></label></p>
              <p><label>Organization (leave empty to create the App on your personal account)<br>
                 <input name="organization" maxlength="39"></label></p>
              <p><button type="submit">Continue to GitHub</button></p>
            </form>
            """)
    }

    func start(_ request: Request) -> Response {
        if completion.isComplete { return Self.page(.conflict, "Already set up", "<p>The GitHub App is already registered; nothing to do.</p>") }
        guard hasToken(request) else { return tokenRefusal() }
        guard let publicURL = configuration.publicURL else {
            return Self.page(.badRequest, "Set ASYNCCODE_PUBLIC_URL first", "<p>Restart asynccode with <code>ASYNCCODE_PUBLIC_URL</code> set.</p>")
        }
        let query = request.uri.queryParameters
        let name = query["name"].map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
        let organization = query["organization"].map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
        guard (1...34).contains(name.count), name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || " -_.".contains($0)) }) else {
            return Self.page(.badRequest, "Choose another name", "<p>The App name must be 1 to 34 letters, digits, spaces, dots, dashes or underscores.</p>")
        }
        guard organization.isEmpty || Self.isLogin(organization) else {
            return Self.page(.badRequest, "Check the organization", "<p>An organization name is 1 to 39 letters, digits or single dashes.</p>")
        }
        let manifest: String
        do {
            manifest = try Self.manifest(publicURL: publicURL, name: name)
        } catch {
            return Self.page(.internalServerError, "The App manifest is missing", "<p>\(Self.escape(String(describing: error)))</p>")
        }
        guard let state = issueState() else {
            return Self.page(.tooManyRequests, "Too many setups in progress", "<p>Finish or wait for the setups already started (one hour).</p>")
        }
        let web = configuration.resolvedGitHubWebURL.absoluteString
        let path = organization.isEmpty ? "/settings/apps/new" : "/organizations/\(organization)/settings/apps/new"
        let action = "\(web)\(path)?state=\(state)"
        return Self.page(.ok, "Continue on GitHub", """
            <p>GitHub will show the App it is about to create\(organization.isEmpty ? "" : " for <b>\(Self.escape(organization))</b>") and send you back here.</p>
            <form id="manifest-form" method="post" action="\(Self.escape(action))">
              <input type="hidden" name="manifest" value="\(Self.escape(manifest))">
              <p><button type="submit">Create the App on GitHub</button></p>
            </form>
            <script>document.getElementById("manifest-form").submit()</script>
            """)
    }

    func callback(_ request: Request) async -> Response {
        let query = request.uri.queryParameters
        guard let state = query["state"].map(String.init), let code = query["code"].map(String.init), !code.isEmpty else {
            return Self.page(.badRequest, "Setup link incomplete", "<p>GitHub's redirect carries a <code>code</code> and a <code>state</code>; this one does not. Nothing was written. <a href=\"/\">Start again</a>.</p>")
        }
        switch consumeState(state) {
        case .unknown:
            return Self.page(.badRequest, "Unknown setup link", "<p>This server did not start this setup (or restarted since). Nothing was written. Open the setup page again to start over.</p>")
        case .expired:
            return Self.page(.badRequest, "Setup link expired", "<p>Setups must finish within an hour. Nothing was written. Open the setup page again to start over.</p>")
        case .reused:
            return Self.page(.badRequest, "Setup link already used", "<p>Each setup link works once. Nothing was written. Open the setup page again to start over.</p>")
        case .valid:
            break
        }
        guard completion.beginFinishing() else {
            return Self.page(.conflict, "Already set up", "<p>Another setup has registered (or is registering) the App. Nothing was written.</p>")
        }
        let app: CreatedApp
        do {
            app = try await exchange.convert(code: code)
        } catch {
            completion.abandonFinishing()
            logger.warning("setup: GitHub refused the manifest code", metadata: ["error": "\(error)"])
            let status = error.status.map { "HTTP \($0): " } ?? ""
            return Self.page(.badGateway, "GitHub did not hand over the App", """
                <p>Exchanging the code failed (\(Self.escape(status + error.message))). Codes work once and expire after an hour.
                Nothing was written. Open the setup page again to start over.</p>
                """)
        }
        guard let webhookSecret = app.webhookSecret, !webhookSecret.isEmpty else {
            completion.abandonFinishing()
            return Self.page(.badGateway, "The App has no webhook secret", """
                <p>GitHub created the App <b>\(Self.escape(app.name))</b> (id \(app.id)) without a webhook secret. Nothing was written.
                Set a webhook secret in the App's settings and put the App's id, secret and key in <code>.env</code> by hand
                (see <code>app-manifest/README.md</code>).</p>
                """)
        }
        let files = SetupFiles(directory: configuration.setupDirectory)
        let keyPath: String
        do {
            keyPath = try files.write(app, webhookSecret: webhookSecret)
        } catch {
            completion.abandonFinishing()
            logger.error("setup: cannot save the App's credentials", metadata: ["error": "\(error)", "github.app": "\(app.id)"])
            return Self.page(.internalServerError, "The App's credentials could not be saved", """
                <p>GitHub created the App <b>\(Self.escape(app.name))</b> (id \(app.id)), but \(Self.escape(String(describing: error))).
                Nothing was written. Generate a private key on <a href="\(Self.escape(app.htmlURL))">the App's page</a> and set
                <code>GITHUB_APP_ID</code>, <code>GITHUB_WEBHOOK_SECRET</code> and <code>GITHUB_APP_PRIVATE_KEY_PATH</code> by hand.</p>
                """)
        }
        var registered = configuration
        registered.appID = String(app.id)
        registered.privateKeyPEM = app.pem
        registered.webhookSecrets = [webhookSecret]
        secrets.replace(with: [webhookSecret])
        completion.complete(with: registered)
        logger.notice("setup: GitHub App registered", metadata: [
            "github.app": "\(app.id)", "github.appSlug": "\(app.slug ?? "")", "setup.env": "\(files.dotEnvPath)", "setup.key": "\(keyPath)",
        ])
        let install = app.htmlURL + "/installations/new"
        let overridden = ["GITHUB_APP_ID", "GITHUB_WEBHOOK_SECRET", "GITHUB_APP_PRIVATE_KEY_PATH", "GITHUB_APP_PRIVATE_KEY"]
            .filter { ProcessInfo.processInfo.environment[$0] != nil }
        let warning = overridden.isEmpty ? "" : """
            <p><b>Note:</b> \(overridden.map { "<code>\($0)</code>" }.joined(separator: ", ")) \(overridden.count == 1 ? "is" : "are") set in this
            process's environment, which wins over <code>.env</code> at the next start: remove \(overridden.count == 1 ? "it" : "them").</p>
            """
        return Self.page(.ok, "The GitHub App is registered", """
            <p>GitHub created <b>\(Self.escape(app.name))</b> (id \(app.id)). Its id, webhook secret and key path are in
            <code>\(Self.escape(files.dotEnvPath))</code> and its private key in <code>\(Self.escape(keyPath))</code> (both readable by this
            server's user only). This server now receives the App's webhooks and runs tasks; no restart is needed.</p>
            <p><a id="install" href="\(Self.escape(install))">Install the App on your repositories</a>, then comment
            <code>/asynccode help</code> on an issue.</p>
            \(warning)
            """)
    }

    // MARK: State and token

    enum StateCheck { case valid, unknown, expired, reused }

    /// Returns a fresh random state, or nil when too many setups are open.
    func issueState() -> String? {
        let now = Date()
        return states.withLock { states in
            states = states.filter { now.timeIntervalSince($0.value.issuedAt) < Self.stateLifetime }
            guard states.count < Self.maxOpenStates else { return nil }
            let state = randomToken()
            states[state] = (now, false)
            return state
        }
    }

    /// Checks `state` and marks it used, so a second callback with it is refused.
    func consumeState(_ state: String) -> StateCheck {
        states.withLock { states in
            guard let entry = states[state] else { return .unknown }
            if entry.used { return .reused }
            states[state]?.used = true
            return Date().timeIntervalSince(entry.issuedAt) < Self.stateLifetime ? .valid : .expired
        }
    }

    func hasToken(_ request: Request) -> Bool {
        guard let given = request.uri.queryParameters["token"] else { return false }
        return ConstantTime.equals(Array(given.utf8), Array(configuration.setupToken.utf8))
    }

    func tokenRefusal() -> Response {
        Self.page(.forbidden, "Setup token needed", """
            <p>Open the setup address asynccode printed when it started: it ends in <code>?token=…</code>
            (set <code>ASYNCCODE_SETUP_TOKEN</code> to choose the token).</p>
            """)
    }

    // MARK: Helpers

    /// Returns `app-manifest/manifest.json` with this server's URLs and `name` filled in.
    static func manifest(publicURL: URL, name: String) throws -> String {
        guard let path = ProjectResources.locate("app-manifest/manifest.json") else {
            throw SetupManifestError(description: "app-manifest/manifest.json was not found beside the binary or in the working directory")
        }
        guard var manifest = (try? JSONSerialization.jsonObject(with: Data(contentsOf: path))) as? [String: Any] else {
            throw SetupManifestError(description: "\(path.path) is not a JSON object")
        }
        let base = publicURL.absoluteString
        manifest["name"] = name
        manifest["url"] = base
        var hook = manifest["hook_attributes"] as? [String: Any] ?? [:]
        hook["url"] = base + "/webhooks/github"
        hook["active"] = true
        manifest["hook_attributes"] = hook
        manifest["redirect_url"] = base + "/setup/callback"
        // "Sign in with GitHub" comes back here.
        manifest["callback_urls"] = [base + "/auth/callback"]
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    static func isLogin(_ text: String) -> Bool {
        (1...39).contains(text.count) && !text.hasPrefix("-") && !text.hasSuffix("-") && !text.contains("--")
            && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
    }

    static func escape(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }

    static func page(_ status: HTTPResponse.Status, _ title: String, _ body: String) -> Response {
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title)) · asynccode</title>
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}code{background:#f3f3f3;padding:0 .2em}</style>
            </head><body><h1>\(escape(title))</h1>
            \(body)
            </body></html>

            """
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }
}

struct SetupManifestError: Error, CustomStringConvertible {
    var description: String
}
