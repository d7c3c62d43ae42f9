import Database
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PostgresNIO

/// What `/readyz` asks: problems that keep this process from serving, or none.
public protocol ReadinessChecking: Sendable {
    /// Returns the problems found; empty when ready.
    func problems() async -> [String]
}

/// Ready when the database answers (within `timeout`) and every migration file is applied.
struct DatabaseReadiness: ReadinessChecking {
    let client: PostgresClient
    let migrator: Migrator
    let logger: Logger
    var timeout: Duration = .seconds(5)

    func problems() async -> [String] {
        do {
            try await BoundedClient(client, timeout: timeout).query("SELECT 1", logger: logger)
        } catch is QueryDeadlineExceeded {
            return ["database did not answer within \(timeout)"]
        } catch {
            return ["database unreachable"]
        }
        do {
            let pending = try await migrator.pending(within: timeout)
            return pending.isEmpty ? [] : ["migrations not applied: " + pending.map(String.init).joined(separator: ", ")]
        } catch let error as DatabaseError {
            return [error.message]
        } catch is QueryDeadlineExceeded {
            return ["database did not answer within \(timeout)"]
        } catch {
            return ["cannot read schema_migrations"]
        }
    }
}

/// `GET /healthz` (the process is alive) and `GET /readyz` (it can serve).
struct HealthController<Readiness: ReadinessChecking>: Sendable {
    let readiness: Readiness

    func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/healthz") { _, _ in
            Self.json(.ok, #"{"status":"ok"}"#)
        }
        router.get("/readyz") { _, _ in
            let problems = await readiness.problems()
            if problems.isEmpty { return Self.json(.ok, #"{"status":"ready"}"#) }
            let list = problems.map { "\"" + WebhookResponse.escape($0) + "\"" }.joined(separator: ",")
            return Self.json(.serviceUnavailable, #"{"status":"unavailable","problems":["# + list + "]}")
        }
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body + "\n")))
    }
}
