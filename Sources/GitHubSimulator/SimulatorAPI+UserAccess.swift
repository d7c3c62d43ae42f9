import Foundation

// What a user access token (`ghu_…`) may read about its user: `GET /user`, `GET /user/installations` and
// `GET /user/installations/{installation_id}/repositories`. A user token sees only what both the App and the
// user can reach: the App's installations on which the user has explicit access (owner or collaborator) to a
// repository, and those repositories, with the user's permissions on each.
extension SimulatorAPI {
    /// The events an App made in the simulator subscribes to (as `GET /app` lists them).
    static let appEvents = ["issue_comment", "issues", "pull_request", "pull_request_review", "check_suite", "workflow_run"]

    /// Routes `GET /user/…` (`segments` after `user`).
    func handleUserAccess(segments: [String], query: [String: String], headers: [String: String]) -> SimResponse {
        let token: SimulatedUserToken
        switch authenticateUser(headers["authorization"]) {
        case .success(let found): token = found
        case .failure(let error): return error.response
        }
        switch segments.count {
        case 0: return authenticatedUser(token)
        case 1 where segments[0] == "installations": return userInstallations(token, query: query)
        case 3 where segments[0] == "installations" && segments[2] == "repositories":
            guard let installationID = Int64(segments[1]) else { return .notFound }
            return userInstallationRepositories(token, installationID: installationID, query: query)
        default: return .notFound
        }
    }

    /// The live user access token in `authorization`; 401 "Bad credentials" for an unknown, expired, rotated or
    /// revoked one, 403 "Resource not accessible by integration" for an installation token or an App JWT.
    func authenticateUser(_ authorization: String?) -> Result<SimulatedUserToken, SimResponseError> {
        guard let authorization else { return .failure(SimResponseError(response: .message(401, "Requires authentication"))) }
        guard let token = bearerToken(authorization) else { return .failure(SimResponseError(response: .message(401, "Bad credentials"))) }
        let now = configuration.clock()
        let (user, isInstallationToken) = store.withState { state in
            (state.userTokens.last { $0.accessToken == token }, state.tokens[token].map { !$0.revoked && $0.expiresAt > now } ?? false)
        }
        if let user {
            return user.isLive(at: now) ? .success(user) : .failure(SimResponseError(response: .message(401, "Bad credentials")))
        }
        if isInstallationToken { return .failure(SimResponseError(response: .message(403, "Resource not accessible by integration"))) }
        if case .success = verifyJWT("Bearer \(token)") {
            return .failure(SimResponseError(response: .message(403, "Resource not accessible by integration")))
        }
        return .failure(SimResponseError(response: .message(401, "Bad credentials")))
    }

    /// `GET /user`: the private profile of the token's user.
    func authenticatedUser(_ token: SimulatedUserToken) -> SimResponse {
        let (user, profile, owned) = store.withState { state in
            (state.knownUser(token.login) ?? KnownUser(login: token.login, id: SimulatorStore.State.stableUserID(token.login), isBot: false),
             state.userProfiles[token.login.lowercased()],
             state.repositories.values.filter { $0.owner.lowercased() == token.login.lowercased() })
        }
        var json = publicUserJSON(user)
        json["name"] = nullable(profile?.name)
        json["email"] = nullable(profile?.email)
        let privateCount = owned.filter(\.isPrivate).count
        json["public_repos"] = owned.count - privateCount
        json["total_private_repos"] = privateCount
        json["owned_private_repos"] = privateCount
        json["private_gists"] = 0
        json["disk_usage"] = 0
        json["collaborators"] = 0
        json["two_factor_authentication"] = true
        json["plan"] = ["name": "free", "space": 976_562_499, "collaborators": 0, "private_repos": 10_000] as [String: Any]
        return .json(200, json)
    }

    /// `GET /user/installations`: the App's installations on which the user can access a repository.
    func userInstallations(_ token: SimulatedUserToken, query: [String: String]) -> SimResponse {
        store.withState { state in
            let visible = state.installations.keys.sorted().filter { id in
                state.installations[id]?.appID == token.appID && state.userCanSee(installationID: id, login: token.login)
            }
            let page = Self.paginate(visible, query: query, url: "\(base)/user/installations")
            return .json(200, [
                "total_count": visible.count, "installations": page.items.compactMap { installationJSON($0, state: state) },
            ] as [String: Any], headers: page.link.map { [("Link", $0)] } ?? [])
        }
    }

