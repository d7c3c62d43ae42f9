import AsyncCodeApp
import Database
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Intake
import Logging
import NIOCore
import PostgresNIO
import Testing
import TestSupport

let secret = "It's a Secret to Everybody"

/// Runs `body` against the real `serve` application on a fresh database.
func withIntake(
    secrets: [String] = [secret], setup: TestingSetup = .live, metricsToken: String? = nil,
    _ body: @Sendable (any TestClientProtocol, TestDatabase) async throws -> Void
) async throws {
    try await TestDatabase.with { db in
        var configuration = AppConfiguration(
            databaseURL: db.url, webhookSecrets: secrets, port: 0,
            migrationsDirectory: TestEnvironment.migrationsDirectory)
        configuration.metricsToken = metricsToken
        var logger = Logger(label: "intake-test")
        logger.logLevel = .critical
        let app = try await buildApplication(configuration: configuration, logger: logger)
        try await app.test(setup) { client in try await body(client, db) }
    }
}

extension TestClientProtocol {
    /// Posts `body` as GitHub would, signed with `secret` unless `signature` says otherwise.
    func deliver(
        event: String? = "issue_comment", delivery: String? = UUID().uuidString, body: [UInt8],
        signature: String? = nil, sign: Bool = true, contentType: String? = "application/json",
        extraHeaders: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = extraHeaders
        if let event { headers[HTTPField.Name("X-GitHub-Event")!] = event }
        if let delivery { headers[HTTPField.Name("X-GitHub-Delivery")!] = delivery }
        if let contentType { headers[.contentType] = contentType }
        if let signature {
            headers[HTTPField.Name("X-Hub-Signature-256")!] = signature
        } else if sign {
            headers[HTTPField.Name("X-Hub-Signature-256")!] = WebhookVerifier.signature(for: body, secret: secret)
        }
        headers[.userAgent] = "GitHub-Hookshot/test"
        return try await execute(uri: "/webhooks/github", method: .post, headers: headers, body: ByteBuffer(bytes: body))
    }
}

extension TestResponse {
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
    }
    var bodyStatus: String? { json["status"] as? String }
}

func commentPayload(_ text: String, commentID: Int = 492700400, senderType: String = "User") throws -> [UInt8] {
    var object = try JSONSerialization.jsonObject(
        with: Data(TestEnvironment.fixture("webhooks/issue_comment/created.with-installation.payload.json"))) as! [String: Any]
    var comment = object["comment"] as! [String: Any]
    comment["body"] = text
    comment["id"] = commentID
    object["comment"] = comment
    var sender = object["sender"] as! [String: Any]
    sender["type"] = senderType
    object["sender"] = sender
    return Array(try JSONSerialization.data(withJSONObject: object))
}

