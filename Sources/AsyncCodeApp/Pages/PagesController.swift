import Executor
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SignIn

/// The web pages, server-rendered from the same reads as the API (``APIStore``, ``APIController``), so a user sees
/// exactly what the API lets them see; readable without JavaScript, kept live by `/assets/live.js`:
///
/// - `GET /`: the signed-in user's tasks, newest first, filtered by repository and status (signed out: a short
///   landing page with "Sign in with GitHub").
/// - `GET /tasks/{id}`: the task's steps, agent log, checks, diff, pull request and credits, and a Cancel button for
///   users with push access (`POST /tasks/{id}/cancel`, then back to the page). A task the user cannot see answers
///   the 404 page, never 403.
/// - `GET /tasks/new`, `POST /tasks/new`: the form that starts a task, checked and queued as `POST /api/tasks` does,
///   then a 303 to the task's page.
/// - `GET /credits`: the balances and ledgers the user may see (the rule of `GET /api/credits`).
/// - `GET /assets/app.css`, `GET /assets/live.js`: the only stylesheet and script.
///
/// A page is rendered from state read after taking the current last event id, which it carries (`data-after`) so
/// the script resumes the event stream from there and misses nothing. Forms that change things are POSTs from this
/// site only (`Origin`, as the API's cookie-authenticated changes); signed-out pages send the browser to `/login`.
struct PagesController: Sendable {
    let session: SignInController
    let api: APIController
    /// The agents the new-task form offers.
    let agents: AgentCatalog
    /// The id of the newest event the pages may assume the reader has seen.
    let lastEventID: @Sendable () async throws -> Int64
    let renderer = PageRenderer()

    func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        PageAssets.addRoutes(to: router)
        router.get("/") { request, context in
            await page(request, context, signedOut: { landing(nil) }) { caller, _ in try await home(request, caller) }
        }
        router.get("/tasks/new") { request, context in
            await page(request, context) { caller, _ in try await newTaskForm(caller) }
        }
        router.post("/tasks/new") { request, context in
            await page(request, context) { caller, signIn in try await createTask(request, caller, signIn) }
        }
        router.get("/tasks/{id}") { request, context in
            await page(request, context) { caller, _ in try await taskPage(try taskID(context), caller) }
        }
        router.post("/tasks/{id}/cancel") { request, context in
            await page(request, context) { caller, signIn in
                try session.checkOrigin(request, signIn)
                let id = try taskID(context)
                _ = try await api.cancel(id, caller)
                return PageRenderer.redirect("/tasks/\(id)")
            }
        }
        router.get("/credits") { request, context in
            await page(request, context) { caller, _ in try await creditsPage(caller) }
        }
    }

    /// Runs a page: the caller signed in (else `signedOut`, by default a redirect to `/login`), problems answered as
    /// HTML pages (the 404 page for what does not exist for the caller).
    private func page<Context: RequestContext>(
        _ request: Request, _ context: Context, signedOut: (@Sendable () -> Response)? = nil,
        _ body: @Sendable (Caller, SignIn) async throws -> Response
    ) async -> Response {
        if case .failure(let missing) = session.signIn, signedOut != nil {
            return landing("Sign-in is not configured on this server: \(missing.setting) \(missing.problem).", status: .serviceUnavailable)
        }
        return await session.respond(request, context) { signIn in
            var user: SignedInUser?
            do {
                let caller: Caller
                do {
                    caller = try await session.caller(request, signIn)
                } catch let problem as Problem where problem.status == .unauthorized {
                    // Back to this page once signed in.
                    let here = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
                    return signedOut?() ?? PageRenderer.redirect("/login?next=" + SignInController.percentEncoded(here))
                }
                user = caller.user
                return try await body(caller, signIn)
            } catch let problem as Problem {
                return renderer.problem(problem, user: user)
            }
        }
    }

    /// The signed-out home page.
    func landing(_ problem: String?, status: HTTPResponse.Status = .ok) -> Response {
        var data: [String: Any] = [:]
        if let problem { data["sign_in_problem"] = problem }
        return renderer.page(status, "landing", title: "Sign in", user: nil, data)
    }

    private func taskID<Context: RequestContext>(_ context: Context) throws -> Int64 {
        guard let text = context.parameters.get("id"), let id = Int64(text), id > 0 else { throw Problem.notFound() }
        return id
    }

    /// Returns the fields of a form (`application/x-www-form-urlencoded`, at most 32 KB); a repeated name keeps
    /// its last value.
    static func form(_ request: Request) async throws -> [String: String] {
        let body = try await request.limitedBody(32 * 1024, what: "form")
        var fields: [String: String] = [:]
        for pair in String(buffer: body).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            guard let name = parts.first else { continue }
            fields[decode(name)] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }
}