    /// `GET /user/installations/{installation_id}/repositories`: the installation's repositories the user has
    /// explicit access to, each with the user's `permissions`; 404 for an installation the user cannot see.
    func userInstallationRepositories(_ token: SimulatedUserToken, installationID: Int64, query: [String: String]) -> SimResponse {
        store.withState { state in
            guard state.installations[installationID]?.appID == token.appID,
                  state.userCanSee(installationID: installationID, login: token.login) else { return .notFound }
            let visible = state.accessibleRepositories(installationID: installationID, login: token.login)
            let page = Self.paginate(visible, query: query, url: "\(base)/user/installations/\(installationID)/repositories")
            return .json(200, [
                "total_count": visible.count, "repository_selection": "all",
                "repositories": page.items.map { repo, role in
                    fullRepositoryJSON(repo, state: state, permissions: Self.repositoryPermissions(role: role))
                },
            ] as [String: Any], headers: page.link.map { [("Link", $0)] } ?? [])
        }
    }

    /// What GitHub's `permissions` object says for a role (`admin` is also the owner's).
    static func repositoryPermissions(role: String) -> [String: Bool] {
        let levels = ["read": 0, "triage": 1, "write": 2, "maintain": 3, "admin": 4]
        let level = levels[role] ?? 0
        return ["pull": true, "triage": level >= 1, "push": level >= 2, "maintain": level >= 3, "admin": level >= 4]
    }

    /// One page of `items` (`per_page` up to 100, default 30; `page` from 1) and GitHub's `Link` header for it
    /// (`prev`, `next`, `last`, `first`; none when everything fits on one page).
    static func paginate<Item>(_ items: [Item], query: [String: String], url: String) -> (items: ArraySlice<Item>, link: String?) {
        let perPage = min(Int(query["per_page"] ?? "").flatMap { $0 > 0 ? $0 : nil } ?? 30, 100)
        let page = max(Int(query["page"] ?? "") ?? 1, 1)
        let lastPage = max((items.count + perPage - 1) / perPage, 1)
        let slice = items.dropFirst(min((page - 1) * perPage, items.count)).prefix(perPage)
        func link(_ number: Int, _ relation: String) -> String { "<\(url)?per_page=\(perPage)&page=\(number)>; rel=\"\(relation)\"" }
        var links: [String] = []
        if page > 1 { links.append(link(min(page - 1, lastPage), "prev")) }
        if page < lastPage { links += [link(page + 1, "next"), link(lastPage, "last")] }
        if page > 1 { links.append(link(1, "first")) }
        return (slice, links.isEmpty ? nil : links.joined(separator: ", "))
    }

    /// An installation as `GET /user/installations` lists it.
    func installationJSON(_ id: Int64, state: SimulatorStore.State) -> [String: Any]? {
        guard let installation = state.installations[id], let app = state.apps[installation.appID] else { return nil }
        let account = simpleUserJSON(installation.account, state: state)
        let created = "2024-01-01T00:00:00Z"
        return [
            "id": id, "account": account, "repository_selection": "all",
            "access_tokens_url": "\(base)/app/installations/\(id)/access_tokens", "repositories_url": "\(base)/installation/repositories",
            "html_url": "\(base)/settings/installations/\(id)", "app_id": app.id, "app_slug": app.slug,
            "target_id": account["id"] ?? 0, "target_type": "User",
            "permissions": state.installationPermissions[id] ?? Self.defaultPermissions, "events": Self.appEvents,
            "created_at": created, "updated_at": created, "single_file_name": NSNull(), "has_multiple_single_files": false,
            "single_file_paths": [] as [String], "suspended_by": NSNull(), "suspended_at": NSNull(),
        ]
    }

    /// An account as GitHub's `simple-user` (the `sender` of webhooks, the `owner` of repositories).
    func simpleUserJSON(_ login: String, state: SimulatorStore.State) -> [String: Any] {
        let user = state.knownUser(login) ?? KnownUser(login: login, id: SimulatorStore.State.stableUserID(login), isBot: login.hasSuffix("[bot]"))
        let keys: Set<String> = [
            "login", "id", "node_id", "avatar_url", "gravatar_id", "url", "html_url", "followers_url", "following_url", "gists_url",
            "starred_url", "subscriptions_url", "organizations_url", "repos_url", "events_url", "received_events_url", "type", "site_admin",
        ]
        return publicUserJSON(user).filter { keys.contains($0.key) }
    }

