import Database
import Executor
import Foundation
import OpenSSLCrypto
import SignIn
import Logging
import Queue

/// How log lines are written.
public enum LogFormat: String, Sendable {
    case text, json
}

/// A setting that is missing or malformed. The description names the setting, never its value.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var setting: String
    public var problem: String

    public init(setting: String, problem: String) {
        self.setting = setting
        self.problem = problem
    }

    public var description: String { "\(setting): \(problem)" }
}

/// The process's settings, read from the environment and a `.env` file in the working directory.
public struct AppConfiguration: Sendable {
    public var databaseURL: DatabaseURL
    public var webhookSecrets: [String]
    public var appID: String?
    /// The App's private key in PEM, when one is configured.
    public var privateKeyPEM: String?
    public var githubAPIURL: URL
    public var host: String
    public var port: Int
    /// The YAML file for agents and defaults (`ASYNCCODE_CONFIG`).
    public var configFilePath: String?
    public var triggerLabel: String
    /// Commits through GitHub's API, signed as the App, where a repository does not say (`signedCommits` in the
    /// `ASYNCCODE_CONFIG` file).
    public var signedCommits = false
    public var logLevel: Logger.Level
    /// `text` (default) or `json`: one JSON object per line (`LOG_FORMAT`).
    public var logFormat: LogFormat = .text
    /// Where the numbered SQL migrations are.
    public var migrationsDirectory: URL
    /// How many intake transactions may be in flight at once (`ASYNCCODE_INTAKE_FLUSHERS`).
    public var intakeFlushers: Int = 4
    /// Task workers in this process (`ASYNCCODE_WORKERS`, default 2; 0 serves webhooks only).
    public var workers: Int = 2
    /// The agents from the `ASYNCCODE_CONFIG` file.
    public var agents = AgentCatalog(defaultAgent: nil, agents: [:])
    /// Where the repository cache's mirrors are (`ASYNCCODE_REPO_CACHE_DIR`; `nil`: `repo-cache` in the workspace
    /// folder) and how big they may grow (`ASYNCCODE_REPO_CACHE_MB`; 0: no cache, every task clones).
    public var repositoryCacheDirectory: String?
    public var repositoryCacheBytes: Int64 = 10_240 << 20
    /// Whether the cache keeps a checkout of each repository ready for its next task (`ASYNCCODE_REPO_CACHE_READY`,
    /// `1` or `0`).
    public var repositoryCacheReadyCheckouts = true
    /// How agents with `runner: kubernetes` reach the cluster and the cluster the bot (`nil`: none do).
    public var kubernetes: KubernetesSettings?
    /// Where task workspaces are made (`ASYNCCODE_WORKSPACE_DIR`).
    public var workspaceDirectory: String = FileManager.default.temporaryDirectory.path + "/asynccode-workspaces"
    /// Trust roots for GitHub Enterprise Server (`GITHUB_CA_BUNDLE`), for the API and git.
    public var caBundlePath: String?
    /// The most tasks a worker's claim takes while tasks turn out quick (`ASYNCCODE_RUN_AHEAD`, default 32;
    /// 1 claims one at a time). See `RunAhead`.
    public var runAhead: Int = RunAhead.standard.maxTasks
    /// How long a task's claim holds before another worker may take it (`ASYNCCODE_LEASE_SECONDS`).
    public var leaseDuration: Duration = .seconds(60)
    /// How long running tasks may finish after SIGTERM (`ASYNCCODE_SHUTDOWN_GRACE_SECONDS`).
    public var shutdownGracePeriod: Duration = .seconds(30)
    /// The first retry's delay after a transient failure (`ASYNCCODE_RETRY_BASE_SECONDS`), doubled per attempt.
    public var executorRetryBaseDelay: Duration = .seconds(10)

    /// How often `serve` asks GitHub to redeliver failed webhook deliveries (`ASYNCCODE_RECOVERY_MINUTES`,
    /// default 5; 0 turns it off). Needs the App's id and key.
    public var recoveryInterval: Duration? = .seconds(300)

