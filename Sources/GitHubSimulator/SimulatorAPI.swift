import Foundation
import OpenSSLCrypto

struct SimResponse: Sendable {
    var status: Int
    var headers: [(String, String)] = []
    var body: [UInt8] = []

    static func json(_ status: Int, _ object: [String: Any], headers: [(String, String)] = []) -> SimResponse {
        encode(status, object, headers: headers)
    }

    static func json(_ status: Int, _ array: [Any], headers: [(String, String)] = []) -> SimResponse {
        encode(status, array, headers: headers)
    }

    private static func encode(_ status: Int, _ object: Any, headers: [(String, String)]) -> SimResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed])) ?? Data()
        return SimResponse(status: status, headers: [("Content-Type", "application/json; charset=utf-8")] + headers, body: [UInt8](data))
    }

    static func message(_ status: Int, _ text: String, headers: [(String, String)] = [], errors: [[String: Any]]? = nil) -> SimResponse {
        var object: [String: Any] = ["message": text, "documentation_url": "https://docs.github.com/rest"]
        if let errors { object["errors"] = errors }
        return json(status, object, headers: headers)
    }

    static let notFound = message(404, "Not Found")
    static func validationFailed(_ detail: String, field: String? = nil) -> SimResponse {
        var error: [String: Any] = ["message": detail, "code": "custom"]
        if let field { error["field"] = field }
        return message(422, "Validation Failed", errors: [error])
    }
    static let noContent = SimResponse(status: 204)
}

nonisolated(unsafe) let iso8601: ISO8601DateFormatter = {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter
}()

func userJSON(_ login: String, id: Int64? = nil) -> [String: Any] {
    let isBot = login.hasSuffix("[bot]")
    let stableID = id ?? Int64(abs(login.hashValue % 1_000_000) + 1)
    return ["login": login, "id": stableID, "type": isBot ? "Bot" : "User", "site_admin": false]
}

/// The REST side of the simulator.
struct SimulatorAPI: Sendable {
    let store: SimulatorStore
    let configuration: GitHubSimulator.Configuration
    let webhooks: WebhookSender

    var base: String { store.baseURL }

    // MARK: Routing

    func handle(method: String, segments: [String], query: [String: String], headers: [String: String], body: [UInt8]) async -> SimResponse {
        switch (method, segments.first) {
        case ("POST", "app") where segments.count == 5 && segments[1] == "hook" && segments[2] == "deliveries" && segments[4] == "attempts":
            guard case .success = verifyJWT(headers["authorization"]) else { return .message(401, "A JSON web token could not be decoded") }
            guard let deliveryID = Int64(segments[3]) else { return .notFound }
            guard let original = store.withState({ state -> SimulatedDelivery? in
                guard let original = state.deliveries.first(where: { $0.id == deliveryID }) else { return nil }
                state.redeliveries.append(deliveryID)
                return original
            }) else { return .notFound }
            // GitHub queues the redelivery; the simulator sends it before answering, so tests need not wait.
            _ = await webhooks.send(event: original.event, action: original.action, payload: original.payload, guid: original.guid,
                                    installationID: original.installationID, repositoryID: original.repositoryID, redelivery: true)
            return .json(202, [:] as [String: Any])
        case (_, "login"):
            return handleOAuth(method: method, segments: segments, query: query, headers: headers, body: body) ?? .notFound
        case ("GET", "user"):
            return handleUserAccess(segments: Array(segments.dropFirst()), query: query, headers: headers)
        case ("POST", "app-manifests") where segments.count == 3 && segments[2] == "conversions":
            return convertManifest(code: segments[1])
        case ("POST", "settings"), ("POST", "organizations"):
            return handleManifestForm(segments: segments, query: query, body: body) ?? .notFound
        case (_, "app"):
            return handleApp(method: method, segments: Array(segments.dropFirst()), query: query, headers: headers, body: body)
        case ("GET", "users") where segments.count == 2:
            return getUser(segments[1], headers: headers)
        case ("DELETE", "installation") where segments == ["installation", "token"]:
            return revokeToken(headers: headers)
        case (_, "repos") where segments.count >= 3:
            return await handleRepo(method: method, owner: segments[1], name: segments[2], rest: Array(segments.dropFirst(3)),
                                    query: query, headers: headers, body: body)
        default:
            return .notFound
        }
    }

    // MARK: App (JWT)