    /// A repository with every field GitHub's full `repository` schema requires, and `permissions` when given.
    func fullRepositoryJSON(_ repo: SimulatedRepository, state: SimulatorStore.State, permissions: [String: Bool]?) -> [String: Any] {
        let api = "\(base)/repos/\(repo.fullName)"
        let host = URL(string: base).map { "\($0.host ?? "127.0.0.1")\($0.port.map { ":\($0)" } ?? "")" } ?? "127.0.0.1"
        let openIssues = (state.issues[repo.id] ?? [:]).values.filter { $0.state == "open" }.count
        let created = "2024-01-01T00:00:00Z"
        var json: [String: Any] = [
            "id": repo.id, "node_id": "R_\(repo.id)", "name": repo.name, "full_name": repo.fullName,
            "owner": simpleUserJSON(repo.owner, state: state), "private": repo.isPrivate, "visibility": repo.isPrivate ? "private" : "public",
            "html_url": "\(base)/\(repo.fullName)", "description": NSNull(), "fork": false, "url": api,
            "clone_url": repo.cloneURL, "git_url": "git://\(host)/\(repo.fullName).git", "ssh_url": "git@\(host):\(repo.fullName).git",
            "svn_url": "\(base)/\(repo.fullName)", "mirror_url": NSNull(), "homepage": NSNull(), "language": NSNull(), "license": NSNull(),
            "forks": 0, "forks_count": 0, "stargazers_count": 0, "watchers": 0, "watchers_count": 0, "size": 0,
            "default_branch": repo.defaultBranch, "open_issues": openIssues, "open_issues_count": openIssues,
            "is_template": false, "topics": [] as [String], "has_issues": true, "has_projects": true, "has_wiki": true,
            "has_pages": false, "has_downloads": true, "archived": false, "disabled": false,
            "pushed_at": created, "created_at": created, "updated_at": created,
        ]
        let templates = [
            "archive_url": "/{archive_format}{/ref}", "assignees_url": "/assignees{/user}", "blobs_url": "/git/blobs{/sha}",
            "branches_url": "/branches{/branch}", "collaborators_url": "/collaborators{/collaborator}", "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}", "compare_url": "/compare/{base}...{head}", "contents_url": "/contents/{+path}",
            "contributors_url": "/contributors", "deployments_url": "/deployments", "downloads_url": "/downloads", "events_url": "/events",
            "forks_url": "/forks", "git_commits_url": "/git/commits{/sha}", "git_refs_url": "/git/refs{/sha}", "git_tags_url": "/git/tags{/sha}",
            "hooks_url": "/hooks", "issue_comment_url": "/issues/comments{/number}", "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}", "keys_url": "/keys{/key_id}", "labels_url": "/labels{/name}", "languages_url": "/languages",
            "merges_url": "/merges", "milestones_url": "/milestones{/number}", "notifications_url": "/notifications{?since,all,participating}",
            "pulls_url": "/pulls{/number}", "releases_url": "/releases{/id}", "stargazers_url": "/stargazers", "statuses_url": "/statuses/{sha}",
            "subscribers_url": "/subscribers", "subscription_url": "/subscription", "tags_url": "/tags", "teams_url": "/teams",
            "trees_url": "/git/trees{/sha}",
        ]
        for (key, suffix) in templates { json[key] = api + suffix }
        if let permissions { json["permissions"] = permissions }
        return json
    }
}

extension SimulatorStore.State {
    /// The role `login` has on `repo`: `admin` for its owner, else the collaborator role, else nil (no explicit access).
    func role(of login: String, on repo: SimulatedRepository) -> String? {
        let wanted = login.lowercased()
        if repo.owner.lowercased() == wanted { return "admin" }
        return repo.collaborators.first { $0.key.lowercased() == wanted }?.value
    }

    /// The installation's repositories `login` has explicit access to, with the role, oldest first.
    func accessibleRepositories(installationID: Int64, login: String) -> [(SimulatedRepository, String)] {
        repositories.values.filter { $0.installationID == installationID }.sorted { $0.id < $1.id }
            .compactMap { repo in role(of: login, on: repo).map { (repo, $0) } }
    }

    /// Whether a user token of `login` sees the installation: it is on the user's account, or the user can access
    /// one of its repositories.
    func userCanSee(installationID: Int64, login: String) -> Bool {
        guard let installation = installations[installationID] else { return false }
        return installation.account.lowercased() == login.lowercased()
            || !accessibleRepositories(installationID: installationID, login: login).isEmpty
    }
}