    /// How long task events are kept (`ASYNCCODE_EVENT_RETENTION_DAYS`, default 7); a running task's are kept.
    public var eventRetention: Duration = .seconds(7 * 86_400)
    /// How long an event stream stays quiet before it sends a comment (proxies close silent connections).
    public var eventHeartbeat: Duration = .seconds(15)
    /// How often an open event stream reads its user's session and access again (a signed-out user's ends).
    public var eventAccessRecheck: Duration = .seconds(60)
    /// Event streams one user may hold open at once (`ASYNCCODE_EVENT_STREAMS_PER_USER`, default 20).
    public var eventStreamsPerUser = 20

    /// This server's public URL (`ASYNCCODE_PUBLIC_URL`): the setup wizard puts it in the App manifest's
    /// webhook and redirect URLs.
    public var publicURL: URL?
    /// GitHub's web address (`GITHUB_WEB_URL`), where the setup wizard posts the manifest; derived from
    /// `GITHUB_API_URL` by default.
    public var githubWebURL: URL?
    /// The App's OAuth client for "Sign in with GitHub" (`GITHUB_CLIENT_ID`, `GITHUB_CLIENT_SECRET`).
    public var clientID: String?
    public var clientSecret: String?
    /// API requests a minute per signed-in user (`ASYNCCODE_API_REQUESTS_PER_MINUTE`); one client address may
    /// make twice as many.
    public var apiRequestsPerMinute = 300
    /// The keys that encrypt users' GitHub tokens at rest (`ASYNCCODE_ENCRYPTION_KEYS`: `id:base64,…`).
    public var encryptionKeys: KeyRing?
    /// The one-time token the setup page asks for (`ASYNCCODE_SETUP_TOKEN`; random when unset).
    public var setupToken: String = randomToken()
    /// The bearer token `GET /metrics` asks for (`ASYNCCODE_METRICS_TOKEN`); unset: no token needed.
    public var metricsToken: String?
    /// Where `asynccode worker` serves `GET /metrics` and `GET /healthz` (`ASYNCCODE_WORKER_METRICS_PORT`, on
    /// `HOST`); unset: a worker process serves no HTTP.
    public var workerMetricsPort: Int?
    /// Where the setup wizard writes `.env` and the App's key file (the working directory).
    public var setupDirectory: String = FileManager.default.currentDirectoryPath

    /// Returns GitHub's web address: `githubWebURL`, else `https://github.com` for `api.github.com`,
    /// `https://HOST` for `https://HOST/api/v3`, and the API URL itself otherwise (a GitHub stand-in).
    public var resolvedGitHubWebURL: URL {
        if let githubWebURL { return githubWebURL }
        if githubAPIURL.host == "api.github.com" { return URL(string: "https://github.com")! }
        let text = githubAPIURL.absoluteString
        if text.hasSuffix("/api/v3") { return URL(string: String(text.dropLast("/api/v3".count)))! }
        return githubAPIURL
    }

    /// Returns the sign-in settings when sign-in is configured (client id and secret, public URL, keys), or
    /// which of them is missing.
    public var signInSettings: Result<SignInSettings, ConfigurationError> {
        guard let clientID, let clientSecret else {
            return .failure(ConfigurationError(setting: clientID == nil ? "GITHUB_CLIENT_ID" : "GITHUB_CLIENT_SECRET",
                                               problem: "is not set (the App's OAuth client, for signing in)"))
        }
        guard let publicURL else {
            return .failure(ConfigurationError(setting: "ASYNCCODE_PUBLIC_URL", problem: "is not set (GitHub sends the browser back there)"))
        }
        guard let encryptionKeys else {
            return .failure(ConfigurationError(setting: "ASYNCCODE_ENCRYPTION_KEYS", problem: "is not set (users' tokens are stored encrypted)"))
        }
        return .success(SignInSettings(clientID: clientID, clientSecret: clientSecret, publicURL: publicURL.absoluteString,
                                       webURL: resolvedGitHubWebURL.absoluteString, apiURL: githubAPIURL.absoluteString, keys: encryptionKeys))
    }

    /// Returns whether the App's id and key are set, which the workers need.
    public var hasAppCredentials: Bool { appID != nil && privateKeyPEM != nil }

    public init(
        databaseURL: DatabaseURL, webhookSecrets: [String], appID: String? = nil, privateKeyPEM: String? = nil,
        githubAPIURL: URL = URL(string: "https://api.github.com")!, host: String = "127.0.0.1", port: Int = 3000,
        configFilePath: String? = nil, triggerLabel: String = "asynccode", logLevel: Logger.Level = .info,
        migrationsDirectory: URL
    ) {
        self.databaseURL = databaseURL
        self.webhookSecrets = webhookSecrets
        self.appID = appID
        self.privateKeyPEM = privateKeyPEM
        self.githubAPIURL = githubAPIURL
        self.host = host
        self.port = port
        self.configFilePath = configFilePath
        self.triggerLabel = triggerLabel
        self.logLevel = logLevel
        self.migrationsDirectory = migrationsDirectory
    }

