import Foundation
import HTTPTypes
import Hummingbird
import Intake
import Logging
import Metrics
import Models
import NIOCore
import Queue
import Synchronization

/// What the webhook route needs from the database: record one delivery and say what came of it.
public protocol DeliveryRecording: Sendable {
    /// Records `plan` in one transaction and returns its outcome.
    func record(_ plan: DeliveryPlan) async throws -> DeliveryOutcome
}

extension DeliveryStore: DeliveryRecording {}

/// The webhook secrets in use: none until the setup wizard registers the App, then the App's.
public final class WebhookSecrets: Sendable {
    private let current: Mutex<WebhookVerifier?>

    /// Creates the holder with `secrets` (current first, then previous); empty means not set up.
    public init(_ secrets: [String]) {
        current = Mutex(secrets.isEmpty ? nil : WebhookVerifier(secrets: secrets))
    }

    /// Returns the verifier, or nil while no secret is set.
    var verifier: WebhookVerifier? { current.withLock { $0 } }

    /// Starts accepting signatures made with `secrets` instead.
    public func replace(with secrets: [String]) {
        current.withLock { $0 = secrets.isEmpty ? nil : WebhookVerifier(secrets: secrets) }
    }
}

/// A refused webhook request, answered with its status and a short JSON message.
struct WebhookRejection: HTTPResponseError {
    var status: HTTPResponse.Status
    var message: String

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        let body = #"{"error":""# + WebhookResponse.escape(message) + #""}"# + "\n"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// `POST /webhooks/github`: verify, decode, record, answer `202`, in milliseconds and with no GitHub call.
public struct WebhookController<Store: DeliveryRecording>: Sendable {
    /// GitHub caps webhook payloads at 25 MB.
    public static var maxBodyBytes: Int { 25 * 1024 * 1024 }

    let secrets: WebhookSecrets
    let decoder: WebhookDecoder
    let store: Store
    let logger: Logger
    let metrics: any MetricsFactory
    /// Refused requests (4xx) are logged at most 20 a minute; every one is counted in the metrics.
    let refusals: LogThrottle

    /// Creates the controller; `secrets` may be empty until the setup wizard registers the App.
    public init(
        secrets: WebhookSecrets, decoder: WebhookDecoder, store: Store, logger: Logger,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance, refusals: LogThrottle = LogThrottle()
    ) {
        self.metrics = metrics
        self.refusals = refusals
        self.secrets = secrets
        self.decoder = decoder
        self.store = store
        self.logger = logger
    }

    /// Adds the webhook route to `router`.
    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.post("/webhooks/github") { request, context in
            try await self.receive(request)
        }
        // The same receiver under the API's prefix.
        router.post("/api/webhooks/github") { request, context in
            try await self.receive(request)
        }
    }

    func receive(_ request: Request) async throws -> Response {
        let started = ContinuousClock.now
        let deliveryHeader = request.headers[.gitHubDelivery]
        let eventHeader = request.headers[.gitHubEvent]
        var metadata: Logger.Metadata = [:]
        if let deliveryHeader, WebhookDecoder.isValidDeliveryID(deliveryHeader) { metadata["github.delivery"] = "\(deliveryHeader)" }
        if let eventHeader, WebhookDecoder.isValidEventName(eventHeader) { metadata["github.event"] = "\(eventHeader)" }
        func log(_ status: HTTPResponse.Status, _ outcome: String, level: Logger.Level = .info) {
            var metadata = metadata
            metadata["http.status"] = "\(status.code)"
            metadata["outcome"] = "\(outcome)"
            metadata["duration_ms"] = "\(Self.milliseconds(since: started))"
            // Refusals (4xx) go through the throttle; `nil`: held back.
            if let held = (400..<500).contains(status.code) ? refusals.admit() : 0 {
                if held > 0 { metadata["log.held_back"] = "\(held)" }
                logger.log(level: level, "webhook delivery", metadata: metadata)
            }
            // Labels stay bounded: an event name counts only once the signature is good, an outcome is a
            // word or an HTTP status.
            let verified = status.code <= 400 || status.code == 415
            let event = verified ? eventHeader.flatMap { WebhookDecoder.isValidEventName($0) ? $0 : nil } ?? "none" : "unverified"
            let label = status.code < 400 ? outcome : "http_\(status.code)"
            Counter(label: "asynccode_webhook_deliveries_total", dimensions: [("event", event), ("outcome", label)], factory: metrics)
                .increment()
            Timer(label: "asynccode_webhook_duration_seconds", dimensions: [("status", String(status.code))], factory: metrics)
                .record(duration: ContinuousClock.now - started)
        }
        do {
            let (response, plan, outcome) = try await handle(request, delivery: deliveryHeader, event: eventHeader)
            if let action = plan.action { metadata["github.action"] = "\(action)" }
            if case .queued(let tasks, let controls) = outcome {
                metadata["task.ids"] = "\(tasks.map(String.init).joined(separator: ","))"
                if !controls.isEmpty { metadata["control.ids"] = "\(controls.map(String.init).joined(separator: ","))" }
            }
            log(response.status, outcome.label)
            return response
        } catch let rejection as WebhookRejection {
            log(rejection.status, rejection.message, level: rejection.status.code >= 500 ? .error : .info)
            throw rejection
        }
    }

