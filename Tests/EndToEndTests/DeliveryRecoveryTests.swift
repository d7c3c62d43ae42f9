import Foundation
import GitHub
import GitHubSimulator
import Logging
import Recovery
import Testing
import TestSupport

/// GitHub never redelivers a failed webhook by itself: recovery finds the ones we never recorded.
@Suite(.serialized, .timeLimit(.minutes(10))) struct DeliveryRecoveryTests {
    @Test func aDeliveryThatFailedIsRedeliveredAndMakesItsTaskOnce() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            // The bot is unreachable: GitHub records a failed delivery.
            e2e.sim.configureWebhook(url: "http://127.0.0.1:1/webhooks/github", secret: webhookSecret)
            let lost = try await e2e.sim.postUserComment(
                repositoryID: e2e.repositoryID, issueNumber: issue, body: "/asynccode --agent noop fix it", author: "alice")
            #expect(lost.delivery.statusCode == 0)
            // The bot is back; a later delivery arrives as usual and must not be asked for again.
            e2e.sim.configureWebhook(url: "http://127.0.0.1:\(e2e.port)/webhooks/github", secret: webhookSecret)
            let fine = try await e2e.sim.postUserComment(
                repositoryID: e2e.repositoryID, issueNumber: issue, body: "thanks!", author: "alice")
            #expect(fine.delivery.statusCode == 202 || fine.delivery.statusCode == 200)
            #expect(try await e2e.db.count("tasks") == 0)

            let github = try GitHubClient(
                configuration: .init(apiURL: e2e.sim.apiURL),
                signer: AppJWTSigner(issuer: String(e2e.setup.app.id), privateKeyPEM: e2e.setup.app.privateKeyPEM))
            let recovery = DeliveryRecovery(log: github, client: e2e.db.client, logger: Logger(label: "recovery-test"))
            let report = try await recovery.recoverOnce()
            #expect(report.listed == 2)
            #expect(report.missing == 1)
            #expect(report.redelivered == 1)
            #expect(e2e.sim.redeliveryRequests == [lost.delivery.id])
            let taskID = try await e2e.latestTask(on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            #expect(try await e2e.string("SELECT delivery_id FROM tasks WHERE id = \(taskID)") == lost.delivery.guid)

            // Nothing is missing any more: the next pass asks for nothing, and there is still one task.
            let again = try await recovery.recoverOnce()
            #expect(again.missing == 0)
            #expect(again.redelivered == 0)
            #expect(e2e.sim.redeliveryRequests.count == 1)
            #expect(try await e2e.db.count("tasks") == 1)
            try await github.shutdown()
        }
    }
}
