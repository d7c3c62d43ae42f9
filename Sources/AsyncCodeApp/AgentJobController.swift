import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Queue

/// The routes an agent's pod uses (issue 22: agents as Kubernetes Jobs), authenticated by the tokens of its task
/// attempt (``AgentJobStore``), never by a session or a GitHub token:
///
/// - `GET /internal/agent-jobs/{task}/{attempt}/bundle` and `…/prompt` with the attempt's `fetch` token;
/// - `PUT /internal/agent-jobs/{task}/{attempt}/patch` (at most `patchLimit`) and `…/output` (at most
///   `outputLimit`) with its `report` token.
///
/// A missing, expired or wrong token (another task's, another attempt's, the other direction's) answers 401, the
/// same for each, and opens nothing. What is uploaded is stored as it came; the bot checks it against the pod's
/// digest before it uses it.
struct AgentJobController: Sendable {
    let store: AgentJobStore
    var patchLimit = 50 * 1024 * 1024
    var outputLimit = 256 * 1024
    let logger: Logger

    func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/internal/agent-jobs/{task}/{attempt}/{file}") { request, context in
            await answer { try await download(request, context) }
        }
        router.put("/internal/agent-jobs/{task}/{attempt}/{file}") { request, context in
            await answer { try await upload(request, context) }
        }
    }

    private func download<Context: RequestContext>(_ request: Request, _ context: Context) async throws -> Response {
        let (taskID, attempt, file) = try target(context)
        guard file.scope == .fetch else { throw Problem.notFound() }
        try await authorize(request, .fetch, taskID, attempt)
        guard let (content, digest) = try await store.file(file, taskID: taskID, attempt: attempt) else { throw Problem.notFound() }
        return Response(status: .ok, headers: [.contentType: "application/octet-stream", .cacheControl: "no-store",
                                               HTTPField.Name("X-Content-SHA256")!: digest],
                        body: ResponseBody(byteBuffer: content))
    }

    private func upload<Context: RequestContext>(_ request: Request, _ context: Context) async throws -> Response {
        let (taskID, attempt, file) = try target(context)
        guard file.scope == .report else { throw Problem.notFound() }
        try await authorize(request, .report, taskID, attempt)
        let limit = file == .patch ? patchLimit : outputLimit
        let body = try await request.limitedBody(limit, what: file.rawValue)
        let digest = try await store.put(file, body, taskID: taskID, attempt: attempt)
        logger.debug("agent job upload", metadata: ["task.id": "\(taskID)", "job.attempt": "\(attempt)", "job.file": "\(file.rawValue)",
                                                    "job.bytes": "\(body.readableBytes)"])
        return Response(status: .noContent, headers: [HTTPField.Name("X-Content-SHA256")!: digest])
    }

    private func target<Context: RequestContext>(_ context: Context) throws -> (Int64, Int, AgentJobStore.File) {
        guard let task = context.parameters.get("task").flatMap({ Int64($0) }), task > 0,
              let attempt = context.parameters.get("attempt").flatMap({ Int($0) }), attempt > 0,
              let file = context.parameters.get("file").flatMap({ AgentJobStore.File(rawValue: $0) }) else { throw Problem.notFound() }
        return (task, attempt, file)
    }

    private func authorize(_ request: Request, _ scope: AgentJobStore.Scope, _ taskID: Int64, _ attempt: Int) async throws {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              try await store.authorizes(String(header.dropFirst(7)), scope: scope, taskID: taskID, attempt: attempt) else {
            throw Problem(slug: "not-authorized", title: "Not authorized", status: .unauthorized,
                          detail: "this route takes the token of its task attempt")
        }
    }

    private func answer(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let problem as Problem {
            return problem.response
        } catch {
            logger.error("agent job route failed", metadata: ["error": "\(String(describing: type(of: error)))"])
            return Problem(slug: "internal", title: "Something went wrong", status: .internalServerError).response
        }
    }
}
