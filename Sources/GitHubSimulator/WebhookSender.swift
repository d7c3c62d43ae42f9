import AsyncHTTPClient
import Foundation
import NIOCore
import OpenSSLCrypto

/// Posts webhook deliveries to the configured URL, signed like GitHub (`X-Hub-Signature-256`), and
/// records each as a delivery for `GET /app/hook/deliveries`.
final class WebhookSender: Sendable {
    let store: SimulatorStore
    let http: HTTPClient

    init(store: SimulatorStore) {
        self.store = store
        var configuration = HTTPClient.Configuration()
        // GitHub delivers each webhook on its own: many may be in flight at once (a burst queued while the
        // receiver was slow must not fail in the sender's own connection queue, which also counts against
        // the connect timeout).
        configuration.timeout = .init(connect: .seconds(30), read: .seconds(30))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    func shutdown() async {
        try? await http.shutdown()
    }

    /// Sends one delivery and returns it (status code 0 when the receiver could not be reached or
    /// no webhook URL is configured).
    func send(event: String, action: String?, payload: [UInt8], guid: String = UUID().uuidString.lowercased(),
              installationID: Int64?, repositoryID: Int64?, redelivery: Bool) async -> SimulatedDelivery {
        let (url, secret) = store.withState { ($0.webhookURL, $0.webhookSecret) }
        var statusCode = 0
        if let url {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "GitHub-Hookshot/simulator")
            request.headers.add(name: "X-GitHub-Event", value: event)
            request.headers.add(name: "X-GitHub-Delivery", value: guid)
            request.headers.add(name: "X-GitHub-Hook-ID", value: "1")
            request.headers.add(name: "X-GitHub-Hook-Installation-Target-Type", value: "integration")
            if let secret {
                request.headers.add(name: "X-Hub-Signature-256", value: "sha256=" + hmacSHA256Hex(key: Array(secret.utf8), message: payload))
            }
            request.body = .bytes(ByteBuffer(bytes: payload))
            if let response = try? await http.execute(request, timeout: .seconds(30)) {
                statusCode = Int(response.status.code)
                _ = try? await response.body.collect(upTo: 1024 * 1024)
            }
        }
        return store.withState { state in
            let delivery = SimulatedDelivery(id: state.makeID(), guid: guid, event: event, action: action, statusCode: statusCode,
                                             redelivery: redelivery, installationID: installationID, repositoryID: repositoryID,
                                             deliveredAt: Date(), payload: payload)
            state.deliveries.append(delivery)
            return delivery
        }
    }
}

/// Returns the lowercase hex HMAC-SHA256 of `message` under `key`.
func hmacSHA256Hex(key: [UInt8], message: [UInt8]) -> String {
    Hex.encode(HMACSHA256.authenticationCode(for: message, key: key))
}
