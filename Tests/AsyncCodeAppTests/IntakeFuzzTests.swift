@testable import AsyncCodeApp
import Hummingbird
import Logging
import Models
import Queue
import Foundation
import HTTPTypes
import HummingbirdTesting
import Intake
import NIOCore
import OpenSSLCrypto
import Testing
import TestSupport

/// Random bodies, headers and signatures against the webhook route: it never crashes or answers 5xx,
/// and only a delivery with a good signature is ever written.
@Suite(.timeLimit(.minutes(10))) struct IntakeFuzzTests {
    /// A random-number generator with a fixed seed, so a failure can be replayed (SplitMix64).
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let events = ["issue_comment", "issues", "ping", "pull_request", "", "issue comment", "../../etc", String(repeating: "e", count: 300), "installation", "ünïcode"]
    static let contentTypes = ["application/json", "application/json; charset=utf-8", "text/plain", "", "application/x-www-form-urlencoded", "APPLICATION/JSON"]

    static func randomBytes(_ count: Int, using random: inout SeededGenerator) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(count + 8)
        while bytes.count < count { withUnsafeBytes(of: random.next()) { bytes.append(contentsOf: $0) } }
        return Array(bytes.prefix(count))
    }

    static func headers(using random: inout SeededGenerator) -> HTTPFields {
        var headers = HTTPFields()
        if Bool.random(using: &random) { headers[HTTPField.Name("X-GitHub-Event")!] = events.randomElement(using: &random)! }
        if Bool.random(using: &random) {
            headers[HTTPField.Name("X-GitHub-Delivery")!] = Bool.random(using: &random) ? UUID().uuidString : String(UInt64.random(in: 0...UInt64.max, using: &random))
        }
        if Bool.random(using: &random) { headers[.contentType] = contentTypes.randomElement(using: &random)! }
        return headers
    }

    /// A store that must never be reached.
    struct UnreachableStore: DeliveryRecording {
        func record(_ plan: DeliveryPlan) async throws -> DeliveryOutcome {
            Issue.record("a delivery with a bad signature reached the store")
            return .ignored(reason: "unreachable")
        }
    }

    @Test func aHundredThousandBadSignaturesNeverReachTheStore() async throws {
        let controller = WebhookController(
            secrets: WebhookSecrets([secret]), decoder: WebhookDecoder(), store: UnreachableStore(),
            logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
        var random = SeededGenerator(state: 0x5EED)
        let payload = try TestEnvironment.fixture("webhooks/issue_comment/created.with-installation.payload.json")
        var statuses: [Int: Int] = [:]
        for index in 0..<100_000 {
            // A long CPU-bound loop: let the other tests' tasks run on the shared pool.
            if index % 100 == 0 { await Task.yield() }
            var fields = Self.headers(using: &random)
            let body = index % 10 == 0 ? payload : Self.randomBytes(Int.random(in: 0...512, using: &random), using: &random)
            Self.addBadSignature(index, to: &fields, body: body, using: &random)
            let request = Request(
                head: HTTPRequest(method: .post, scheme: "http", authority: "127.0.0.1", path: "/webhooks/github", headerFields: fields),
                body: RequestBody(buffer: ByteBuffer(bytes: body)))
            do {
                _ = try await controller.receive(request)
                statuses[202, default: 0] += 1
            } catch let rejection as WebhookRejection {
                statuses[Int(rejection.status.code), default: 0] += 1
            }
        }
        #expect(statuses == [401: 100_000], "answered \(statuses)")
        print("intake fuzz: 100000 random bodies, headers and bad signatures → \(statuses)")
    }

    static func addBadSignature(_ index: Int, to headers: inout HTTPFields, body: [UInt8], using random: inout SeededGenerator) {
        switch index % 5 {
        case 0: break
        case 1: headers[HTTPField.Name("X-Hub-Signature")!] = "sha1=" + String(repeating: "a", count: 40)
        case 2: headers[HTTPField.Name("X-Hub-Signature-256")!] = "sha256=" + Hex.encode(randomBytes(32, using: &random))
        case 3: headers[HTTPField.Name("X-Hub-Signature-256")!] = WebhookVerifier.signature(for: body, secret: "not-the-secret")
        default: headers[HTTPField.Name("X-Hub-Signature-256")!] = String(decoding: randomBytes(Int.random(in: 0...90, using: &random), using: &random), as: UTF8.self)
        }
    }

    @Test func randomRequestsOverHTTPNeverCrashAndOnlyGoodSignaturesWrite() async throws {
        let badRequests = 5_000
        let signedRequests = 2_000
        let payload = try TestEnvironment.fixture("webhooks/issue_comment/created.with-installation.payload.json")
        try await withIntake(setup: .router) { client, db in
            var random = SeededGenerator(state: 0xA5C0DE)
            var statuses: [Int: Int] = [:]
            // Bad signatures: missing, SHA-1 only, wrong length, wrong key, garbage.
            for index in 0..<badRequests {
                var headers = Self.headers(using: &random)
                let body = index % 10 == 0 ? payload : Self.randomBytes(Int.random(in: 0...512, using: &random), using: &random)
                Self.addBadSignature(index, to: &headers, body: body, using: &random)
                let response = try await client.execute(uri: "/webhooks/github", method: .post, headers: headers, body: ByteBuffer(bytes: body))
                statuses[Int(response.status.code), default: 0] += 1
            }
            #expect(statuses == [401: badRequests], "bad signatures answered \(statuses)")
            #expect(try await db.count("webhook_deliveries") == 0)

            // Good signatures over mangled payloads and random headers: answered without a 5xx, and written
            // only when answered 202.
            var accepted = 0
            var signedStatuses: [Int: Int] = [:]
            for _ in 0..<signedRequests {
                var body = payload
                for _ in 0..<Int.random(in: 0...8, using: &random) where !body.isEmpty {
                    body[Int.random(in: 0..<body.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                }
                if Bool.random(using: &random) { body = Array(body.prefix(Int.random(in: 0...body.count, using: &random))) }
                let response = try await client.deliver(
                    event: Self.events.randomElement(using: &random), delivery: UUID().uuidString, body: body,
                    contentType: Self.contentTypes.randomElement(using: &random))
                let status = Int(response.status.code)
                signedStatuses[status, default: 0] += 1
                if status == 202 { accepted += 1 }
            }
            #expect(signedStatuses.keys.allSatisfy { [202, 400, 415].contains($0) }, "signed requests answered \(signedStatuses)")
            #expect(try await db.count("webhook_deliveries") == accepted)
            print("intake fuzz over HTTP: \(badRequests) bad-signature requests → \(statuses); \(signedRequests) signed, mangled → \(signedStatuses.sorted { $0.key < $1.key }); rows \(accepted)")
        }
    }
}
