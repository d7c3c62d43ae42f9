import Foundation
import GitHub
import GitHubSimulator
import Logging
import PostgresNIO
import Recovery
import Synchronization
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

    @Test func onlyDeliveriesThatCanSucceedAreAskedForAgain() async throws {
        try await EndToEnd.with(workers: 0) { e2e in
            // Deliveries we refused for good: a webhook secret rotated (401), malformed (400), too large (413),
            // not JSON (415). Asking again would be refused again.
            var refused: [Int64] = []
            for status in [401, 400, 413, 415] {
                refused.append(e2e.sim.addWebhookDelivery(event: "ping", statusCode: status))
            }
            // Deliveries that can succeed: a bad gateway, rate limited, no answer, unavailable, a timeout.
            var retryable: [Int64] = []
            for status in [502, 429, 0, 503, 408] {
                retryable.append(e2e.sim.addWebhookDelivery(event: "ping", statusCode: status))
            }
            e2e.sim.addWebhookDelivery(event: "ping", statusCode: 200)

            let github = try GitHubClient(
                configuration: .init(apiURL: e2e.sim.apiURL),
                signer: AppJWTSigner(issuer: String(e2e.setup.app.id), privateKeyPEM: e2e.setup.app.privateKeyPEM))
            let recovery = DeliveryRecovery(log: github, client: e2e.db.client, logger: Logger(label: "recovery-test"))
            let report = try await recovery.recoverOnce()
            #expect(report.listed == 10)
            #expect(report.missing == retryable.count)
            #expect(report.unrecoverable == refused.count)
            #expect(report.redelivered == retryable.count)
            #expect(e2e.sim.redeliveryRequests.sorted() == retryable.sorted())
            #expect(Set(e2e.sim.redeliveryRequests).isDisjoint(with: refused))
            try await github.shutdown()
        }
    }

    @Test func aDeliveryWithoutAStatusCodeReadsAsNoAnswerAndIsRedeliverable() throws {
        let json = #"{"id": 7, "guid": "a-guid", "event": "issue_comment", "redelivery": false, "status": "timed out"}"#
        let delivery = try JSONDecoder().decode(WebhookDelivery.self, from: Data(json.utf8))
        #expect(delivery.statusCode == 0)
        #expect(RedeliveryPolicy.isRedeliverable(statusCode: delivery.statusCode))
        for status in [401, 400, 403, 404, 413, 415, 422] { #expect(!RedeliveryPolicy.isRedeliverable(statusCode: status)) }
        for status in [0, 408, 429, 500, 502, 503, 504] { #expect(RedeliveryPolicy.isRedeliverable(statusCode: status)) }
    }

    @Test func twoProcessesRunningAPassAtOnceAskGitHubOnce() async throws {
        try await TestDatabase.with { db in
            let log = HeldDeliveryLog(deliveries: [
                try delivery(id: 1, guid: "lost-1", statusCode: 0), try delivery(id: 2, guid: "lost-2", statusCode: 502),
            ])
            // A second process: a pool of its own, so its sessions are not the first one's.
            let other = PostgresClient(configuration: db.url.clientConfiguration(), backgroundLogger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await other.run() }
                defer { group.cancelAll() }
                let logs = LogCapture()
                let first = DeliveryRecovery(log: log, client: db.client, logger: Logger(label: "recovery-1"))
                let second = DeliveryRecovery(log: log, client: other, logger: logs.logger(label: "recovery-2", level: .debug))
                async let firstPass = first.recoverOnce()
                // The first pass holds its lock while it reads GitHub's log.
                try await eventually("the first pass reads the log") { log.listCalls.load(ordering: .relaxed) == 1 }
                let skipped = try await second.recoverOnce()
                #expect(skipped.skipped)
                #expect(skipped.listed == 0)
                #expect(log.listCalls.load(ordering: .relaxed) == 1)
                #expect(logs.lines.contains { $0.contains("another process is running delivery recovery") })
                log.release()
                let done = try await firstPass
                #expect(!done.skipped)
                #expect(done.redelivered == 2)
                #expect(log.redelivered.withLock { $0 } == [1, 2])

                // The lock went with the first pass: the second process's next pass runs.
                let next = try await second.recoverOnce()
                #expect(!next.skipped)
                #expect(log.listCalls.load(ordering: .relaxed) == 2)
            }
        }
    }
}

/// Returns a delivery as GitHub's log lists it.
private func delivery(id: Int64, guid: String, statusCode: Int) throws -> WebhookDelivery {
    let json = #"{"id": \#(id), "guid": "\#(guid)", "event": "issue_comment", "redelivery": false, "status": "failed", "status_code": \#(statusCode)}"#
    return try JSONDecoder().decode(WebhookDelivery.self, from: Data(json.utf8))
}

/// A delivery log whose first listing waits until the test releases it, so a pass can be held mid-way.
final class HeldDeliveryLog: DeliveryLog {
    let deliveries: [WebhookDelivery]
    let listCalls = Atomic<Int>(0)
    let released = Atomic<Bool>(false)
    let redelivered = Mutex<[Int64]>([])

    init(deliveries: [WebhookDelivery]) { self.deliveries = deliveries }

    func release() { released.store(true, ordering: .relaxed) }

    func listWebhookDeliveries(perPage: Int, cursor: String?) async throws -> (deliveries: [WebhookDelivery], nextCursor: String?) {
        listCalls.add(1, ordering: .relaxed)
        let deadline = ContinuousClock.now + .seconds(60)
        while !released.load(ordering: .relaxed), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        return (deliveries, nil)
    }

    func redeliverWebhookDelivery(id: Int64) async throws {
        redelivered.withLock { $0.append(id) }
    }
}
