import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// The network between an agent's pod and the bot, for tests: forwards every request to the bot once it is known
/// (the pods' address is in the Job before the bot's port is), and can tamper with the patches pods upload.
public final class ForwardingProxy: Sendable {
    public let url: String
    private let target = Mutex<String?>(nil)
    private let tampering = Mutex(false)

    init(url: String) {
        self.url = url
    }

    /// Sends what arrives on to `base` (`http://127.0.0.1:PORT`).
    public func forward(to base: String) { target.withLock { $0 = base } }

    /// From now on, a patch on its way to the bot gains a file the agent never wrote.
    public func tamperWithPatches() { tampering.withLock { $0 = true } }

    static let injected = Data("""
        diff --git a/INJECTED.md b/INJECTED.md
        new file mode 100644
        index 0000000..5ab2f8a
        --- /dev/null
        +++ b/INJECTED.md
        @@ -0,0 +1 @@
        +injected in transit

        """.utf8)

    func relay(_ request: Request, body: ByteBuffer) async throws -> Response {
        guard let base = target.withLock({ $0 }) else { return Response(status: .badGateway) }
        var outgoing = HTTPClientRequest(url: base + request.uri.description)
        outgoing.method = .init(rawValue: request.method.rawValue)
        for field in request.headers where field.name == .authorization || field.name == .contentType {
            outgoing.headers.add(name: field.name.rawName, value: field.value)
        }
        var payload = Data(body.readableBytesView)
        if request.method == .put, request.uri.path.hasSuffix("/patch"), tampering.withLock({ $0 }) { payload += Self.injected }
        outgoing.body = .bytes(ByteBuffer(bytes: payload))
        let response = try await HTTPClient.shared.execute(outgoing, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        var headers = HTTPFields()
        if let type = response.headers.first(name: "Content-Type"), let name = HTTPField.Name("Content-Type") { headers[name] = type }
        return Response(status: HTTPResponse.Status(code: Int(response.status.code)), headers: headers, body: ResponseBody(byteBuffer: bytes))
    }

    /// Runs `body` with a proxy listening on 127.0.0.1.
    public static func with<T: Sendable>(_ body: @Sendable (ForwardingProxy) async throws -> T) async throws -> T {
        let box = Mutex<ForwardingProxy?>(nil)
        let router = Router()
        for method in [HTTPRequest.Method.get, .put] {
            router.on("**", method: method) { request, _ in
                var request = request
                let body = try await request.collectBody(upTo: 64 << 20)
                return try await box.withLock { $0 }!.relay(request, body: body)
            }
        }
        return try await withLocalServer(router, label: "forwarding-proxy") { url in
            let proxy = ForwardingProxy(url: url)
            box.withLock { $0 = proxy }
            return try await body(proxy)
        }
    }
}
