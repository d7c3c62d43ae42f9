import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization

/// A server-sent events client for tests: reads one stream in a child task and keeps what arrived.
final class EventStream: Sendable {
    struct Event: Sendable, Equatable {
        var id: Int64?
        var kind: String
        var data: String

        /// The `data` object's fields.
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]) ?? [:] }
        var taskID: Int64? { (json["task_id"] as? NSNumber)?.int64Value }
        var payload: [String: Any] { json["data"] as? [String: Any] ?? [:] }
    }

    let status: Int
    let headers: [String: String]
    private let received = Mutex<[Event]>([])
    private let commentCount = Mutex(0)
    private let endedFlag = Mutex(false)

    private init(status: Int, headers: [String: String]) {
        self.status = status
        self.headers = headers
    }

    var events: [Event] { received.withLock { $0 } }
    var comments: Int { commentCount.withLock { $0 } }
    var ended: Bool { endedFlag.withLock { $0 } }
    var lastID: Int64? { events.last(where: { $0.id != nil })?.id }

    /// Opens `url` (with `cookie`, `Last-Event-ID` when given) and runs `body` while the stream is read; the stream
    /// is closed when `body` returns.
    static func with<T: Sendable>(
        _ url: String, cookie: String? = nil, lastEventID: Int64? = nil,
        _ body: @Sendable @escaping (EventStream) async throws -> T
    ) async throws -> T {
        var request = HTTPClientRequest(url: url)
        if let cookie { request.headers.add(name: "Cookie", value: "asynccode_session=\(cookie)") }
        if let lastEventID { request.headers.add(name: "Last-Event-ID", value: String(lastEventID)) }
        request.headers.add(name: "Accept", value: "text/event-stream")
        let response = try await Browser.http.execute(request, timeout: .seconds(600))
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        let stream = EventStream(status: Int(response.status.code), headers: headers)
        // Recorded like a browser's exchange, for the API description check (an error's body is read whole).
        if let parsed = URL(string: url), let scheme = parsed.scheme, let host = parsed.host, let port = parsed.port {
            let base = "\(scheme)://\(host):\(port)"
            var body: [UInt8] = []
            if response.status != .ok { body = Array(try await response.body.collect(upTo: 1024 * 1024).readableBytesView) }
            let exchange = Browser.Exchange(method: "GET", path: String(url.dropFirst(base.count)), status: stream.status,
                                            contentType: headers["content-type"], body: body)
            Browser.exchanges.withLock { $0[base, default: []].append(exchange) }
        }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            let readable = response.status == .ok
            group.addTask {
                if readable { try? await stream.read(response.body) }
                stream.endedFlag.withLock { $0 = true }
                return nil
            }
            group.addTask { try await body(stream) }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            throw TestFailure("the stream's body did not return")
        }
    }

    private func read(_ body: HTTPClientResponse.Body) async throws {
        var pending = ""
        var id: Int64?
        var kind = "message"
        var data: [String] = []
        for try await buffer in body {
            pending += String(buffer: buffer)
            while let newline = pending.firstIndex(of: "\n") {
                let line = String(pending[..<newline])
                pending = String(pending[pending.index(after: newline)...])
                if line.isEmpty {
                    if !data.isEmpty {
                        let event = Event(id: id, kind: kind, data: data.joined(separator: "\n"))
                        received.withLock { $0.append(event) }
                    }
                    (id, kind, data) = (nil, "message", [])
                } else if line.hasPrefix(":") {
                    commentCount.withLock { $0 += 1 }
                } else if line.hasPrefix("id: ") {
                    id = Int64(line.dropFirst(4))
                } else if line.hasPrefix("event: ") {
                    kind = String(line.dropFirst(7))
                } else if line.hasPrefix("data: ") {
                    data.append(String(line.dropFirst(6)))
                }
            }
        }
    }
}
