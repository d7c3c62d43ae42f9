@testable import AsyncCodeApp
import Foundation
import Hummingbird
import HummingbirdTesting
import Intake
import Logging
import Models
import Testing
import TestSupport

struct FailingStore: DeliveryRecording {
    struct Down: Error {}
    func record(_ plan: DeliveryPlan) async throws -> DeliveryOutcome { throw Down() }
}

@Suite(.timeLimit(.minutes(10))) struct WebhookControllerTests {
    @Test func databaseFailureIs503() async throws {
        let router = Router()
        var logger = Logger(label: "t")
        logger.logLevel = .critical
        WebhookController(secrets: WebhookSecrets([secret]), decoder: WebhookDecoder(),
                          store: FailingStore(), logger: logger).addRoutes(to: router)
        let app = Application(router: router, logger: logger)
        try await app.test(.router) { client in
            let response = try await client.deliver(body: try commentPayload("/asynccode fix"))
            #expect(response.status == .serviceUnavailable)
            #expect((response.json["error"] as? String)?.contains("retry") == true)
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct ConfigurationTests {
    let base = ["DATABASE_URL": "postgres://u:dbpass@127.0.0.1:5432/db", "GITHUB_WEBHOOK_SECRET": "whsecret",
                "ASYNCCODE_MIGRATIONS_DIR": TestEnvironment.migrationsDirectory.path]

    func load(_ overrides: [String: String?]) throws(ConfigurationError) -> AppConfiguration {
        var environment = base
        for (key, value) in overrides { environment[key] = value }
        return try AppConfiguration.load(environment: environment, dotEnvPath: nil)
    }

    @Test func agentsAsJobsNeedTheAddressTheirPodsReachTheBotAt() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("k8s-\(UUID().uuidString).yml").path
        try "agents:\n  a:\n    command: [a]\n    runner: kubernetes\n    image: a:1\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        func problem(_ overrides: [String: String?]) -> String? {
            do {
                _ = try load(overrides)
                return nil
            } catch {
                return error.description
            }
        }
        #expect(problem(["ASYNCCODE_CONFIG": path])?.hasPrefix("ASYNCCODE_AGENT_JOB_URL: is not set, and agents a run as Kubernetes Jobs") == true)
        #expect(problem(["ASYNCCODE_CONFIG": path, "ASYNCCODE_AGENT_JOB_URL": "ftp://bot"])?.contains("must be an http(s) URL") == true)
        #expect(problem(["ASYNCCODE_CONFIG": path, "ASYNCCODE_AGENT_JOB_URL": "http://bot:3000",
                         "ASYNCCODE_KUBECONFIG": "/nonexistent"])?.contains("cannot read /nonexistent") == true)
        #expect(problem(["ASYNCCODE_CONFIG": path, "ASYNCCODE_AGENT_JOB_URL": "http://bot:3000",
                         "ASYNCCODE_KUBERNETES_POLL_SECONDS": "0"])?.contains("from 0.05 to 60") == true)
        // `serve` without workers starts no Job: it answers the pods without the cluster's settings.
        #expect(try load(["ASYNCCODE_CONFIG": path, "ASYNCCODE_WORKERS": "0"]).kubernetes == nil)
        let settings = try #require(try load(["ASYNCCODE_CONFIG": path, "ASYNCCODE_AGENT_JOB_URL": "http://asynccode-serve.asynccode.svc:3000/",
                                              "ASYNCCODE_KUBERNETES_TOOLS_IMAGE": "registry.example/asynccode:1.2",
                                              "ASYNCCODE_KUBERNETES_POLL_SECONDS": "0.5"]).kubernetes)
        #expect(settings.agentJobURL.absoluteString == "http://asynccode-serve.asynccode.svc:3000")
        #expect(settings.toolsImage == "registry.example/asynccode:1.2")
        #expect(settings.pollInterval == .milliseconds(500))
        #expect(settings.kubeconfigPath == nil)
        // In the cluster, its service account; here there is none, and the worker says so.
        #expect(throws: ConfigurationError.self) { try settings.client(logger: Logger(label: "t")) }
        // No agent in a cluster: none of this is read.
        #expect(try load(["ASYNCCODE_AGENT_JOB_URL": "not a url"]).kubernetes == nil)
    }

    @Test func defaults() throws {
        let configuration = try load([:])
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 3000)
        #expect(configuration.githubAPIURL.absoluteString == "https://api.github.com")
        #expect(configuration.webhookSecrets == ["whsecret"])
        #expect(configuration.triggerLabel == "asynccode")
        #expect(configuration.intakeFlushers == 4)
        #expect(try load(["ASYNCCODE_INTAKE_FLUSHERS": "8"]).intakeFlushers == 8)
        #expect(configuration.runAhead == 32)
        #expect(try load(["ASYNCCODE_RUN_AHEAD": "1"]).runAhead == 1)
    }

    @Test func rotationAndEnterprise() throws {
        let configuration = try load(["GITHUB_WEBHOOK_SECRET_PREVIOUS": "old", "GITHUB_API_URL": "https://ghe.example/api/v3/",
                                      "PORT": "8080", "HOST": "0.0.0.0"])
        #expect(configuration.webhookSecrets == ["whsecret", "old"])
        #expect(configuration.githubAPIURL.absoluteString == "https://ghe.example/api/v3")
        #expect(configuration.port == 8080)
    }

    @Test(arguments: [
        ("DATABASE_URL", nil as String?), ("DATABASE_URL", "mysql://u:dbpass@h/d"), ("GITHUB_WEBHOOK_SECRET", nil),
        ("PORT", "http"), ("PORT", "70000"), ("GITHUB_API_URL", "ftp://x"), ("GITHUB_APP_ID", "abc"),
        ("GITHUB_APP_PRIVATE_KEY_PATH", "/nonexistent/key.pem"), ("GITHUB_APP_PRIVATE_KEY", "not a pem"),
        ("LOG_LEVEL", "loud"), ("ASYNCCODE_CONFIG", "/nonexistent.yml"), ("ASYNCCODE_INTAKE_FLUSHERS", "0"),
        ("ASYNCCODE_INTAKE_FLUSHERS", "many"), ("ASYNCCODE_RUN_AHEAD", "0"), ("ASYNCCODE_RUN_AHEAD", "129"),
    ])
    func badSettingIsNamedWithoutItsValue(setting: String, value: String?) {
        do {
            _ = try load([setting: value])
            Issue.record("accepted \(setting)=\(value ?? "nil")")
        } catch {
            #expect(error.setting == setting)
            let text = error.description
            #expect(!text.contains("dbpass"))
            #expect(!text.contains("whsecret"))
            #expect(!text.contains("\n"))
        }
    }

    @Test func dotEnvIsReadAndEnvironmentWins() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("env-\(UUID().uuidString)").path
        try """
            # comment
            export DATABASE_URL="postgres://u:p@127.0.0.1/fromfile"
            GITHUB_WEBHOOK_SECRET='file-secret'
            PORT=4000
            GITHUB_APP_ID=12345 # the App's id, from its settings page
            GITHUB_APP_PRIVATE_KEY="-----BEGIN RSA PRIVATE KEY-----\\nabc\\n-----END RSA PRIVATE KEY-----"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let configuration = try AppConfiguration.load(
            environment: ["PORT": "5000", "ASYNCCODE_MIGRATIONS_DIR": TestEnvironment.migrationsDirectory.path], dotEnvPath: path)
        #expect(configuration.databaseURL.database == "fromfile")
        #expect(configuration.webhookSecrets == ["file-secret"])
        #expect(configuration.port == 5000)
        #expect(configuration.privateKeyPEM?.contains("\nabc\n") == true)
        #expect(configuration.appID == "12345")
    }

    @Test func yamlTriggerLabel() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("c-\(UUID().uuidString).yml").path
        try "triggerLabel: ai-fix\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try load(["ASYNCCODE_CONFIG": path]).triggerLabel == "ai-fix")
        #expect(try load(["ASYNCCODE_CONFIG": path]).signedCommits == false)
        try "triggerLabel: ai-fix\nsignedCommits: true\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try load(["ASYNCCODE_CONFIG": path]).signedCommits == true)
        try "triggerLabel: [unclosed\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigurationError.self) { try load(["ASYNCCODE_CONFIG": path]) }
    }
}

@Suite(.timeLimit(.minutes(10))) struct ExecutableTests {
    static let binary = TestEnvironment.packageRoot.appendingPathComponent(".build/debug/asynccode")

    /// Runs the built binary without blocking a thread; returns its status and output.
    func run(_ arguments: [String], environment: [String: String]) async throws -> (status: Int32, stderr: String) {
        let result = try await TestSupport.run(
            [Self.binary.path] + arguments, currentDirectory: FileManager.default.temporaryDirectory.path,
            environment: environment)
        return (result.status, result.output)
    }

    @Test func missingSettingStopsWithOneLine() async throws {
        let result = try await run(["serve"], environment: ["PATH": "/usr/bin:/bin", "GITHUB_WEBHOOK_SECRET": "whsecret"])
        #expect(result.status == 1)
        #expect(result.stderr == "asynccode: configuration error: DATABASE_URL: is not set (postgres://USER:PASSWORD@HOST:PORT/DATABASE)\n")
        let malformed = try await run(["serve"], environment: [
            "PATH": "/usr/bin:/bin", "DATABASE_URL": "postgres://u:topsecret@127.0.0.1/x", "GITHUB_WEBHOOK_SECRET": "whsecret",
            "PORT": "eighty",
        ])
        #expect(malformed.status == 1)
        #expect(malformed.stderr.split(separator: "\n").count == 1)
        #expect(malformed.stderr.contains("PORT"))
        #expect(!malformed.stderr.contains("topsecret"))
    }

    @Test func migrateReportsAnUnreachableDatabaseInOneLine() async throws {
        let result = try await run(["migrate"], environment: [
            "PATH": "/usr/bin:/bin", "DATABASE_URL": "postgres://u:topsecret@127.0.0.1:1/x",
            "ASYNCCODE_MIGRATIONS_DIR": TestEnvironment.migrationsDirectory.path,
        ])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("asynccode: "))
        #expect(!result.stderr.contains("topsecret"))
        #expect(result.stderr.split(separator: "\n").count == 1)
    }
}

@Suite(.timeLimit(.minutes(10))) struct JSONLogTests {
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var storage: [String] = []
        var all: [String] { lock.withLock { storage } }
        func append(_ line: String) { lock.withLock { storage.append(line) } }
    }

    @Test func writesOneObjectPerLineWithDottedMetadata() throws {
        let lines = Lines()
        var logger = Logger(label: "asynccode") { label in JSONLogHandler(label: label) { lines.append($0) } }
        logger[metadataKey: "repo.fullName"] = "acme/widgets"
        logger.info("task failed", metadata: ["task.id": "42", "error": "agent \"x\"\nexited", "steps": ["a", "b"]])
        logger.debug("not shown at info")
        try #require(lines.all.count == 1)
        let line = lines.all[0]
        #expect(line.hasSuffix("\n"))
        #expect(line.filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "info")
        #expect(object["message"] as? String == "task failed")
        #expect(object["label"] as? String == "asynccode")
        #expect((object["timestamp"] as? String)?.hasSuffix("Z") == true)
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["task.id"] as? String == "42")
        #expect(metadata["repo.fullName"] as? String == "acme/widgets")
        #expect(metadata["error"] as? String == "agent \"x\"\nexited")
        #expect(metadata["steps"] as? [String] == ["a", "b"])
    }

    @Test func logFormatIsASetting() throws {
        let base = ["DATABASE_URL": "postgres://u@127.0.0.1/x", "GITHUB_WEBHOOK_SECRET": "s",
                    "ASYNCCODE_MIGRATIONS_DIR": TestEnvironment.migrationsDirectory.path]
        #expect(try AppConfiguration.load(environment: base, dotEnvPath: nil).logFormat == .text)
        #expect(try AppConfiguration.load(environment: base.merging(["LOG_FORMAT": "JSON"]) { $1 }, dotEnvPath: nil).logFormat == .json)
        #expect(throws: ConfigurationError.self) {
            try AppConfiguration.load(environment: base.merging(["LOG_FORMAT": "xml"]) { $1 }, dotEnvPath: nil)
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct EventLoopCountTests {
    @Test func oneLoopPerTwoCoresUnlessSet() throws {
        #expect(try eventLoopCount(environment: [:], cores: 1) == 1)
        #expect(try eventLoopCount(environment: [:], cores: 2) == 1)
        #expect(try eventLoopCount(environment: [:], cores: 8) == 4)
        #expect(try eventLoopCount(environment: ["ASYNCCODE_EVENT_LOOPS": "3"], cores: 2) == 3)
        #expect(try eventLoopCount(environment: ["ASYNCCODE_EVENT_LOOPS": " 2 "], cores: 8) == 2)
        // NIO's own variable is left to NIO.
        #expect(try eventLoopCount(environment: ["NIO_SINGLETON_GROUP_LOOP_COUNT": "6"], cores: 2) == nil)
    }

    @Test(arguments: ["0", "-1", "257", "two", "", "1.5"])
    func refusesAnythingButOneTo256(_ value: String) {
        #expect(throws: EventLoopCountError.self) {
            try eventLoopCount(environment: ["ASYNCCODE_EVENT_LOOPS": value], cores: 2)
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct LogThrottleTests {
    @Test func passesItsLimitPerIntervalAndSaysWhatItHeldBack() {
        let start = ContinuousClock.now
        let throttle = LogThrottle(limit: 3, interval: .seconds(60), now: start)
        #expect((0..<3).map { _ in throttle.admit(now: start) } == [0, 0, 0])
        #expect(throttle.admit(now: start + .seconds(30)) == nil)
        #expect(throttle.admit(now: start + .seconds(59)) == nil)
        // A new minute: the first line says two were held back.
        #expect(throttle.admit(now: start + .seconds(60)) == 2)
        #expect(throttle.admit(now: start + .seconds(61)) == 0)
    }

    @Test func aFloodOfBadSignaturesWritesAFewLinesAndCountsEveryOne() async throws {
        let router = Router()
        let capture = LogCapture()
        let metrics = AppMetrics()
        WebhookController(secrets: WebhookSecrets([secret]), decoder: WebhookDecoder(), store: FailingStore(),
                          logger: capture.logger(level: .info), metrics: metrics.factory,
                          refusals: LogThrottle(limit: 5)).addRoutes(to: router)
        let app = Application(router: router, logger: Logger(label: "quiet") { _ in SwiftLogNoOpLogHandler() })
        try await app.test(.router) { client in
            for _ in 0..<40 {
                let response = try await client.deliver(body: try commentPayload("/asynccode fix"), signature: "sha256=" + String(repeating: "0", count: 64))
                #expect(response.status == .unauthorized)
            }
        }
        let lines = capture.lines.filter { $0.contains("webhook delivery") }
        #expect(lines.count == 5, "\(lines)")
        #expect(lines.allSatisfy { $0.contains("http.status=401") })
        var scraped: [UInt8] = []
        metrics.registry.emit(into: &scraped)
        let counted = String(decoding: scraped, as: UTF8.self).split(separator: "\n")
            .filter { $0.hasPrefix("asynccode_webhook_deliveries_total{") && $0.contains("http_401") }
        #expect(counted.map { $0.split(separator: " ").last } == ["40"], "\(counted)")
    }
}
