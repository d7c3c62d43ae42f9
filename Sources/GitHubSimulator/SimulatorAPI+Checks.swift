import Foundation

/// A check run on a simulated repository: made by an App through the API, or seeded by a test as another
/// App's (GitHub Actions') result.
public struct SimulatedCheckRun: Sendable {
    public var id: Int64
    public var name: String
    public var headSHA: String
    public var status: String
    public var conclusion: String?
    public var appID: Int64
    public var appSlug: String
    public var title: String?
    public var summary: String?
    public var text: String?
    public var detailsURL: String?
    public var externalID: String?
    public var startedAt: Date
    public var completedAt: Date?
}

/// The Checks API and the GitHub Actions job logs, as GitHub answers them.
extension SimulatorAPI {
    /// What an installation is granted unless a test says otherwise.
    static let defaultPermissions: [String: String] = [
        "contents": "write", "issues": "write", "pull_requests": "write", "metadata": "read", "checks": "write", "actions": "read",
    ]
    /// The GitHub Actions App, whose check runs are workflow jobs (a job's id is its check run's id).
    static let actionsApp = (id: Int64(15368), slug: "github-actions")

    func createCheckRun(repo: SimulatedRepository, fields: [String: Any]) async -> SimResponse {
        guard let name = fields["name"] as? String, !name.isEmpty else { return .validationFailed("name is required", field: "name") }
        guard let headSHA = fields["head_sha"] as? String, headSHA.count == 40, headSHA.allSatisfy(\.isHexDigit) else {
            return .validationFailed("head_sha must be a 40-character commit SHA", field: "head_sha")
        }
        let conclusions: Set<String> = ["action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out"]
        var status = fields["status"] as? String ?? "queued"
        guard ["queued", "in_progress", "completed"].contains(status) else { return .validationFailed("status is invalid", field: "status") }
        let conclusion = fields["conclusion"] as? String
        if let conclusion {
            guard conclusions.contains(conclusion) else { return .validationFailed("conclusion is invalid", field: "conclusion") }
            status = "completed"
        } else if status == "completed" || fields["completed_at"] != nil {
            return .validationFailed("conclusion is required when status is completed", field: "conclusion")
        }
        var title: String?, summary: String?, text: String?
        if let output = fields["output"] {
            guard let output = output as? [String: Any], let outputTitle = output["title"] as? String,
                  let outputSummary = output["summary"] as? String else {
                return .validationFailed("output needs a title and a summary", field: "output")
            }
            title = outputTitle
            summary = outputSummary
            text = output["text"] as? String
            for (field, value) in [("summary", summary), ("text", text)] where (value?.count ?? 0) > 65_535 {
                return .validationFailed("output.\(field) is too long (maximum is 65535 characters)", field: "output.\(field)")
            }
        }
        // GitHub refuses a check run on a commit the repository does not have.
        let found = try? await git(["--git-dir", repo.gitDirectory, "cat-file", "-e", "\(headSHA)^{commit}"])
        guard found != nil else { return .validationFailed("No commit found for SHA: \(headSHA)", field: "head_sha") }
        return store.withState { state in
            guard let appID = state.installations[repo.installationID]?.appID, let app = state.apps[appID] else { return .notFound }
            let now = configuration.clock()
            let run = SimulatedCheckRun(
                id: state.makeID(), name: name, headSHA: headSHA, status: status, conclusion: conclusion, appID: app.id, appSlug: app.slug,
                title: title, summary: summary, text: text, detailsURL: fields["details_url"] as? String,
                externalID: fields["external_id"] as? String, startedAt: now, completedAt: status == "completed" ? now : nil)
            state.checkRuns[repo.id, default: []].append(run)
            return .json(201, checkRunJSON(run, repo: repo))
        }
    }