    /// Returns the raw settings: `.env`'s, overridden by the environment's.
    public static func settings(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        dotEnvPath: String? = FileManager.default.currentDirectoryPath + "/.env"
    ) throws(ConfigurationError) -> [String: String] {
        var values: [String: String] = [:]
        if let dotEnvPath, FileManager.default.fileExists(atPath: dotEnvPath) {
            values = try DotEnv.parse(path: dotEnvPath)
        }
        values.merge(environment) { _, process in process }
        return values
    }

    /// Reads the settings.
    ///
    /// - Parameters:
    ///   - environment: the process environment; it wins over `.env`.
    ///   - dotEnvPath: the `.env` file to read too, if it exists.
    ///   - requireWebhookSecret: whether `GITHUB_WEBHOOK_SECRET` must be set (it must for `serve`).
    /// - Throws: ``ConfigurationError`` naming the first bad setting.
    public static func load(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        dotEnvPath: String? = FileManager.default.currentDirectoryPath + "/.env",
        requireWebhookSecret: Bool = true
    ) throws(ConfigurationError) -> AppConfiguration {
        let values = try settings(environment: environment, dotEnvPath: dotEnvPath)
        func value(_ name: String) -> String? {
            guard let raw = values[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }

        guard let rawURL = value("DATABASE_URL") else {
            throw ConfigurationError(setting: "DATABASE_URL", problem: "is not set (postgres://USER:PASSWORD@HOST:PORT/DATABASE)")
        }
        let databaseURL: DatabaseURL
        do {
            databaseURL = try DatabaseURL(rawURL)
        } catch {
            throw ConfigurationError(setting: "DATABASE_URL", problem: "is malformed: \(error.message)")
        }

        var secrets: [String] = []
        if let secret = values["GITHUB_WEBHOOK_SECRET"], !secret.isEmpty { secrets.append(secret) }
        if requireWebhookSecret, secrets.isEmpty {
            throw ConfigurationError(setting: "GITHUB_WEBHOOK_SECRET", problem: "is not set (the App's webhook secret)")
        }
        if let previous = values["GITHUB_WEBHOOK_SECRET_PREVIOUS"], !previous.isEmpty { secrets.append(previous) }

        let appID = value("GITHUB_APP_ID")
        if let appID, !(appID.allSatisfy(\.isNumber) || appID.hasPrefix("Iv")) {
            throw ConfigurationError(setting: "GITHUB_APP_ID", problem: "must be the App's numeric id or its client id (Iv...)")
        }
        var privateKeyPEM: String?
        if let path = value("GITHUB_APP_PRIVATE_KEY_PATH") {
            guard let pem = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError(setting: "GITHUB_APP_PRIVATE_KEY_PATH", problem: "cannot read the key file")
            }
            privateKeyPEM = pem
        } else if let inline = values["GITHUB_APP_PRIVATE_KEY"], !inline.isEmpty {
            privateKeyPEM = inline.replacingOccurrences(of: "\\n", with: "\n")
        }
        if let pem = privateKeyPEM, !pem.contains("-----BEGIN") || !pem.contains("PRIVATE KEY-----") {
            throw ConfigurationError(
                setting: value("GITHUB_APP_PRIVATE_KEY_PATH") != nil ? "GITHUB_APP_PRIVATE_KEY_PATH" : "GITHUB_APP_PRIVATE_KEY",
                problem: "does not hold a PEM private key")
        }

        let apiURLString = value("GITHUB_API_URL") ?? "https://api.github.com"
        guard let apiURL = URL(string: apiURLString.hasSuffix("/") ? String(apiURLString.dropLast()) : apiURLString),
              let scheme = apiURL.scheme, scheme == "https" || scheme == "http", apiURL.host != nil else {
            throw ConfigurationError(setting: "GITHUB_API_URL", problem: "must be an http(s) URL such as https://api.github.com")
        }

        func httpURL(_ name: String, example: String) throws(ConfigurationError) -> URL? {
            guard var text = value(name) else { return nil }
            while text.hasSuffix("/") { text.removeLast() }
            guard let url = URL(string: text), let scheme = url.scheme, scheme == "https" || scheme == "http", url.host != nil else {
                throw ConfigurationError(setting: name, problem: "must be an http(s) URL such as \(example)")
            }
            return url
        }
        let publicURL = try httpURL("ASYNCCODE_PUBLIC_URL", example: "https://asynccode.example.com")
        let webURL = try httpURL("GITHUB_WEB_URL", example: "https://github.com")
        let setupToken = value("ASYNCCODE_SETUP_TOKEN")
        if let setupToken, setupToken.count < 16 {
            throw ConfigurationError(setting: "ASYNCCODE_SETUP_TOKEN", problem: "must be at least 16 characters")
        }

        let host = value("HOST") ?? "127.0.0.1"
        let port: Int
        if let rawPort = value("PORT") {
            guard let parsed = Int(rawPort), (0...65535).contains(parsed) else {
                throw ConfigurationError(setting: "PORT", problem: "must be a number from 0 to 65535")
            }
            port = parsed
        } else {
            port = 3000
        }

        let configFilePath = value("ASYNCCODE_CONFIG")
        if let configFilePath, !FileManager.default.isReadableFile(atPath: configFilePath) {
            throw ConfigurationError(setting: "ASYNCCODE_CONFIG", problem: "cannot read \(configFilePath)")
        }
        let fileSettings = try FileSettings.load(path: configFilePath)

        var logLevel = Logger.Level.info
        if let rawLevel = value("LOG_LEVEL") {
            guard let parsed = Logger.Level(rawValue: rawLevel.lowercased()) else {
                throw ConfigurationError(setting: "LOG_LEVEL", problem: "must be trace, debug, info, notice, warning, error or critical")
            }
            logLevel = parsed
        }

        var intakeFlushers = 4
        if let raw = value("ASYNCCODE_INTAKE_FLUSHERS") {
            guard let parsed = Int(raw), (1...64).contains(parsed) else {
                throw ConfigurationError(setting: "ASYNCCODE_INTAKE_FLUSHERS", problem: "must be a number from 1 to 64")
            }
            intakeFlushers = parsed
        }

        func number(_ name: String, in range: ClosedRange<Int>, default fallback: Int) throws(ConfigurationError) -> Int {
            guard let raw = value(name) else { return fallback }
            guard let parsed = Int(raw), range.contains(parsed) else {
                throw ConfigurationError(setting: name, problem: "must be a number from \(range.lowerBound) to \(range.upperBound)")
            }
            return parsed
        }
        let workers = try number("ASYNCCODE_WORKERS", in: 0...64, default: 2)
        let leaseSeconds = try number("ASYNCCODE_LEASE_SECONDS", in: 2...3600, default: 60)
        let runAhead = try number("ASYNCCODE_RUN_AHEAD", in: 1...128, default: RunAhead.standard.maxTasks)
        let graceSeconds = try number("ASYNCCODE_SHUTDOWN_GRACE_SECONDS", in: 0...3600, default: 30)
        let retrySeconds = try number("ASYNCCODE_RETRY_BASE_SECONDS", in: 0...3600, default: 10)
        let recoveryMinutes = try number("ASYNCCODE_RECOVERY_MINUTES", in: 0...1440, default: 5)
        var logFormat = LogFormat.text
        if let raw = value("LOG_FORMAT") {
            guard let parsed = LogFormat(rawValue: raw.lowercased()) else {
                throw ConfigurationError(setting: "LOG_FORMAT", problem: "must be text or json")
            }
            logFormat = parsed
        }
        let agents: AgentCatalog
        do {
            agents = try AgentCatalog.load(path: configFilePath)
        } catch {
            throw ConfigurationError(setting: "ASYNCCODE_CONFIG", problem: error.problem)
        }
        let caBundlePath = value("GITHUB_CA_BUNDLE")
        if let caBundlePath, !FileManager.default.isReadableFile(atPath: caBundlePath) {
            throw ConfigurationError(setting: "GITHUB_CA_BUNDLE", problem: "cannot read \(caBundlePath)")
        }

        guard let migrations = Migration.locateDirectory(environment: values) else {
            throw ConfigurationError(
                setting: "ASYNCCODE_MIGRATIONS_DIR",
                problem: "no migrations folder found; run from the project folder or set it")
        }

        var configuration = AppConfiguration(
            databaseURL: databaseURL, webhookSecrets: secrets, appID: appID, privateKeyPEM: privateKeyPEM,
            githubAPIURL: apiURL, host: host, port: port, configFilePath: configFilePath,
            triggerLabel: fileSettings.triggerLabel ?? "asynccode", logLevel: logLevel, migrationsDirectory: migrations)
        configuration.intakeFlushers = intakeFlushers
        configuration.signedCommits = fileSettings.signedCommits ?? false
        configuration.workers = workers
        configuration.agents = agents
        configuration.kubernetes = try KubernetesSettings.load(agents: agents, workers: workers, value: value)
        if let directory = value("ASYNCCODE_WORKSPACE_DIR") { configuration.workspaceDirectory = directory }
        configuration.repositoryCacheDirectory = value("ASYNCCODE_REPO_CACHE_DIR")
        configuration.repositoryCacheBytes = Int64(try number("ASYNCCODE_REPO_CACHE_MB", in: 0...100_000_000, default: 10_240)) << 20
        configuration.repositoryCacheReadyCheckouts = try number("ASYNCCODE_REPO_CACHE_READY", in: 0...1, default: 1) == 1
        configuration.caBundlePath = caBundlePath
        configuration.leaseDuration = .seconds(leaseSeconds)
        configuration.runAhead = runAhead
        configuration.shutdownGracePeriod = .seconds(graceSeconds)
        configuration.executorRetryBaseDelay = .seconds(retrySeconds)
        configuration.recoveryInterval = recoveryMinutes == 0 ? nil : .seconds(recoveryMinutes * 60)
        configuration.logFormat = logFormat
        configuration.publicURL = publicURL
        configuration.githubWebURL = webURL
        if let setupToken { configuration.setupToken = setupToken }
        configuration.metricsToken = value("ASYNCCODE_METRICS_TOKEN")
        if value("ASYNCCODE_WORKER_METRICS_PORT") != nil {
            configuration.workerMetricsPort = try number("ASYNCCODE_WORKER_METRICS_PORT", in: 0...65535, default: 0)
        }
        configuration.eventStreamsPerUser = try number("ASYNCCODE_EVENT_STREAMS_PER_USER", in: 1...1_000_000, default: 20)
        configuration.eventRetention = .seconds(try number("ASYNCCODE_EVENT_RETENTION_DAYS", in: 1...3650, default: 7) * 86_400)
        configuration.apiRequestsPerMinute = try number("ASYNCCODE_API_REQUESTS_PER_MINUTE", in: 1...100_000, default: 300)
        configuration.clientID = value("GITHUB_CLIENT_ID")
        configuration.clientSecret = value("GITHUB_CLIENT_SECRET")
        if let keys = value("ASYNCCODE_ENCRYPTION_KEYS") {
            do {
                configuration.encryptionKeys = try KeyRing(parsing: keys)
            } catch {
                throw ConfigurationError(setting: "ASYNCCODE_ENCRYPTION_KEYS", problem: error.description + " (make a key with `asynccode keys new`)")
            }
        }
        if let dotEnvPath { configuration.setupDirectory = URL(fileURLWithPath: dotEnvPath).deletingLastPathComponent().path }
        return configuration
    }
}

/// Reads `KEY=VALUE` lines: `#` comments, an optional `export `, and single or double quotes.
enum DotEnv {
    static func parse(path: String) throws(ConfigurationError) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError(setting: ".env", problem: "cannot be read")
        }
        return try parse(text: text)
    }

    static func parse(text: String) throws(ConfigurationError) -> [String: String] {
        var values: [String: String] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigurationError(setting: ".env", problem: "line \(number + 1) is not KEY=VALUE")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
                if first == "\"" { value = value.replacingOccurrences(of: "\\n", with: "\n") }
            } else if let comment = value.range(of: " #") {
                // `KEY=value # note`: the note is not part of an unquoted value.
                value = value[..<comment.lowerBound].trimmingCharacters(in: .whitespaces)
            }
            values[key] = value
        }
        return values
    }
}

/// Returns 32 random characters from [a-z0-9] (the system's secure generator): setup tokens, states, secrets.
public func randomToken() -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    return String((0..<32).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
}