    private func handleApp(method: String, segments: [String], query: [String: String], headers: [String: String], body: [UInt8]) -> SimResponse {
        let appID: Int64
        switch verifyJWT(headers["authorization"]) {
        case .success(let id): appID = id
        case .failure(let response): return response
        }
        switch (method, segments.count) {
        case ("GET", 0):
            return store.withState { state in
                guard let app = state.apps[appID] else { return .notFound }
                return .json(200, [
                    "id": app.id, "slug": app.slug, "name": app.name, "client_id": app.clientID, "node_id": "A_\(app.id)",
                    "owner": userJSON("simulator-org"), "description": "", "external_url": "", "html_url": "\(base)/apps/\(app.slug)",
                    "created_at": iso8601.string(from: Date()), "updated_at": iso8601.string(from: Date()),
                    "permissions": Self.defaultPermissions,
                    "events": Self.appEvents,
                ])
            }
        case ("POST", 3) where segments[0] == "installations" && segments[2] == "access_tokens":
            guard let installationID = Int64(segments[1]) else { return .notFound }
            return mintToken(appID: appID, installationID: installationID, body: body)
        case ("GET", 2) where segments == ["hook", "deliveries"]:
            let perPage = min(max(Int(query["per_page"] ?? "") ?? 30, 1), 100)
            // The cursor is opaque to clients; here it is the id of the next (older) delivery.
            let cursor = query["cursor"].flatMap { Int64($0) }
            return store.withState { state in
                let remaining = state.deliveries.sorted { $0.id > $1.id }.filter { cursor == nil || $0.id <= cursor! }
                let page = remaining.prefix(perPage)
                var headers: [(String, String)] = []
                if remaining.count > perPage {
                    let next = remaining[perPage].id
                    headers.append(("Link", "<\(base)/app/hook/deliveries?per_page=\(perPage)&cursor=\(next)>; rel=\"next\""))
                }
                return .json(200, page.map { delivery -> [String: Any] in
                    [
                        "id": delivery.id, "guid": delivery.guid, "delivered_at": iso8601.string(from: delivery.deliveredAt),
                        "redelivery": delivery.redelivery, "duration": 0.05, "status": (200..<300).contains(delivery.statusCode) ? "OK" : delivery.statusCode == 0 ? "failed to connect to host" : "Invalid HTTP Response: \(delivery.statusCode)",
                        "status_code": delivery.statusCode, "event": delivery.event, "action": nullable(delivery.action),
                        "installation_id": nullable(delivery.installationID), "repository_id": nullable(delivery.repositoryID),
                    ]
                }, headers: headers)
            }
        default:
            return .notFound
        }
    }

    enum JWTCheck { case success(Int64), failure(SimResponse) }

    /// Checks an App JWT as GitHub does: RS256, signed by the App's key, `iat`/`exp` sane.
    func verifyJWT(_ authorization: String?) -> JWTCheck {
        let reject = { (text: String) in JWTCheck.failure(.message(401, text)) }
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else {
            return reject("A JSON web token could not be decoded")
        }
        let jwt = String(authorization.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
        let parts = jwt.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              let headerBytes = Base64URL.decode(parts[0]), let payloadBytes = Base64URL.decode(parts[1]),
              let signature = Base64URL.decode(parts[2]),
              let header = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any],
              let payload = try? JSONSerialization.jsonObject(with: Data(payloadBytes)) as? [String: Any] else {
            return reject("A JSON web token could not be decoded")
        }
        guard header["alg"] as? String == "RS256" else { return reject("'alg' must be RS256") }
        guard let iat = (payload["iat"] as? NSNumber)?.int64Value, let exp = (payload["exp"] as? NSNumber)?.int64Value else {
            return reject("'Issued at' and 'Expiration time' claims are required")
        }
        let issuer: String
        if let number = payload["iss"] as? NSNumber { issuer = number.stringValue } else if let text = payload["iss"] as? String { issuer = text } else {
            return reject("'Issuer' claim ('iss') must be an Integer or the App's client ID")
        }
        let now = Int64(configuration.clock().timeIntervalSince1970)
        let (app, key) = store.withState { state -> (SimulatedApp?, RSAPublicKeyBox?) in
            let app = state.apps.values.first { String($0.id) == issuer || $0.clientID == issuer }
            return (app, app.flatMap { state.appPublicKeys[$0.id] })
        }
        guard let app, let key else { return reject("Integration not found") }
        let signingInput = Array("\(parts[0]).\(parts[1])".utf8)
        guard key.verify(signature, signingInput) else {
            return reject("A JSON web token could not be decoded")
        }
        guard iat <= now + 60 else { return reject("'Issued at' claim ('iat') must be an Integer representing a time in the past") }
        guard exp > now else { return reject("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires") }
        guard exp - iat <= 600 else { return reject("'Expiration time' claim ('exp') is too far in the future") }
        return .success(app.id)
    }