@Suite(.timeLimit(.minutes(10))) struct IntakeHTTPTests {
    @Test func everyExampleIsAccepted() async throws {
        let examples = TestEnvironment.handledWebhookExamples()
        #expect(examples.count >= 70)
        try await withIntake { client, db in
            for path in examples {
                let event = String(path.split(separator: "/")[0])
                let response = try await client.deliver(event: event, body: try TestEnvironment.fixture("webhooks/" + path))
                #expect(response.status == .accepted, "\(path)")
                #expect(["ignored", "recorded"].contains(response.bodyStatus ?? ""), "\(path): \(response.json)")
            }
            #expect(try await db.count("webhook_deliveries") == examples.count)
            #expect(try await db.count("tasks") == 0)
        }
    }

    @Test func commandQueuesTaskAndNotifies() async throws {
        try await withIntake { client, db in
            // Listen first, on a connection of its own.
            let listener = try await PostgresConnection.connect(
                configuration: db.url.connectionConfiguration(), id: 7, logger: db.logger)
            try await listener.listen(on: "asynccode_work") { notifications in
                let response = try await client.deliver(body: try commentPayload("/asynccode fix readme"))
                #expect(response.status == .accepted)
                #expect(response.bodyStatus == "queued")
                let ids = response.json["tasks"] as? [Int] ?? []
                #expect(ids.count == 1)
                var iterator = notifications.makeAsyncIterator()
                let note = try await iterator.next()
                #expect(note?.payload == "task:\(ids.first ?? -1)")
            }
            try await listener.close()

            #expect(try await db.scalar("SELECT status::text FROM tasks", as: String.self) == "pending")
            #expect(try await db.scalar("SELECT prompt FROM tasks", as: String.self) == "fix readme")
            #expect(try await db.scalar("SELECT kind::text FROM tasks", as: String.self) == "code")
            #expect(try await db.scalar("SELECT a.login FROM tasks t JOIN accounts a ON a.id = t.requested_by", as: String.self) == "Codertocat")
            #expect(try await db.scalar("SELECT r.clone_url FROM repositories r", as: String.self) == "https://github.com/Codertocat/Hello-World.git")
            #expect(try await db.scalar("SELECT i.github_id FROM installations i", as: Int64.self) == 1)
            #expect(try await db.scalar("SELECT jsonb_array_length(chat_messages)::int8 FROM tasks", as: Int64.self) == 1)
            #expect(try await db.scalar("SELECT outcome FROM webhook_deliveries", as: String.self) == "queued")
        }
    }

    @Test func ordinaryCommentWritesOnlyItsDelivery() async throws {
        try await withIntake { client, db in
            let payload = try commentPayload("Looks good to me")
            let response = try await client.deliver(body: payload)
            #expect(response.bodyStatus == "ignored")
            #expect(try await db.count("webhook_deliveries") == 1)
            #expect(try await db.count("accounts") == 0)
            #expect(try await db.count("repositories") == 0)
            #expect(try await db.count("installations") == 0)
            // The raw body is kept byte for byte.
            let stored = try await db.scalar("SELECT payload FROM webhook_deliveries", as: ByteBuffer.self)
            #expect(stored.map { Array($0.readableBytesView) } == payload)
        }
    }

    @Test func rejectionsWriteNothing() async throws {
        try await withIntake { client, db in
            let body = try commentPayload("/asynccode fix")
            let sha1 = HTTPFields([HTTPField(name: HTTPField.Name("X-Hub-Signature")!, value: "sha1=0123456789abcdef0123456789abcdef01234567")])
            let cases: [(String, TestResponse, HTTPResponse.Status)] = [
                ("no signature", try await client.deliver(body: body, sign: false), .unauthorized),
                ("sha1 only", try await client.deliver(body: body, sign: false, extraHeaders: sha1), .unauthorized),
                ("wrong secret", try await client.deliver(body: body, signature: WebhookVerifier.signature(for: body, secret: "nope")), .unauthorized),
                ("garbage signature", try await client.deliver(body: body, signature: "sha256=zz"), .unauthorized),
                ("signature of other body", try await client.deliver(body: body, signature: WebhookVerifier.signature(for: Array("{}".utf8), secret: secret)), .unauthorized),
                ("no event", try await client.deliver(event: nil, body: body), .badRequest),
                ("bad event", try await client.deliver(event: "Issue Comment", body: body), .badRequest),
                ("no delivery", try await client.deliver(delivery: nil, body: body), .badRequest),
                ("bad json", try await client.deliver(body: Array("{\"action\":".utf8)), .badRequest),
                ("wrong shape", try await client.deliver(body: Array(#"{"action":"created","comment":{"body":"/asynccode x"}}"#.utf8)), .badRequest),
                ("not an object", try await client.deliver(body: Array("[1,2]".utf8)), .badRequest),
                ("form encoded", try await client.deliver(body: body, contentType: "application/x-www-form-urlencoded"), .unsupportedMediaType),
                ("no content type", try await client.deliver(body: body, contentType: nil), .unsupportedMediaType),
            ]
            for (name, response, status) in cases {
                #expect(response.status == status, "\(name)")
                #expect(response.json["error"] is String, "\(name)")
            }
            // The signature is checked before headers and JSON: unsigned garbage is 401, not 400.
            let unsignedGarbage = try await client.deliver(event: nil, delivery: nil, body: Array("{".utf8), sign: false)
            #expect(unsignedGarbage.status == .unauthorized)
            // A charset parameter is fine.
            let charset = try await client.deliver(body: try commentPayload("hi"), contentType: "application/json; charset=utf-8")
            #expect(charset.status == .accepted)
            #expect(try await db.count("webhook_deliveries") == 1)
            #expect(try await db.count("tasks") == 0)
        }
    }

    @Test func oversizedBodyIs413() async throws {
        try await withIntake(setup: .ahc(.http)) { client, db in
            let big = [UInt8](repeating: UInt8(ascii: " "), count: 25 * 1024 * 1024 + 1)
            let response = try await client.deliver(body: big)
            #expect(response.status == .contentTooLarge)
            #expect(try await db.count("webhook_deliveries") == 0)
        }
    }

    @Test func twentyConcurrentCopiesOfOneDeliveryMakeOneRowAndOneTask() async throws {
        try await withIntake(setup: .ahc(.http)) { client, db in
            let body = try commentPayload("/asynccode fix readme")
            let guid = UUID().uuidString
            let statuses = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        let response = try await client.deliver(delivery: guid, body: body)
                        #expect(response.status == .accepted)
                        return response.bodyStatus ?? "?"
                    }
                }
                var all: [String] = []
                for try await status in group { all.append(status) }
                return all
            }
            #expect(statuses.filter { $0 == "queued" }.count == 1)
            #expect(statuses.filter { $0 == "duplicate" }.count == 19)
            #expect(try await db.count("webhook_deliveries") == 1)
            #expect(try await db.count("tasks") == 1)
        }
    }

    @Test func sameCommentUnderTwoGUIDsMakesOneTask() async throws {
        try await withIntake(setup: .ahc(.http)) { client, db in
            let body = try commentPayload("/asynccode fix readme\n/asynccode ask why")
            let first = try await client.deliver(body: body)
            let second = try await client.deliver(body: body)
            #expect(first.bodyStatus == "queued")
            #expect((first.json["tasks"] as? [Int])?.count == 2)
            #expect(second.bodyStatus == "duplicate")
            #expect(try await db.count("webhook_deliveries") == 2)
            #expect(try await db.count("tasks") == 2)
            #expect(try await db.scalar("SELECT string_agg(outcome, ',' ORDER BY id) FROM webhook_deliveries", as: String.self) == "queued,duplicate")
            // Concurrently, too, with many GUIDs for one new comment.
            let other = try commentPayload("/asynccode docs update", commentID: 555)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<10 { group.addTask { _ = try await client.deliver(body: other) } }
                try await group.waitForAll()
            }
            #expect(try await db.count("tasks WHERE comment_id = 555") == 1)
        }
    }

    @Test func controlCommandsAndBotsAndEdits() async throws {
        try await withIntake { client, db in
            let control = try await client.deliver(body: try commentPayload("/asynccode cancel\n/asynccode --priority nope x", commentID: 1))
            #expect(control.bodyStatus == "queued")
            #expect((control.json["commands"] as? [Int])?.count == 2)
            #expect(try await db.scalar("SELECT string_agg(verb, ',' ORDER BY command_index) FROM control_commands", as: String.self) == "cancel,invalid")

            let bot = try await client.deliver(body: try commentPayload("/asynccode fix", commentID: 2, senderType: "Bot"))
            #expect(bot.bodyStatus == "ignored")
            #expect((bot.json["reason"] as? String)?.contains("bot") == true)
            #expect(try await db.count("tasks") == 0)
        }
    }

    @Test func labelQueuesTask() async throws {
        try await withIntake { client, db in
            var object = try JSONSerialization.jsonObject(
                with: Data(TestEnvironment.fixture("webhooks/issues/labeled.payload.json"))) as! [String: Any]
            object["label"] = ["name": "asynccode"]
            object["installation"] = ["id": 42]
            let response = try await client.deliver(event: "issues", body: Array(try JSONSerialization.data(withJSONObject: object)))
            #expect(response.bodyStatus == "queued")
            // The executor checks the label against the repository's trigger label before it makes a task.
            #expect(try await db.scalar("SELECT verb || ':' || argument FROM control_commands", as: String.self) == "label:asynccode")
            #expect(try await db.count("tasks") == 0)
        }
    }

    @Test func installationLifecycle() async throws {
        try await withIntake { client, db in
            // The examples come from different installations: make them one installation's story.
            func send(_ event: String, _ path: String, edit: ([String: Any]) -> [String: Any] = { $0 }) async throws -> TestResponse {
                var object = try JSONSerialization.jsonObject(
                    with: Data(TestEnvironment.fixture("webhooks/\(event)/\(path)"))) as! [String: Any]
                var installation = object["installation"] as! [String: Any]
                installation["id"] = 957387
                object["installation"] = installation
                object = edit(object)
                return try await client.deliver(event: event, body: Array(try JSONSerialization.data(withJSONObject: object)))
            }
            #expect(try await send("installation", "created.payload.json").bodyStatus == "recorded")
            #expect(try await db.count("installations WHERE deleted_at IS NULL") == 1)
            #expect(try await db.scalar("SELECT a.login FROM installations i JOIN accounts a ON a.id = i.account_id", as: String.self) == "Codertocat")
            let repositories = try await db.count("repositories WHERE is_active")
            #expect(repositories > 0)
            #expect(try await send("installation", "suspend.payload.json").bodyStatus == "recorded")
            #expect(try await db.count("installations WHERE suspended_at IS NOT NULL") == 1)
            #expect(try await send("installation", "unsuspend.payload.json").bodyStatus == "recorded")
            #expect(try await db.count("installations WHERE suspended_at IS NULL") == 1)
            #expect(try await send("installation_repositories", "added.payload.json").bodyStatus == "recorded")
            #expect(try await db.count("repositories WHERE github_id = 186853007 AND is_active") == 1)
            let removed = try await send("installation_repositories", "removed.payload.json") { object in
                var object = object
                object["repositories_removed"] = [["id": 186853007, "name": "Hello-World", "full_name": "Codertocat/Hello-World", "private": false]]
                return object
            }
            #expect(removed.bodyStatus == "recorded")
            #expect(try await db.count("repositories WHERE github_id = 186853007 AND NOT is_active") == 1)
            #expect(try await send("installation", "deleted.payload.json").bodyStatus == "recorded")
            #expect(try await db.count("installations WHERE deleted_at IS NOT NULL") == 1)
            #expect(try await db.count("repositories WHERE is_active") == 0)
        }
    }

    @Test func pullRequestEventsUpdateTheBotsPullRequests() async throws {
        try await withIntake { client, db in
            let merged = try TestEnvironment.fixture("webhooks/pull_request/closed.merged.payload.json")
            let prID = ((try JSONSerialization.jsonObject(with: Data(merged)) as! [String: Any])["pull_request"] as! [String: Any])["id"] as! Int
            // Not ours yet: nothing to update.
            #expect(try await client.deliver(event: "pull_request", body: merged).bodyStatus == "ignored")
            try await db.client.query("""
                WITH i AS (INSERT INTO installations (github_id) VALUES (2) RETURNING id),
                     r AS (INSERT INTO repositories (github_id, installation_id, full_name, name, owner_login)
                           SELECT 186853002, id, 'Codertocat/Hello-World', 'Hello-World', 'Codertocat' FROM i RETURNING id)
                INSERT INTO pull_requests (repository_id, github_pr_id, number, title, source_branch, target_branch)
                SELECT id, \(prID), 2, 'Update the README', 'asynccode/1-readme', 'master' FROM r
                """, logger: db.logger)
            #expect(try await client.deliver(event: "pull_request", body: merged).bodyStatus == "recorded")
            #expect(try await db.scalar("SELECT status::text FROM pull_requests", as: String.self) == "merged")
            #expect(try await db.count("pull_requests WHERE merged_at IS NOT NULL") == 1)
            let reopened = try TestEnvironment.fixture("webhooks/pull_request/reopened.payload.json")
            _ = try await client.deliver(event: "pull_request", body: reopened)
        }
    }

    @Test func previousSecretIsAccepted() async throws {
        try await withIntake(secrets: ["rotated-new", secret]) { client, db in
            let response = try await client.deliver(body: try commentPayload("hello"))
            #expect(response.status == .accepted)
        }
    }

    @Test func healthAndReadiness() async throws {
        try await withIntake { client, _ in
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .ok)
        }
    }

    @Test func metricsCountDeliveriesAndAskForTheTokenWhenOneIsSet() async throws {
        try await withIntake(metricsToken: "metrics-token-0123456789") { client, _ in
            _ = try await client.deliver(body: try commentPayload("/asynccode fix the build"))
            _ = try await client.deliver(body: Array("{}".utf8), signature: "sha256=" + String(repeating: "0", count: 64))
            #expect(try await client.execute(uri: "/metrics", method: .get).status == .unauthorized)
            #expect(try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer wrong"]).status == .unauthorized)
            let scraped = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer metrics-token-0123456789"])
            #expect(scraped.status == .ok)
            #expect(scraped.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = String(buffer: scraped.body)
            #expect(text.contains(#"asynccode_webhook_deliveries_total{event="issue_comment",outcome="queued"} 1"#))
            // A bad signature counts without its (attacker-chosen) event name.
            #expect(text.contains(#"asynccode_webhook_deliveries_total{event="unverified",outcome="http_401"} 1"#))
            #expect(text.contains(#"asynccode_tasks{status="pending"} 1"#))
            #expect(text.contains("asynccode_database_up 1"))
        }
    }
}
