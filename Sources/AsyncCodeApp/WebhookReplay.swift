import AsyncHTTPClient
import Foundation
import Intake
import NIOCore

/// Delivers a payload file to a running bot the way GitHub does (`asynccode receive`): signed with the
/// webhook secret, with `X-GitHub-Event` and a delivery GUID.
public struct WebhookReplay: Sendable {
    /// What the bot answered.
    public struct Answer: Sendable {
        public var status: Int
        public var reason: String
        public var body: String
    }

    /// A replay that could not be made; the description never holds the secret.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Payloads larger than GitHub's cap are refused before sending.
    public static let maxPayloadBytes = 25 * 1024 * 1024

    public var url: String
    public var event: String
    public var deliveryID: String
    public var secret: String

    /// Creates a replay to `url`.
    public init(url: String, event: String, deliveryID: String = UUID().uuidString.lowercased(), secret: String) {
        self.url = url
        self.event = event
        self.deliveryID = deliveryID
        self.secret = secret
    }

    /// Reads `path`, signs it and posts it; returns the bot's answer.
    public func deliver(payloadAt path: String) async throws(Failure) -> Answer {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let size = attributes[.size] as? Int, let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "cannot read the payload file \(path)")
        }
        guard size <= Self.maxPayloadBytes else { throw Failure(description: "\(path) is larger than GitHub's 25 MB limit") }
        guard (try? JSONSerialization.jsonObject(with: data)) is [String: Any] else {
            throw Failure(description: "\(path) is not a JSON object (a webhook payload)")
        }
        guard WebhookDecoder.isValidEventName(event) else { throw Failure(description: "--event \(event) is not an event name") }
        let bytes = [UInt8](data)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "GitHub-Hookshot/asynccode-receive")
        request.headers.add(name: "X-GitHub-Event", value: event)
        request.headers.add(name: "X-GitHub-Delivery", value: deliveryID)
        request.headers.add(name: "X-Hub-Signature-256", value: WebhookVerifier.signature(for: bytes, secret: secret))
        request.body = .bytes(ByteBuffer(bytes: bytes))
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        do {
            let response = try await http.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1024 * 1024)
            try? await http.shutdown()
            return Answer(status: Int(response.status.code), reason: response.status.reasonPhrase, body: String(buffer: body))
        } catch {
            try? await http.shutdown()
            throw Failure(description: "cannot deliver to \(url): \(describe(error)) (is `asynccode serve` running there?)")
        }
    }
}
