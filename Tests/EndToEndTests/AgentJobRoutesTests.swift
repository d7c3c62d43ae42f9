import AsyncHTTPClient
import Database
import Foundation
import NIOCore
import NIOHTTP1
import OpenSSLCrypto
import Queue
import Testing
import TestSupport

/// The routes an agent's pod uses (issue 22): each opens one task attempt's files, in one direction, with that
/// attempt's token, and refuses every other token the same way.
@Suite(.serialized, .timeLimit(.minutes(3))) struct AgentJobRoutesTests {
    static func call(_ method: HTTPMethod, _ url: String, token: String?, body: [UInt8]? = nil) async throws -> (status: Int, body: [UInt8], digest: String?) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await Browser.http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return (Int(response.status.code), Array(bytes.readableBytesView), response.headers.first(name: "x-content-sha256"))
    }

    @Test func aTaskAttemptsTokensOpenItsFilesAndNothingElse() async throws {
        try await EndToEnd.with { e2e in
            let first = try await e2e.comment("/asynccode --agent noop look", on: e2e.issue())
            try await e2e.waitFor(task: first, status: "completed")
            let second = try await e2e.comment("/asynccode --agent noop look again", on: e2e.issue("Another"))
            try await e2e.waitFor(task: second, status: "completed")
            let store = AgentJobStore(client: BoundedClient(e2e.db.client), logger: e2e.db.logger)
            let (fetch, report) = try await store.issueTokens(taskID: first, attempt: 1, lifetime: .seconds(600))
            let (otherFetch, otherReport) = try await store.issueTokens(taskID: second, attempt: 1, lifetime: .seconds(600))
            let (nextAttemptFetch, _) = try await store.issueTokens(taskID: first, attempt: 2, lifetime: .seconds(600))
            let (expiredFetch, _) = try await store.issueTokens(taskID: first, attempt: 1, lifetime: .seconds(-1))
            let bundle: [UInt8] = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try await store.put(.bundle, ByteBuffer(bytes: bundle), taskID: first, attempt: 1)
            try await store.put(.prompt, ByteBuffer(string: "Fix the README"), taskID: first, attempt: 1)
            let base = "http://127.0.0.1:\(e2e.port)/internal/agent-jobs/\(first)/1"

            let fetched = try await Self.call(.GET, base + "/bundle", token: fetch)
            #expect(fetched.status == 200 && fetched.body == bundle && fetched.digest == Hex.encode(SHA256Digest.hash(bundle)))
            #expect(try await Self.call(.GET, base + "/prompt", token: fetch).body == Array("Fix the README".utf8))
            // Every other token, and none, is refused alike: the other direction's, another task's, another
            // attempt's, an expired one, a made-up one.
            for token in [report, otherFetch, otherReport, nextAttemptFetch, expiredFetch, "made-up", nil] as [String?] {
                #expect(try await Self.call(.GET, base + "/bundle", token: token).status == 401)
                #expect(try await Self.call(.PUT, base + "/patch", token: token == report ? fetch : token, body: [1, 2, 3]).status == 401)
            }
            // Uploads with the report token: stored as they came, with their digest; a download route does not take
            // an upload and the other way round; too large is refused.
            let patch = Array("diff --git a/README.md b/README.md\n".utf8)
            let uploaded = try await Self.call(.PUT, base + "/patch", token: report, body: patch)
            #expect(uploaded.status == 204 && uploaded.digest == Hex.encode(SHA256Digest.hash(patch)))
            #expect(try await store.file(.patch, taskID: first, attempt: 1).map { Array($0.content.readableBytesView) } == patch)
            #expect(try await Self.call(.PUT, base + "/output", token: report, body: Array("done\n".utf8)).status == 204)
            #expect(try await Self.call(.PUT, base + "/bundle", token: report, body: [0]).status == 404)
            #expect(try await Self.call(.GET, base + "/patch", token: fetch).status == 404)
            #expect(try await Self.call(.PUT, base + "/output", token: report, body: [UInt8](repeating: 65, count: 300 * 1024)).status == 413)
            #expect(try await Self.call(.GET, base + "/secrets", token: fetch).status == 404)
            #expect(try await Self.call(.GET, "http://127.0.0.1:\(e2e.port)/internal/agent-jobs/\(second)/1/bundle", token: otherFetch).status == 404,
                    "a valid token for an attempt with no bundle")
            // Once the attempt is over its tokens open nothing.
            try await store.forget(taskID: first, attempt: 1)
            #expect(try await Self.call(.GET, base + "/prompt", token: fetch).status == 401)
            #expect(try await e2e.db.count("agent_job_files WHERE task_id = \(first) AND attempt = 1") == 0)
        }
    }
}
