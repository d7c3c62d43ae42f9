import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Queue
import ServiceLifecycle
import SignIn
import Synchronization

/// Server-sent events for signed-in users:
///
/// - `GET /api/events`: every event of every task the user may see (and the ledgers they may see);
/// - `GET /api/tasks/{id}/events`: one visible task's events (any other id answers 404).
///
/// A stream starts after `Last-Event-ID` (what an EventSource sends when it reconnects) or `?after=N` (a page's
/// first connection), else with what comes next; it carries `id:` lines, a comment every `heartbeat`, and ends
/// when the server stops. Who may see what is checked when it subscribes and for each event; the user's access
/// and session are read again every `recheck` (a signed-out session or a task no longer visible ends the stream).
struct EventsController: Sendable {
    let api: APIController
    let hub: EventHub
    let log: EventLog
    var heartbeat: Duration = .seconds(15)
    /// Open streams one user may hold at once (each holds a connection and a mailbox).
    var streamsPerUser = 20
    var recheck: Duration = .seconds(60)
    let open = StreamCounts()
    let logger: Logger

    func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/api/events") { request, context in
            await api.session.respond(request, context) { signIn in try await stream(request, signIn, taskID: nil) }
        }
        router.get("/api/tasks/{id}/events") { request, context in
            await api.session.respond(request, context) { signIn in
                guard let text = context.parameters.get("id"), let id = Int64(text), id > 0 else { throw Problem.notFound() }
                return try await stream(request, signIn, taskID: id)
            }
        }
    }

    private func stream(_ request: Request, _ signIn: SignIn, taskID: Int64?) async throws -> Response {
        let caller = try await api.session.caller(request, signIn)
        let after = try Self.resumePoint(request)
        let audience = try await audience(caller, taskID: taskID)
        let accountID = caller.user.accountID
        guard open.admit(accountID, limit: streamsPerUser) else {
            throw Problem(slug: "too-many-streams", title: "Too many open event streams", status: .tooManyRequests,
                          detail: "at most \(streamsPerUser) at once per user; close one first", headers: [.retryAfter: "5"])
        }
        let subscription = await hub.subscribe(after: after, audience: audience)
        let headers: HTTPFields = [
            .contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-cache, no-store",
            HTTPField.Name("X-Accel-Buffering")!: "no",
        ]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            defer {
                hub.unsubscribe(subscription)
                open.release(accountID)
            }
            try await withGracefulShutdownHandler {
                try await send(subscription, to: &writer, request: request, signIn: signIn, taskID: taskID)
            } onGracefulShutdown: {
                subscription.finish()
            }
            try await writer.finish(nil)
        })
    }

    /// Writes the subscription's events until it ends, the client leaves, or the user may no longer see them.
    private func send(_ subscription: EventSubscription, to writer: inout any ResponseBodyWriter, request: Request,
                      signIn: SignIn, taskID: Int64?) async throws {
        try await writer.write(ByteBuffer(string: "retry: 2000\n: connected\n\n"))
        var checked = ContinuousClock.now
        while true {
            switch await subscription.next(timeout: heartbeat) {
            case .finished:
                return
            case .idle:
                try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
            case .events(let events):
                try await writer.write(Self.encode(events))
            case .catchUp(var after, let through):
                while after < through {
                    let events = try await log.read(after: after, through: through, limit: 500, audience: subscription.audience)
                    if !events.isEmpty { try await writer.write(Self.encode(events)) }
                    after = events.count < 500 ? through : events.last!.id
                }
            }
            if ContinuousClock.now - checked >= recheck {
                checked = ContinuousClock.now
                do {
                    let caller = try await api.session.caller(request, signIn)
                    subscription.audience = try await audience(caller, taskID: taskID)
                } catch {
                    // Signed out, access gone, or the task no longer visible: the stream ends.
                    logger.debug("event stream ended: access rechecked", metadata: ["error": "\(error)"])
                    return
                }
            }
        }
    }

    /// Returns what the caller may see now (their access synced first when stale); 404 for a task they cannot see.
    private func audience(_ caller: Caller, taskID: Int64?) async throws -> EventAudience {
        let repositories = try await api.accessible(caller, force: false)
        if let taskID {
            guard let repositoryID = try await api.store.repositoryID(ofTask: taskID),
                  repositories.contains(where: { $0.id == repositoryID }) else { throw Problem.notFound() }
        }
        let logins = APIController.creditLogins(caller.user.login, repositories)
        let accounts = try await api.store.accountIDs(logins: logins).union([caller.user.accountID])
        return EventAudience(repositories: Set(repositories.map(\.id)), accounts: accounts, taskID: taskID)
    }

    /// The id the stream starts after: `Last-Event-ID`, else `after`; `nil` for only what comes next.
    static func resumePoint(_ request: Request) throws -> Int64? {
        let given: String? = request.headers[HTTPField.Name("Last-Event-ID")!] ?? request.uri.queryParameters["after"].map { String($0) }
        guard let given else { return nil }
        guard given.utf8.count <= 20, let id = Int64(given.trimmingCharacters(in: .whitespaces)), id >= 0 else {
            throw Problem(slug: "invalid-parameter", title: "Invalid parameter", status: .badRequest,
                          detail: "`Last-Event-ID` and `after` are event ids: whole numbers from 0")
        }
        return id
    }

    /// Server-sent events: `id`, `event` (the kind) and `data` (one line of JSON) per event.
    static func encode(_ events: [TaskEvent]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for event in events {
            buffer.writeString("id: \(event.id)\nevent: \(event.kind)\ndata: \(event.json)\n\n")
        }
        return buffer
    }
}

/// Open streams per user.
final class StreamCounts: Sendable {
    private let counts = Mutex<[Int64: Int]>([:])

    /// Counts one more stream for `accountID` unless it holds `limit` already.
    func admit(_ accountID: Int64, limit: Int) -> Bool {
        counts.withLock { counts in
            guard counts[accountID, default: 0] < limit else { return false }
            counts[accountID, default: 0] += 1
            return true
        }
    }

    func release(_ accountID: Int64) {
        counts.withLock { counts in
            counts[accountID, default: 1] -= 1
            if counts[accountID] == 0 { counts[accountID] = nil }
        }
    }
}
