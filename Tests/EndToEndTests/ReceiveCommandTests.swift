import Foundation
import Testing
import TestSupport

/// `asynccode receive`: the built binary signs a payload file and delivers it to a running bot.
@Suite(.timeLimit(.minutes(10))) struct ReceiveCommandTests {
    static let binary = TestEnvironment.packageRoot.appendingPathComponent(".build/debug/asynccode").path
    static let payload = TestEnvironment.fixturesDirectory.appendingPathComponent("webhooks/issue_comment/created.with-installation.payload.json").path

    func receive(_ arguments: [String], secret: String) async throws -> (status: Int32, output: String) {
        let result = try await TestSupport.run(
            [Self.binary, "receive"] + arguments, currentDirectory: FileManager.default.temporaryDirectory.path,
            environment: ["PATH": "/usr/bin:/bin", "GITHUB_WEBHOOK_SECRET": secret])
        return (result.status, result.output)
    }

    @Test func signsDeliversAndPrintsTheAnswer() async throws {
        try await EndToEnd.with(workers: 0) { e2e in
            let url = "http://127.0.0.1:\(e2e.port)/webhooks/github"
            let delivery = UUID().uuidString.lowercased()
            let first = try await receive(
                ["--event", "issue_comment", "--payload", Self.payload, "--url", url, "--delivery", delivery], secret: webhookSecret)
            #expect(first.status == 0, "\(first.output)")
            #expect(first.output.contains("HTTP 202 Accepted"))
            #expect(first.output.contains("X-GitHub-Delivery: \(delivery)"))
            let recorded = try await e2e.string("SELECT event FROM webhook_deliveries WHERE delivery_guid = '\(delivery)'")
            #expect(recorded == "issue_comment")

            // The same GUID again: GitHub's redelivery, answered as a duplicate.
            let again = try await receive(
                ["--event", "issue_comment", "--payload", Self.payload, "--url", url, "--delivery", delivery], secret: webhookSecret)
            #expect(again.status == 0)
            #expect(again.output.contains("\"duplicate\""))

            // A wrong secret: the bot's 401 is printed and the command fails.
            let wrong = try await receive(["--event", "issue_comment", "--payload", Self.payload, "--url", url], secret: "not-the-secret")
            #expect(wrong.status == 1)
            #expect(wrong.output.contains("HTTP 401"))
            #expect(!wrong.output.contains("not-the-secret"))
        }
    }

    @Test func refusesWhatItCannotSend() async throws {
        let missing = try await receive(["--event", "issue_comment", "--payload", "/nonexistent.json", "--url", "http://127.0.0.1:1/"], secret: "s")
        #expect(missing.status == 1)
        #expect(missing.output == "asynccode: receive: cannot read the payload file /nonexistent.json\n")
        let unreachable = try await receive(["--event", "issue_comment", "--payload", Self.payload, "--url", "http://127.0.0.1:1/webhooks/github"], secret: "s")
        #expect(unreachable.status == 1)
        #expect(unreachable.output.hasPrefix("asynccode: receive: cannot deliver to http://127.0.0.1:1/webhooks/github"))
        let noSecret = try await TestSupport.run(
            [Self.binary, "receive", "--event", "ping", "--payload", Self.payload], currentDirectory: FileManager.default.temporaryDirectory.path,
            environment: ["PATH": "/usr/bin:/bin"])
        #expect(noSecret.status == 1)
        #expect(noSecret.output.contains("GITHUB_WEBHOOK_SECRET"))
    }
}