    func listCheckRuns(repo: SimulatedRepository, ref: String, query: [String: String]) -> SimResponse {
        let perPage = min(max(Int(query["per_page"] ?? "") ?? 30, 1), 100)
        let page = max(Int(query["page"] ?? "") ?? 1, 1)
        if let filter = query["filter"], !["latest", "all"].contains(filter) { return .validationFailed("filter is invalid", field: "filter") }
        return store.withState { state in
            var runs = (state.checkRuns[repo.id] ?? []).filter { $0.headSHA == ref }.reversed().map { $0 }
            if query["filter"] ?? "latest" == "latest" {
                var seen: Set<String> = []
                runs = runs.filter { seen.insert("\($0.appID)/\($0.name)").inserted }
            }
            let slice = runs.dropFirst((page - 1) * perPage).prefix(perPage)
            return .json(200, ["total_count": runs.count, "check_runs": slice.map { checkRunJSON($0, repo: repo) }] as [String: Any])
        }
    }

    /// GitHub answers a job's log with a redirect to short-lived storage on another host; the simulator
    /// redirects to itself under another name (`localhost` for `127.0.0.1`), so clients drop `Authorization`.
    func jobLogRedirect(repo: SimulatedRepository, jobID: String) -> SimResponse {
        guard let id = Int64(jobID) else { return .notFound }
        return store.withState { state in
            guard state.jobLogs[id] != nil,
                  (state.checkRuns[repo.id] ?? []).contains(where: { $0.id == id && $0.appID == Self.actionsApp.id }) else { return .notFound }
            let key = randomAlphanumeric(32)
            state.logDownloads[key] = id
            let storage = base.replacingOccurrences(of: "://127.0.0.1:", with: "://localhost:")
            return SimResponse(status: 302, headers: [("Location", "\(storage)/_simulator/job-logs/\(key)")])
        }
    }

    /// The log storage: a one-time key, and no `Authorization` header (as GitHub's storage, which refuses one).
    func downloadJobLog(key: String, headers: [String: String]) -> SimResponse {
        store.withState { state in
            if headers["authorization"] != nil {
                state.logDownloadsWithAuthorization += 1
                return SimResponse(status: 400, body: Array("Authorization is not accepted here\n".utf8))
            }
            guard let id = state.logDownloads.removeValue(forKey: key), let log = state.jobLogs[id] else { return .notFound }
            return SimResponse(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array(log.utf8))
        }
    }

    /// After a push: the pull requests from the repository's branches point at their branches' new heads.
    func refreshPullRequestHeads(_ repo: SimulatedRepository) async {
        let heads = store.withState { state in
            (state.pullRequests[repo.id] ?? [:]).values.map { ($0.number, $0.head) }
        }
        for (number, branch) in heads {
            guard let sha = try? await git(["--git-dir", repo.gitDirectory, "rev-parse", "--verify", "--quiet", "refs/heads/\(branch)^{commit}"]),
                  !sha.isEmpty else { continue }
            store.withState { $0.pullRequests[repo.id]?[number]?.headSHA = sha }
        }
    }

    func checkRunJSON(_ run: SimulatedCheckRun, repo: SimulatedRepository) -> [String: Any] {
        let url = "\(base)/repos/\(repo.fullName)/check-runs/\(run.id)"
        return [
            "id": run.id, "node_id": "CR_\(run.id)", "head_sha": run.headSHA, "name": run.name, "url": url,
            "html_url": "\(base)/\(repo.fullName)/runs/\(run.id)", "details_url": nullable(run.detailsURL),
            "external_id": nullable(run.externalID), "status": run.status, "conclusion": nullable(run.conclusion),
            "started_at": iso8601.string(from: run.startedAt), "completed_at": nullable(run.completedAt.map { iso8601.string(from: $0) }),
            "output": [
                "title": nullable(run.title), "summary": nullable(run.summary), "text": nullable(run.text), "annotations_count": 0,
                "annotations_url": url + "/annotations",
            ] as [String: Any],
            "check_suite": ["id": run.id + 1_000_000],
            "app": [
                "id": run.appID, "slug": run.appSlug, "node_id": "A_\(run.appID)", "name": run.appSlug, "owner": userJSON("simulator-org"),
                "description": "", "external_url": base, "html_url": "\(base)/apps/\(run.appSlug)",
                "created_at": iso8601.string(from: run.startedAt), "updated_at": iso8601.string(from: run.startedAt),
                "permissions": [:] as [String: String], "events": [] as [String],
            ] as [String: Any],
            "pull_requests": [] as [Any],
        ]
    }
}

