import Accounting
import Database
import Foundation
import GitHub
import HTTPTypes
import Hummingbird
import Logging
import Models
import NIOCore
import SignIn

/// The API for signed-in users, each seeing only what GitHub lets them see (`user_repository_access`, synced
/// from GitHub with the user's own token at sign-in and when older than 10 minutes):
///
/// - `GET /api/repositories`, `POST /api/repositories/sync`: the repositories of the App's installations the
///   user can reach, with their permission; `GET /api/repositories/{id}/branches`: a visible one's branches.
/// - `GET /api/tasks` (`status`, `repository_id`, `cursor`, `limit`), `GET /api/tasks/{id}`: tasks of
///   repositories the user may read; any other id answers 404.
/// - `PUT /api/tasks/{id}/cancel`: needs push access; carried out as `/asynccode cancel` on the task's thread.
struct APIController: Sendable {
    let session: SignInController
    let access: RepositoryAccess?
    let store: APIStore
    let ledger: CreditLedger
    /// The App's GitHub client (branches are read with the installation's token).
    let github: GitHubClient?

    func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/api/repositories") { request, context in
            await session.respond(request, context) { signIn in try await repositories(request, signIn, force: false) }
        }
        router.post("/api/repositories/sync") { request, context in
            await session.respond(request, context) { signIn in try await repositories(request, signIn, force: true) }
        }
        router.get("/api/repositories/{id}/branches") { request, context in
            await session.respond(request, context) { signIn in
                let caller = try await session.caller(request, signIn)
                let id = try taskID(context)
                guard try await accessible(caller, force: false).contains(where: { $0.id == id }),
                      let github, let repo = try await store.repositoryRef(id: id) else { throw Problem.notFound() }
                let branches: [Branch]
                do {
                    branches = try await github.listBranches(in: repo)
                } catch {
                    throw Problem(slug: "github-unavailable", title: "GitHub did not answer as expected", status: .badGateway,
                                  detail: "cannot list the branches of \(repo.fullName)")
                }
                return jsonResponse(.ok, ["branches": branches.map { ["name": $0.name, "sha": $0.commit.sha] }])
            }
        }
        router.get("/api/tasks") { request, context in await session.respond(request, context) { try await tasks(request, $0) } }
        router.get("/api/tasks/{id}") { request, context in
            await session.respond(request, context) { signIn in
                let caller = try await session.caller(request, signIn)
                let (task, _) = try await visibleTask(try taskID(context), caller)
                return jsonResponse(.ok, task)
            }
        }
        router.post("/api/tasks") { request, context in await session.respond(request, context) { try await create(request, $0) } }
        router.get("/api/tasks/{id}/results") { request, context in
            await session.respond(request, context) { signIn in
                let caller = try await session.caller(request, signIn)
                let id = try taskID(context)
                _ = try await visibleTask(id, caller)
                return jsonResponse(.ok, try await store.results(taskID: id))
            }
        }
        router.put("/api/tasks/{id}/cancel") { request, context in
            await session.respond(request, context) { signIn in try await cancel(request, try taskID(context), signIn) }
        }
        addRecordRoutes(to: router)
    }

    private func repositories(_ request: Request, _ signIn: SignIn, force: Bool) async throws -> Response {
        let caller = try await session.caller(request, signIn)
        if force, caller.viaCookie { try session.checkOrigin(request, signIn) }
        let repositories = try await accessible(caller, force: force)
        var body: [String: Any] = ["repositories": repositories.map(Self.repositoryJSON)]
        if force { body["synced_at"] = APIStore.timestamp(Date()) }
        return jsonResponse(.ok, body)
    }

    private func tasks(_ request: Request, _ signIn: SignIn) async throws -> Response {
        let caller = try await session.caller(request, signIn)
        let query = request.uri.queryParameters
        let status = query["status"].map(String.init)
        if let status, !Self.statuses.contains(status) {
            throw Problem(slug: "invalid-parameter", title: "Invalid parameter", status: .badRequest,
                          detail: "`status` is one of \(Self.statuses.sorted().joined(separator: ", "))")
        }
        let repositoryID = try Self.integer(query["repository_id"], "repository_id")
        let cursor = try Self.integer(query["cursor"], "cursor")
        let limit = try Self.integer(query["limit"], "limit", in: 1...100) ?? 30
        try await refreshAccess(caller)
        let (tasks, next) = try await store.tasks(accountID: caller.user.accountID, status: status, repositoryID: repositoryID,
                                                  before: cursor, limit: Int(limit))
        return jsonResponse(.ok, ["tasks": tasks, "next_cursor": next ?? NSNull()] as [String: Any])
    }

    /// `POST /api/tasks`: queues a task as a comment would (push access needed; the executor checks the
    /// permission with GitHub again, and applies limits, credits, settings and the jail as for any task).
    private func create(_ request: Request, _ signIn: SignIn) async throws -> Response {
        let caller = try await session.caller(request, signIn)
        if caller.viaCookie { try session.checkOrigin(request, signIn) }
        let body = try await request.limitedBody(16 * 1024)
        let id = try await start(try Self.newTask(Data(body.readableBytesView)), caller)
        guard let (created, _) = try await store.task(id: id, accountID: caller.user.accountID) else { throw Problem.notFound() }
        var response = jsonResponse(.created, created)
        response.headers[.location] = "/api/tasks/\(id)"
        return response
    }

    /// Queues a checked task for the caller (`POST /api/tasks` and the new-task page): 404 for a repository they
    /// cannot see, 403 without push access, 409 when its installation takes no work. Returns the task's id.
    func start(_ task: APIStore.NewTask, _ caller: Caller) async throws -> Int64 {
        guard let repository = try await accessible(caller, force: false).first(where: { $0.id == task.repositoryID }) else {
            throw Problem.notFound()
        }
        guard repository.canPush else {
            throw Problem(slug: "needs-push-access", title: "Needs push access", status: .forbidden,
                          detail: "starting a task needs push access to \(repository.fullName)")
        }
        guard let id = try await store.insert(task, accountID: caller.user.accountID) else {
            throw Problem(slug: "repository-inactive", title: "The repository takes no work", status: .conflict,
                          detail: "\(repository.fullName)'s installation is suspended or removed, or the repository was removed from it")
        }
        return id
    }

    /// Parses and checks the body of `POST /api/tasks`; a problem names the field.
    static func newTask(_ data: Data) throws -> APIStore.NewTask {
        func invalid(_ detail: String) -> Problem {
            Problem(slug: "invalid-body", title: "Invalid task", status: .badRequest, detail: detail)
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw invalid("the body is not a JSON object") }
        let known: Set<String> = ["repository_id", "prompt", "kind", "agent", "base_branch", "issue_number", "priority", "budget"]
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw invalid("`\(String(unknown.prefix(64)))` is not a field; known: \(known.sorted().joined(separator: ", "))")
        }
        func integer(_ name: String) throws -> Int64? {
            guard let value = object[name], !(value is NSNull) else { return nil }
            // JSON `true` is an NSNumber too; its type says it is a Boolean ("c").
            guard let number = value as? NSNumber, String(cString: number.objCType) != "c", let exact = Int64(exactly: number.doubleValue), exact > 0
            else { throw invalid("`\(name)` must be a positive whole number") }
            return exact
        }
        func text(_ name: String, max: Int) throws -> String? {
            guard let value = object[name], !(value is NSNull) else { return nil }
            guard let string = value as? String, !string.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, string.count <= max else {
                throw invalid("`\(name)` must be a non-empty string of at most \(max) characters")
            }
            return string
        }
        guard let repositoryID = try integer("repository_id") else { throw invalid("`repository_id` is required") }
        guard let prompt = try text("prompt", max: 8000) else { throw invalid("`prompt` is required") }
        let kinds = TaskKind.allCases.map(\.rawValue)
        let kind = try text("kind", max: 16) ?? "code"
        guard kinds.contains(kind) else { throw invalid("`kind` is one of \(kinds.joined(separator: ", "))") }
        let priorities: [String: Int32] = ["low": 1, "medium": 2, "high": 3]
        let priorityName = try text("priority", max: 16) ?? "medium"
        guard let priority = priorities[priorityName] else { throw invalid("`priority` is one of high, low, medium") }
        let budget = try text("budget", max: 20)
        if let budget, Decimal(string: budget).map({ $0 <= 0 || !$0.isFinite }) ?? true {
            throw invalid("`budget` is a positive number of credits, as a string such as \"12.5\"")
        }
        let agent = try text("agent", max: 64)
        if let agent, !agent.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) {
            throw invalid("`agent` is letters, digits, `.`, `_` and `-`")
        }
        return APIStore.NewTask(repositoryID: repositoryID, prompt: prompt, kind: kind, agent: agent,
                                baseBranch: try text("base_branch", max: 255), issueNumber: try integer("issue_number"),
                                priority: priority, budget: budget)
    }

    private func cancel(_ request: Request, _ id: Int64, _ signIn: SignIn) async throws -> Response {
        let caller = try await session.caller(request, signIn)
        if caller.viaCookie { try session.checkOrigin(request, signIn) }
        return jsonResponse(.ok, try await cancel(id, caller))
    }

    /// Asks for the task to be cancelled when it has not ended (`PUT /api/tasks/{id}/cancel` and the task page's
    /// Cancel button): 404 when the caller cannot see it, 403 without push access. Returns the task as it was.
    func cancel(_ id: Int64, _ caller: Caller) async throws -> [String: Any] {
        let (task, repositoryID) = try await visibleTask(id, caller)
        guard let repository = try await accessible(caller, force: false).first(where: { $0.id == repositoryID }), repository.canPush else {
            throw Problem(slug: "needs-push-access", title: "Needs push access", status: .forbidden,
                          detail: "cancelling a task needs push access to \(task["repository"].flatMap { ($0 as? [String: Any])?["full_name"] as? String } ?? "the repository")")
        }
        if ["pending", "running"].contains(task["status"] as? String ?? "") {
            try await store.requestCancel(taskID: id, accountID: caller.user.accountID)
        }
        return task
    }

    /// Returns the task when the caller may see it (their access synced first when stale); 404 otherwise.
    func visibleTask(_ id: Int64, _ caller: Caller) async throws -> ([String: Any], Int64) {
        try await refreshAccess(caller)
        guard let found = try await store.task(id: id, accountID: caller.user.accountID) else { throw Problem.notFound() }
        return found
    }

    /// Syncs the caller's access rows with GitHub when they are stale (for queries that join them).
    func refreshAccess(_ caller: Caller) async throws {
        guard let access else { throw Problem.notSignedIn() }
        try await access.refresh(accountID: caller.user.accountID, token: caller.token)
    }

    func accessible(_ caller: Caller, force: Bool) async throws -> [AccessibleRepository] {
        guard let access else { throw Problem.notSignedIn() }
        return try await access.repositories(accountID: caller.user.accountID, token: caller.token, force: force)
    }

    private func taskID<Context: RequestContext>(_ context: Context) throws -> Int64 {
        guard let text = context.parameters.get("id"), let id = Int64(text), id > 0 else { throw Problem.notFound() }
        return id
    }

    /// A task's statuses, in the order it goes through them.
    static let statuses = ["pending", "running", "completed", "failed", "cancelled"]

    static func integer(_ value: Substring?, _ name: String, in range: ClosedRange<Int64> = 1...Int64.max) throws -> Int64? {
        guard let value else { return nil }
        guard let number = Int64(value), range.contains(number) else {
            throw Problem(slug: "invalid-parameter", title: "Invalid parameter", status: .badRequest,
                          detail: "`\(name)` must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    static func repositoryJSON(_ repository: AccessibleRepository) -> [String: Any] {
        ["id": repository.id, "github_id": repository.githubID, "full_name": repository.fullName, "private": repository.isPrivate,
         "default_branch": repository.defaultBranch ?? NSNull(), "html_url": repository.htmlURL ?? NSNull(), "permission": repository.permission]
    }
}