    private func handle(
        _ request: Request, delivery: String?, event: String?
    ) async throws -> (Response, DeliveryPlan, DeliveryOutcome) {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > Self.maxBodyBytes {
            throw WebhookRejection(status: .contentTooLarge, message: "payload larger than 25 MB")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: Self.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw WebhookRejection(status: .contentTooLarge, message: "payload larger than 25 MB")
        }
        let bytes = Array(body.readableBytesView)
        guard let verifier = secrets.verifier else {
            throw WebhookRejection(status: .serviceUnavailable, message: "the GitHub App is not set up yet: open the setup page")
        }
        // The signature is checked before anything of the body is read.
        guard verifier.isValid(signatureHeader: request.headers[.hubSignature256], body: bytes) else {
            let message = request.headers[.hubSignature256] == nil
                ? "missing X-Hub-Signature-256 (SHA-1 signatures are not accepted)" : "invalid signature"
            throw WebhookRejection(status: .unauthorized, message: message)
        }
        guard let event, WebhookDecoder.isValidEventName(event) else {
            throw WebhookRejection(status: .badRequest, message: "missing or invalid X-GitHub-Event")
        }
        guard let delivery, WebhookDecoder.isValidDeliveryID(delivery) else {
            throw WebhookRejection(status: .badRequest, message: "missing or invalid X-GitHub-Delivery")
        }
        guard Self.isJSON(request.headers[.contentType]) else {
            throw WebhookRejection(status: .unsupportedMediaType, message: "content type must be application/json; set it in the App's webhook settings")
        }
        let plan: DeliveryPlan
        do {
            plan = try decoder.plan(event: event, deliveryID: delivery, body: bytes)
        } catch {
            throw WebhookRejection(status: .badRequest, message: error.message)
        }
        let outcome: DeliveryOutcome
        do {
            outcome = try await store.record(plan)
        } catch {
            logger.error("could not record delivery", metadata: [
                "github.delivery": "\(delivery)", "error": "\(describe(error))",
            ])
            throw WebhookRejection(status: .serviceUnavailable, message: "the database is unavailable; retry the delivery")
        }
        return (WebhookResponse.accepted(outcome), plan, outcome)
    }

    /// Returns whether the media type is `application/json`, with any parameters (`; charset=utf-8`).
    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let mediaType = contentType.utf8.prefix { $0 != UInt8(ascii: ";") }
        let expected = "application/json".utf8
        var trimmed = mediaType.drop { $0 == 0x20 || $0 == 0x09 }[...]
        while let last = trimmed.last, last == 0x20 || last == 0x09 { trimmed = trimmed.dropLast() }
        return trimmed.count == expected.count && zip(trimmed, expected).allSatisfy { $0 | 0x20 == $1 | 0x20 }
    }

    /// Returns the time since `start` in milliseconds with two decimals.
    static func milliseconds(since start: ContinuousClock.Instant) -> String {
        let elapsed = ContinuousClock.now - start
        // Hundredths of a millisecond: 10 µs.
        let hundredths = elapsed.components.seconds * 100_000 + elapsed.components.attoseconds / 10_000_000_000_000
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

/// The `202` bodies the intake answers with.
enum WebhookResponse {
    static func accepted(_ outcome: DeliveryOutcome) -> Response {
        var body: String
        switch outcome {
        case .queued(let tasks, let controls):
            body = #"{"status":"queued","tasks":["# + tasks.map(String.init).joined(separator: ",") + "]"
            if !controls.isEmpty { body += #","commands":["# + controls.map(String.init).joined(separator: ",") + "]" }
            body += "}"
        case .recorded:
            body = #"{"status":"recorded"}"#
        case .duplicate:
            body = #"{"status":"duplicate"}"#
        case .ignored(let reason):
            body = #"{"status":"ignored","reason":""# + escape(reason) + #""}"#
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .accepted, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body + "\n")))
    }

    /// Escapes `text` for a JSON string.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

extension HTTPField.Name {
    static let gitHubDelivery = Self("X-GitHub-Delivery")!
    static let gitHubEvent = Self("X-GitHub-Event")!
    static let hubSignature256 = Self("X-Hub-Signature-256")!
}