// MARK: Setting up and reading check runs

extension GitHubSimulator {
    /// Sets what an installation was granted (tokens asking for more are refused with 422, as on GitHub).
    public func setInstallationPermissions(_ permissions: [String: String], installationID: Int64) {
        store.withState { $0.installationPermissions[installationID] = permissions }
    }

    /// Records a completed GitHub Actions job on `headSHA` (a check run of the `github-actions` App) with its
    /// log; returns its id, which is also the job's id.
    @discardableResult
    public func addActionsJob(repositoryID: Int64, headSHA: String, name: String, conclusion: String, log: String) -> Int64 {
        store.withState { state in
            let now = configuration.clock()
            let run = SimulatedCheckRun(
                id: state.makeID(), name: name, headSHA: headSHA, status: "completed", conclusion: conclusion,
                appID: SimulatorAPI.actionsApp.id, appSlug: SimulatorAPI.actionsApp.slug, title: nil, summary: nil, text: nil,
                detailsURL: nil, externalID: nil, startedAt: now, completedAt: now)
            state.checkRuns[repositoryID, default: []].append(run)
            state.jobLogs[run.id] = log
            return run.id
        }
    }

    /// Returns the repository's check runs, oldest first.
    public func checkRuns(repositoryID: Int64) -> [SimulatedCheckRun] {
        store.withState { $0.checkRuns[repositoryID] ?? [] }
    }

    /// How many log downloads arrived carrying an `Authorization` header (a token sent to the wrong host).
    public var logDownloadsWithAuthorization: Int {
        store.withState { $0.logDownloadsWithAuthorization }
    }
}

extension GitHubSimulator {
    /// Returns the repository as webhook payloads carry it.
    public func repositoryPayload(repositoryID: Int64) -> [String: Any]? {
        let api = SimulatorAPI(store: store, configuration: configuration, webhooks: webhooks)
        return store.withState { $0.repositories[repositoryID] }.map { api.repositoryJSON($0) }
    }

    /// Adds a commit changing `files` on top of `branch`, as someone pushing to it would; returns its SHA.
    /// `verified`: the commit counts as signed with a key GitHub knows (it may then go onto a branch that
    /// requires signed commits, see ``requireSignedCommits(repositoryID:branches:)``).
    @discardableResult
    public func addCommit(repositoryID: Int64, branch: String, files: [String: String], message: String = "Change",
                          verified: Bool = false) async throws -> String {
        guard let repo = store.withState({ $0.repositories[repositoryID] }) else { throw SimulatorError("no repository \(repositoryID)") }
        let fileManager = FileManager.default
        let work = fileManager.temporaryDirectory.appendingPathComponent("ghsim-commit-\(UUID().uuidString)").path
        defer { try? fileManager.removeItem(atPath: work) }
        try await git(["clone", "--quiet", "--branch", branch, repo.gitDirectory, work])
        for (path, text) in files {
            let url = URL(fileURLWithPath: work).appendingPathComponent(path)
            try fileManager.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        try await git(["add", "-A"], currentDirectory: work)
        try await git(["commit", "--quiet", "--allow-empty", "-m", message], currentDirectory: work)
        let sha = try await git(["rev-parse", "HEAD"], currentDirectory: work)
        if verified { markVerified(repositoryID: repositoryID, sha: sha) }
        try await git(["push", "--quiet", "origin", "HEAD:refs/heads/\(branch)"], currentDirectory: work)
        let api = SimulatorAPI(store: store, configuration: configuration, webhooks: webhooks)
        await api.refreshPullRequestHeads(repo)
        return sha
    }
}
