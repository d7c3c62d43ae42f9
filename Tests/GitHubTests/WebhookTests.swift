import Foundation
import GitHub
import GitHubSimulator
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2))) struct WebhookTests {
    @Test func userCommentDeliversSignedIssueCommentAndRedeliveryResendsIt() async throws {
        try await withFixture { f in
            f.sim.configureWebhook(url: f.sim.webhookSinkURL, secret: "s3cret")
            f.sim.setCollaborator("alice", role: "write", onRepositoryID: f.repository.id)
            let number = f.sim.createIssue(repositoryID: f.repository.id, title: "Flaky test", author: "bob")
            let (comment, delivery) = try await f.sim.postUserComment(repositoryID: f.repository.id, issueNumber: number,
                                                                      body: "/asynccode fix it", author: "alice")
            #expect(delivery.statusCode == 200)
            let received = try #require(f.sim.requests.last { $0.path == "/_simulator/webhook-sink" })
            #expect(received.headers["x-github-event"] == "issue_comment")
            #expect(received.headers["x-github-delivery"] == delivery.guid)
            #expect(received.headers["content-type"] == "application/json")

            // The signature is GitHub's: HMAC-SHA256 of the exact body, checked with the openssl CLI.
            let directory = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try Data(received.body).write(to: URL(fileURLWithPath: "\(directory)/body"))
            let digest = try await run(["openssl", "dgst", "-sha256", "-hmac", "s3cret", "\(directory)/body"])
            let hex = try #require(digest.output.split(separator: " ").last).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(received.headers["x-hub-signature-256"] == "sha256=\(hex)")

            let payload = try #require(received.jsonBody as? [String: Any])
            #expect(payload["action"] as? String == "created")
            let commentJSON = try #require(payload["comment"] as? [String: Any])
            #expect((commentJSON["id"] as? NSNumber)?.int64Value == comment.id)
            #expect(commentJSON["body"] as? String == "/asynccode fix it")
            #expect(commentJSON["author_association"] as? String == "COLLABORATOR")
            #expect(((payload["installation"] as? [String: Any])?["id"] as? NSNumber)?.int64Value == f.installationID)
            #expect((payload["repository"] as? [String: Any])?["full_name"] as? String == "acme/widgets")
            #expect((payload["sender"] as? [String: Any])?["login"] as? String == "alice")
            #expect(((payload["issue"] as? [String: Any])?["number"] as? NSNumber)?.intValue == number)

            // Redelivery through the REST API resends the same body under the same GUID.
            let (deliveries, _) = try await f.client.listWebhookDeliveries()
            #expect(deliveries.map(\.id) == [delivery.id])
            try await f.client.redeliverWebhookDelivery(id: delivery.id)
            let sink = f.sim.requests.filter { $0.path == "/_simulator/webhook-sink" }
            #expect(sink.count == 2)
            #expect(sink.last?.body == received.body)
            #expect(sink.last?.headers["x-github-delivery"] == delivery.guid)
            let (after, _) = try await f.client.listWebhookDeliveries()
            #expect(after.count == 2)
            #expect(after.first?.redelivery == true)
            #expect(after.first?.guid == delivery.guid)
        }
    }

    @Test func unreachableReceiverIsRecordedAsFailedDelivery() async throws {
        try await withFixture { f in
            f.sim.configureWebhook(url: "http://127.0.0.1:9/webhooks", secret: nil)
            let number = f.sim.createIssue(repositoryID: f.repository.id, title: "x")
            let (_, delivery) = try await f.sim.postUserComment(repositoryID: f.repository.id, issueNumber: number, body: "/asynccode help")
            #expect(delivery.statusCode == 0)
            let (deliveries, _) = try await f.client.listWebhookDeliveries()
            #expect(deliveries.first?.statusCode == 0)
            #expect(deliveries.first?.event == "issue_comment")
        }
    }
}