    private func mintToken(appID: Int64, installationID: Int64, body: [UInt8]) -> SimResponse {
        let object: [String: Any]? = body.isEmpty ? [:] : ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any])
        guard let object else { return .message(400, "Problems parsing JSON") }
        return store.withState { state in
            guard let installation = state.installations[installationID], installation.appID == appID else { return .notFound }
            var repositoryIDs: [Int64]? = nil
            if let ids = object["repository_ids"] {
                guard let ids = ids as? [NSNumber] else { return .validationFailed("repository_ids must be an array of integers", field: "repository_ids") }
                repositoryIDs = ids.map(\.int64Value)
            }
            if let names = object["repositories"] as? [String] {
                let found = names.compactMap { name in state.repositories.values.first { $0.installationID == installationID && $0.name == name }?.id }
                guard found.count == names.count else { return .validationFailed("There is at least one repository that does not exist or is not accessible to the parent installation.") }
                repositoryIDs = (repositoryIDs ?? []) + found
            }
            if let ids = repositoryIDs {
                for id in ids where state.repositories[id]?.installationID != installationID {
                    return .validationFailed("There is at least one repository that does not exist or is not accessible to the parent installation.")
                }
            }
            let granted = state.installationPermissions[installationID] ?? Self.defaultPermissions
            var permissions = granted
            if let requested = object["permissions"] {
                guard let requested = requested as? [String: String] else { return .validationFailed("permissions must be an object", field: "permissions") }
                for (name, level) in requested {
                    guard let have = granted[name], level == "read" || level == "write", !(level == "write" && have == "read") else {
                        return .validationFailed("The permissions requested are not granted to this installation.")
                    }
                }
                permissions = requested
                permissions["metadata"] = "read"
            }
            let token = "ghs_" + randomAlphanumeric(36)
            let expiresAt = configuration.clock().addingTimeInterval(configuration.tokenLifetime)
            state.tokens[token] = IssuedToken(token: token, installationID: installationID, repositoryIDs: repositoryIDs,
                                              permissions: permissions, expiresAt: expiresAt, revoked: false)
            state.tokenOrder.append(token)
            var response: [String: Any] = [
                "token": token, "expires_at": iso8601.string(from: expiresAt), "permissions": permissions,
                "repository_selection": repositoryIDs == nil ? "all" : "selected",
            ]
            if let repositoryIDs {
                response["repositories"] = repositoryIDs.compactMap { state.repositories[$0] }.map { repositoryJSON($0) }
            }
            return .json(201, response)
        }
    }

    private func revokeToken(headers: [String: String]) -> SimResponse {
        guard let token = bearerToken(headers["authorization"]) else { return .message(401, "Requires authentication") }
        return store.withState { state in
            guard var issued = state.tokens[token], !issued.revoked, issued.expiresAt > configuration.clock() else {
                return .message(401, "Bad credentials")
            }
            issued.revoked = true
            state.tokens[token] = issued
            return .noContent
        }
    }

    // MARK: Repositories (installation token)

    /// Returns the live token in `authorization` that may use `repository` with `permission` at
    /// `level`, or the response GitHub would give.
    func authorize(_ authorization: String?, repository: SimulatedRepository, permission: String, level: String) -> Result<IssuedToken, SimResponseError> {
        guard let token = bearerToken(authorization) else {
            return .failure(SimResponseError(response: .message(401, "Requires authentication")))
        }
        return store.withState { state in
            guard let issued = state.tokens[token], !issued.revoked, issued.expiresAt > configuration.clock() else {
                return .failure(SimResponseError(response: .message(401, "Bad credentials")))
            }
            guard issued.installationID == repository.installationID,
                  issued.repositoryIDs.map({ $0.contains(repository.id) }) ?? true else {
                return .failure(SimResponseError(response: .notFound))
            }
            let have = issued.permissions[permission] ?? (permission == "metadata" ? "read" : nil)
            guard let have, level == "read" || have == "write" else {
                return .failure(SimResponseError(response: .message(403, "Resource not accessible by integration")))
            }
            return .success(issued)
        }
    }

    private func handleRepo(method: String, owner: String, name: String, rest: [String], query: [String: String],
                            headers: [String: String], body: [UInt8]) async -> SimResponse {
        guard let repository = store.withState({ $0.repository(owner: owner, name: name) }) else {
            // Without a valid token GitHub says 401 before it says 404.
            if bearerToken(headers["authorization"]).flatMap({ token in store.withState { $0.tokens[token] } }) == nil {
                return .message(401, "Requires authentication")
            }
            return .notFound
        }
        let (permission, level) = requiredPermission(method: method, rest: rest)
        let issued: IssuedToken
        switch authorize(headers["authorization"], repository: repository, permission: permission, level: level) {
        case .success(let token): issued = token
        case .failure(let error): return error.response
        }
        let actor = store.withState { state in state.installations[issued.installationID].flatMap { state.apps[$0.appID]?.botLogin } } ?? "simulator[bot]"
        let isMutation = method != "GET"
        if isMutation { store.withState { $0.beginMutation(repository.installationID) } }
        if configuration.latency > .zero { try? await Task.sleep(for: configuration.latency) }
        let json = body.isEmpty ? nil : (try? JSONSerialization.jsonObject(with: Data(body)))
        if !body.isEmpty && json == nil {
            if isMutation { store.withState { $0.endMutation(repository.installationID) } }
            return .message(400, "Problems parsing JSON")
        }
        let fields = json as? [String: Any] ?? [:]
        let response = await route(method: method, repository: repository, rest: rest, query: query, fields: fields, actor: actor)
        if isMutation { store.withState { $0.endMutation(repository.installationID) } }
        return response
    }

    private func requiredPermission(method: String, rest: [String]) -> (String, String) {
        let level = method == "GET" ? "read" : "write"
        switch rest.first {
        case nil, "collaborators": return ("metadata", "read")
        case "issues": return ("issues", level)
        case "pulls": return ("pull_requests", level)
        case "contents", "branches", "git": return ("contents", level)
        case "check-runs": return ("checks", level)
        case "commits" where rest.last == "check-runs": return ("checks", level)
        case "actions": return ("actions", level)
        default: return ("metadata", "read")
        }
    }

    private func route(method: String, repository repo: SimulatedRepository, rest: [String], query: [String: String],
                       fields: [String: Any], actor: String) async -> SimResponse {
        switch (method, rest.count, rest.first) {
        case ("GET", 0, _):
            return .json(200, repositoryJSON(repo))
        case ("GET", 3, "collaborators") where rest[2] == "permission":
            let role = repo.collaborators[rest[1]] ?? (repo.collaborators.keys.first { $0.lowercased() == rest[1].lowercased() }.flatMap { repo.collaborators[$0] })
            let permission: String
            switch role {
            case "admin": permission = "admin"
            case "maintain", "write": permission = "write"
            case "triage", "read": permission = "read"
            default: permission = repo.isPrivate ? "none" : "read"
            }
            return .json(200, ["permission": permission, "role_name": role ?? permission, "user": userJSON(rest[1])])
        case ("GET", 2, "issues"):
            guard let number = Int(rest[1]) else { return .notFound }
            return store.withState { state in
                guard let issue = state.issues[repo.id]?[number] else { return .notFound }
                return .json(200, issueJSON(issue, repo: repo))
            }
        case ("POST", 3, "issues") where rest[2] == "comments":
            guard let number = Int(rest[1]) else { return .notFound }
            guard let text = fields["body"] as? String else { return .validationFailed("body is required", field: "body") }
            return store.withState { state in
                guard state.issues[repo.id]?[number] != nil else { return .notFound }
                let now = configuration.clock()
                let comment = SimulatedComment(id: state.makeID(), repositoryID: repo.id, issueNumber: number, author: actor,
                                               createdAt: now, updatedAt: now, history: [text])
                state.comments[comment.id] = comment
                return .json(201, commentJSON(comment, repo: repo))
            }
        case ("GET", 3, "issues") where rest[2] == "comments":
            guard let number = Int(rest[1]) else { return .notFound }
            let perPage = min(max(Int(query["per_page"] ?? "") ?? 30, 1), 100)
            let page = max(Int(query["page"] ?? "") ?? 1, 1)
            let since = query["since"].flatMap { iso8601.date(from: $0) }
            return store.withState { state in
                guard state.issues[repo.id]?[number] != nil else { return .notFound }
                let all = state.comments.values.filter { $0.repositoryID == repo.id && $0.issueNumber == number && (since == nil || $0.updatedAt >= since!) }
                    .sorted { $0.id < $1.id }
                let slice = all.dropFirst((page - 1) * perPage).prefix(perPage)
                return .json(200, slice.map { commentJSON($0, repo: repo) })
            }
        case (_, 3, "issues") where rest[1] == "comments":
            guard let id = Int64(rest[2]) else { return .notFound }
            return store.withState { state in
                guard var comment = state.comments[id], comment.repositoryID == repo.id else { return .notFound }
                switch method {
                case "GET":
                    return .json(200, commentJSON(comment, repo: repo))
                case "PATCH":
                    guard let text = fields["body"] as? String else { return .validationFailed("body is required", field: "body") }
                    comment.history.append(text)
                    comment.updatedAt = configuration.clock()
                    state.comments[id] = comment
                    return .json(200, commentJSON(comment, repo: repo))
                case "DELETE":
                    state.comments[id] = nil
                    return .noContent
                default:
                    return .notFound
                }
            }
        case ("POST", 4, "issues") where rest[1] == "comments" && rest[3] == "reactions":
            guard let id = Int64(rest[2]) else { return .notFound }
            return store.withState { state in
                guard let comment = state.comments[id], comment.repositoryID == repo.id else { return .notFound }
                return addReaction(&state, subject: .comment(id: id), fields: fields, actor: actor)
            }
        case ("POST", 3, "issues") where rest[2] == "reactions":
            guard let number = Int(rest[1]) else { return .notFound }
            return store.withState { state in
                guard state.issues[repo.id]?[number] != nil else { return .notFound }
                return addReaction(&state, subject: .issue(repositoryID: repo.id, number: number), fields: fields, actor: actor)
            }
        case ("POST", 3, "issues") where rest[2] == "labels":
            guard let number = Int(rest[1]) else { return .notFound }
            guard let labels = fields["labels"] as? [String] else {
                return .validationFailed("labels must be an array of strings", field: "labels")
            }
            return store.withState { state in
                guard var issue = state.issues[repo.id]?[number] else { return .notFound }
                for label in labels where !issue.labels.contains(label) { issue.labels.append(label) }
                state.issues[repo.id]?[number] = issue
                return .json(200, issue.labels.map(labelJSON))
            }
        case ("DELETE", 4, "issues") where rest[2] == "labels":
            guard let number = Int(rest[1]) else { return .notFound }
            return store.withState { state in
                guard var issue = state.issues[repo.id]?[number] else { return .notFound }
                guard let index = issue.labels.firstIndex(of: rest[3]) else { return .message(404, "Label does not exist") }
                issue.labels.remove(at: index)
                state.issues[repo.id]?[number] = issue
                return .json(200, issue.labels.map(labelJSON))
            }
        case (_, _, "git") where rest.count >= 2:
            return await handleGitData(method: method, repo: repo, rest: rest, fields: fields)
        case ("POST", 1, "check-runs"):
            return await createCheckRun(repo: repo, fields: fields)
        case ("GET", 3, "commits") where rest[2] == "check-runs":
            return listCheckRuns(repo: repo, ref: rest[1], query: query)
        case ("GET", 4, "actions") where rest[1] == "jobs" && rest[3] == "logs":
            return jobLogRedirect(repo: repo, jobID: rest[2])
        case ("POST", 1, "pulls"):
            return await createPullRequest(repo: repo, fields: fields, actor: actor)
        case ("GET", 1, "pulls"):
            let state = query["state"] ?? "open"
            guard ["open", "closed", "all"].contains(state) else { return .validationFailed("state is invalid", field: "state") }
            let head = query["head"]
            return store.withState { store in
                let pulls = (store.pullRequests[repo.id] ?? [:]).values
                    .filter { state == "all" || $0.state == state }
                    .filter { pull in
                        guard let head else { return true }
                        let parts = head.split(separator: ":", maxSplits: 1).map(String.init)
                        return parts.count == 2 ? (pull.headOwner.lowercased() == parts[0].lowercased() && pull.head == parts[1]) : pull.head == head
                    }
                    .sorted { $0.number > $1.number }
                return .json(200, pulls.map { pullJSON($0, repo: repo) })
            }
        case (_, 2, "pulls"):
            guard let number = Int(rest[1]) else { return .notFound }
            return store.withState { state in
                guard var pull = state.pullRequests[repo.id]?[number] else { return .notFound }
                if method == "PATCH" {
                    if let title = fields["title"] as? String { pull.title = title }
                    if let body = fields["body"] as? String { pull.body = body }
                    if let newState = fields["state"] {
                        guard let newState = newState as? String, ["open", "closed"].contains(newState) else {
                            return .validationFailed("state must be open or closed", field: "state")
                        }
                        pull.state = newState
                        state.issues[repo.id]?[number]?.state = newState
                    }
                    if let title = fields["title"] as? String { state.issues[repo.id]?[number]?.title = title }
                    state.pullRequests[repo.id]?[number] = pull
                } else if method != "GET" {
                    return .notFound
                }
                return .json(200, pullJSON(pull, repo: repo))
            }
        case ("POST", 3, "pulls") where rest[2] == "requested_reviewers":
            guard let number = Int(rest[1]) else { return .notFound }
            let reviewers = fields["reviewers"] as? [String] ?? []
            let teams = fields["team_reviewers"] as? [String] ?? []
            return store.withState { state in
                guard var pull = state.pullRequests[repo.id]?[number] else { return .notFound }
                for reviewer in reviewers where reviewer.lowercased() == pull.author.lowercased() {
                    return .validationFailed("Review cannot be requested from pull request author.")
                }
                for reviewer in reviewers where repo.collaborators[reviewer] == nil {
                    return .validationFailed("Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the \(repo.fullName) repository.")
                }
                for reviewer in reviewers where !pull.requestedReviewers.contains(reviewer) { pull.requestedReviewers.append(reviewer) }
                for team in teams where !pull.requestedTeams.contains(team) { pull.requestedTeams.append(team) }
                state.pullRequests[repo.id]?[number] = pull
                return .json(201, pullJSON(pull, repo: repo))
            }
        case ("POST", 3, "pulls") where rest[2] == "reviews":
            guard let number = Int(rest[1]) else { return .notFound }
            let event = fields["event"] as? String
            let reviewState: String
            switch event {
            case nil: reviewState = "PENDING"
            case "APPROVE": reviewState = "APPROVED"
            case "REQUEST_CHANGES": reviewState = "CHANGES_REQUESTED"
            case "COMMENT": reviewState = "COMMENTED"
            default: return .validationFailed("event is invalid", field: "event")
            }
            let text = fields["body"] as? String
            if (event == "REQUEST_CHANGES" || event == "COMMENT") && (text ?? "").isEmpty {
                return .validationFailed("Review body is required for \(event!)", field: "body")
            }
            return store.withState { state in
                guard let pull = state.pullRequests[repo.id]?[number] else { return .notFound }
                if pull.author == actor && (event == "APPROVE" || event == "REQUEST_CHANGES") {
                    return .validationFailed("Can not \(event == "APPROVE" ? "approve" : "request changes on") your own pull request")
                }
                let review = SimulatedReview(id: state.makeID(), repositoryID: repo.id, pullNumber: number, author: actor, state: reviewState,
                                             body: text, commitID: fields["commit_id"] as? String ?? pull.headSHA)
                state.reviews.append(review)
                return .json(200, [
                    "id": review.id, "state": review.state, "body": review.body ?? "", "commit_id": review.commitID,
                    "user": userJSON(actor), "html_url": "\(base)/\(repo.fullName)/pull/\(number)#pullrequestreview-\(review.id)",
                ])
            }
        case ("GET", 1, "branches"):
            let perPage = min(max(Int(query["per_page"] ?? "") ?? 30, 1), 100)
            let page = max(Int(query["page"] ?? "") ?? 1, 1)
            let listing = (try? await git(["--git-dir", repo.gitDirectory, "for-each-ref", "--sort=refname", "--format=%(refname:strip=2) %(objectname)",
                                           "refs/heads"])) ?? ""
            let branches = listing.split(separator: "\n").compactMap { line -> [String: Any]? in
                let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { return nil }
                return ["name": parts[0], "protected": false, "commit": ["sha": parts[1], "url": "\(base)/repos/\(repo.fullName)/commits/\(parts[1])"]]
            }
            return .json(200, Array(branches.dropFirst((page - 1) * perPage).prefix(perPage)))
        case ("GET", 2, "branches"):
            let branch = rest[1].removingPercentEncoding ?? rest[1]
            guard let sha = try? await git(["--git-dir", repo.gitDirectory, "rev-parse", "--verify", "--quiet", "refs/heads/\(branch)^{commit}"]),
                  !sha.isEmpty else { return .message(404, "Branch not found") }
            return .json(200, [
                "name": branch, "protected": false,
                "commit": ["sha": sha, "url": "\(base)/repos/\(repo.fullName)/commits/\(sha)"],
                "_links": ["self": "\(base)/repos/\(repo.fullName)/branches/\(branch)", "html": "\(base)/\(repo.fullName)/tree/\(branch)"],
            ])
        case ("GET", _, "contents") where rest.count >= 2:
            return await fileContents(repo: repo, path: rest.dropFirst().joined(separator: "/"), ref: query["ref"])
        default:
            return .notFound
        }
    }

    private func addReaction(_ state: inout SimulatorStore.State, subject: ReactionSubject, fields: [String: Any], actor: String) -> SimResponse {
        let valid = ["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]
        guard let content = fields["content"] as? String, valid.contains(content) else {
            return .validationFailed("content must be one of \(valid.joined(separator: ", "))", field: "content")
        }
        if let existing = state.reactions.first(where: { $0.subject == subject && $0.content == content && $0.user == actor }) {
            return .json(200, reactionJSON(existing))
        }
        let reaction = SimulatedReaction(id: state.makeID(), subject: subject, content: content, user: actor)
        state.reactions.append(reaction)
        return .json(201, reactionJSON(reaction))
    }

    private func createPullRequest(repo: SimulatedRepository, fields: [String: Any], actor: String) async -> SimResponse {
        guard let title = fields["title"] as? String, !title.isEmpty else { return .validationFailed("title is required", field: "title") }
        guard let headSpec = fields["head"] as? String else { return .validationFailed("head is required", field: "head") }
        guard let base = fields["base"] as? String else { return .validationFailed("base is required", field: "base") }
        let headParts = headSpec.split(separator: ":", maxSplits: 1).map(String.init)
        let headOwner = headParts.count == 2 ? headParts[0] : repo.owner
        let head = headParts.count == 2 ? headParts[1] : headSpec
        guard headOwner.lowercased() == repo.owner.lowercased() else {
            return .validationFailed("head must be a branch of \(repo.fullName) (forks are not simulated)", field: "head")
        }
        let headSHA = try? await git(["--git-dir", repo.gitDirectory, "rev-parse", "--verify", "--quiet", "refs/heads/\(head)^{commit}"])
        let baseSHA = try? await git(["--git-dir", repo.gitDirectory, "rev-parse", "--verify", "--quiet", "refs/heads/\(base)^{commit}"])
        guard let headSHA, !headSHA.isEmpty else { return .validationFailed("Field 'head' is invalid: no such branch", field: "head") }
        guard let baseSHA, !baseSHA.isEmpty else { return .validationFailed("Field 'base' is invalid: no such branch", field: "base") }
        guard headSHA != baseSHA else { return .validationFailed("No commits between \(base) and \(head)") }
        return store.withState { state in
            if (state.pullRequests[repo.id] ?? [:]).values.contains(where: { $0.head == head && $0.state == "open" }) {
                return .validationFailed("A pull request already exists for \(headOwner):\(head).")
            }
            let number = state.makeNumber(repo.id)
            let pull = SimulatedPullRequest(
                id: state.makeID(), repositoryID: repo.id, number: number, title: title, body: fields["body"] as? String, author: actor,
                head: head, headOwner: headOwner, headSHA: headSHA, base: base, baseSHA: baseSHA, state: "open",
                draft: fields["draft"] as? Bool ?? false, requestedReviewers: [], requestedTeams: [])
            state.pullRequests[repo.id, default: [:]][number] = pull
            state.issues[repo.id, default: [:]][number] = SimulatedIssue(
                repositoryID: repo.id, id: state.makeID(), number: number, title: title, body: pull.body, author: actor,
                state: "open", labels: [], isPullRequest: true)
            return .json(201, pullJSON(pull, repo: repo))
        }
    }

    private func fileContents(repo: SimulatedRepository, path: String, ref: String?) async -> SimResponse {
        let revision = ref ?? repo.defaultBranch
        guard let type = try? await git(["--git-dir", repo.gitDirectory, "cat-file", "-t", "\(revision):\(path)"]) else {
            return .notFound
        }
        guard type == "blob",
              let sha = try? await git(["--git-dir", repo.gitDirectory, "rev-parse", "\(revision):\(path)"]),
              let result = try? await runProcess(["git", "--git-dir", repo.gitDirectory, "cat-file", "blob", sha], environment: sanitizedGitEnvironment()), result.status == 0 else {
            return .json(200, [] as [Any])  // a directory: GitHub answers with a listing
        }
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return .json(200, [
            "type": "file", "encoding": "base64", "size": result.stdout.count, "name": name, "path": path,
            "content": Data(result.stdout).base64EncodedString(options: [.lineLength76Characters, .endLineWithLineFeed]),
            "sha": sha, "url": "\(base)/repos/\(repo.fullName)/contents/\(path)",
        ])
    }

    // MARK: JSON

    func repositoryJSON(_ repo: SimulatedRepository) -> [String: Any] {
        [
            "id": repo.id, "node_id": "R_\(repo.id)", "name": repo.name, "full_name": repo.fullName, "private": repo.isPrivate,
            "owner": userJSON(repo.owner), "default_branch": repo.defaultBranch, "clone_url": repo.cloneURL,
            "html_url": "\(base)/\(repo.fullName)", "url": "\(base)/repos/\(repo.fullName)",
        ]
    }

    func issueJSON(_ issue: SimulatedIssue, repo: SimulatedRepository) -> [String: Any] {
        var object: [String: Any] = [
            "id": issue.id, "number": issue.number, "title": issue.title, "body": nullable(issue.body), "state": issue.state,
            "user": userJSON(issue.author), "labels": issue.labels.map(labelJSON),
            "html_url": "\(base)/\(repo.fullName)/\(issue.isPullRequest ? "pull" : "issues")/\(issue.number)",
        ]
        if issue.isPullRequest { object["pull_request"] = ["url": "\(base)/repos/\(repo.fullName)/pulls/\(issue.number)"] }
        return object
    }

    func commentJSON(_ comment: SimulatedComment, repo: SimulatedRepository) -> [String: Any] {
        [
            "id": comment.id, "body": comment.body, "user": userJSON(comment.author),
            "created_at": iso8601.string(from: comment.createdAt), "updated_at": iso8601.string(from: comment.updatedAt),
            "html_url": "\(base)/\(repo.fullName)/issues/\(comment.issueNumber)#issuecomment-\(comment.id)",
        ]
    }

    func reactionJSON(_ reaction: SimulatedReaction) -> [String: Any] {
        ["id": reaction.id, "content": reaction.content, "user": userJSON(reaction.user), "created_at": iso8601.string(from: Date())]
    }

    func labelJSON(_ name: String) -> [String: Any] {
        ["id": Int64(abs(name.hashValue % 1_000_000) + 1), "name": name, "color": "ededed", "default": false]
    }

    func pullJSON(_ pull: SimulatedPullRequest, repo: SimulatedRepository) -> [String: Any] {
        [
            "id": pull.id, "number": pull.number, "state": pull.state, "title": pull.title, "body": nullable(pull.body),
            "draft": pull.draft, "merged": false, "user": userJSON(pull.author),
            "head": ["ref": pull.head, "sha": pull.headSHA, "label": "\(pull.headOwner):\(pull.head)"],
            "base": ["ref": pull.base, "sha": pull.baseSHA, "label": "\(repo.owner):\(pull.base)"],
            "html_url": "\(base)/\(repo.fullName)/pull/\(pull.number)",
            "requested_reviewers": pull.requestedReviewers.map { userJSON($0) },
        ]
    }
}

struct SimResponseError: Error {
    var response: SimResponse
}

func nullable(_ value: Any?) -> Any { value ?? NSNull() }

func bearerToken(_ authorization: String?) -> String? {
    guard let authorization else { return nil }
    let parts = authorization.split(separator: " ", maxSplits: 1)
    guard parts.count == 2, ["bearer", "token"].contains(parts[0].lowercased()) else { return nil }
    return String(parts[1]).trimmingCharacters(in: .whitespaces)
}

func randomAlphanumeric(_ count: Int) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
    return String((0..<count).map { _ in alphabet.randomElement()! })
}

extension SimulatorStore.State {
    mutating func beginMutation(_ installationID: Int64) {
        let now = (inFlightMutations[installationID] ?? 0) + 1
        inFlightMutations[installationID] = now
        maxInFlightMutations[installationID] = max(maxInFlightMutations[installationID] ?? 0, now)
    }

    mutating func endMutation(_ installationID: Int64) {
        inFlightMutations[installationID] = max((inFlightMutations[installationID] ?? 1) - 1, 0)
    }
}
