import GitHub

/// What the executor asks of GitHub: a handful of calls, so tests and other clients can stand in.
public protocol GitHubAPI: Sendable {
    /// Returns a live installation token narrowed to the repository (for git over HTTPS).
    func installationToken(for repo: RepositoryRef) async throws -> String
    /// Revokes the repository's installation token.
    func revokeInstallationToken(for repo: RepositoryRef) async throws
    /// Returns `username`'s access to the repository: admin, maintain, write, triage, read or none.
    func accessLevel(of username: String, in repo: RepositoryRef) async throws -> String
    func repository(_ repo: RepositoryRef) async throws -> Repository
    func issue(number: Int, in repo: RepositoryRef) async throws -> Issue
    func pullRequest(number: Int, in repo: RepositoryRef) async throws -> PullRequest
    /// Returns the open pull requests whose head is `owner:branch`.
    func openPullRequests(in repo: RepositoryRef, head: String) async throws -> [PullRequest]
    /// Opens a pull request (a draft when `draft`).
    func openPullRequest(in repo: RepositoryRef, title: String, head: String, base: String, body: String, draft: Bool) async throws -> PullRequest
    func requestReview(in repo: RepositoryRef, pullNumber: Int, from reviewer: String) async throws
    func createReview(in repo: RepositoryRef, pullNumber: Int, body: String) async throws
    /// Creates a comment on an issue or pull request; returns its id.
    func createComment(in repo: RepositoryRef, issueNumber: Int, body: String) async throws -> Int64
    func updateComment(in repo: RepositoryRef, commentID: Int64, body: String) async throws
    /// Adds a reaction to an issue comment, or to the issue or pull request itself when `commentID` is `nil`.
    func react(_ content: ReactionContent, toCommentID commentID: Int64?, issueNumber: Int, in repo: RepositoryRef) async throws
    /// Returns the commit at the head of `branch`.
    func branchHead(_ branch: String, in repo: RepositoryRef) async throws -> String
    /// Returns the file at `path` as of `ref`, or `nil` when there is none.
    func fileContents(at path: String, ref: String, in repo: RepositoryRef) async throws -> FileContents?
    /// Creates a completed check run (needs `checks: write`, which an installation may not have granted).
    func createCheckRun(in repo: RepositoryRef, _ run: NewCheckRun) async throws
    /// Returns the latest check runs of a commit (needs `checks: read`).
    func checkRuns(for sha: String, in repo: RepositoryRef) async throws -> [CheckRun]
    /// Returns the end of a GitHub Actions job's log (needs `actions: read`).
    func jobLogTail(jobID: Int64, in repo: RepositoryRef) async throws -> String
    /// Returns the App's bot account, `<slug>[bot]`, with its user id.
    func botAccount(in repo: RepositoryRef) async throws -> GitHubUser
    /// Stores a blob; returns its SHA.
    func createBlob(in repo: RepositoryRef, bytes: [UInt8]) async throws -> String
    /// Creates a tree on top of `baseTree`; returns its SHA.
    func createTree(in repo: RepositoryRef, baseTree: String, entries: [TreeEntry]) async throws -> String
    /// Creates a commit GitHub signs as the App.
    func createCommit(in repo: RepositoryRef, message: String, tree: String, parents: [String], author: CommitIdentity) async throws -> GitCommitObject
    /// Creates a branch at `sha`.
    func createBranchRef(in repo: RepositoryRef, branch: String, sha: String) async throws
    /// Moves a branch to `sha` (only forward without `force`).
    func updateBranchRef(in repo: RepositoryRef, branch: String, sha: String, force: Bool) async throws
}

extension GitHubClient: GitHubAPI {
    public func installationToken(for repo: RepositoryRef) async throws -> String {
        try await tokens.token(installationID: repo.installationID, repositoryID: repo.id).token
    }

    public func revokeInstallationToken(for repo: RepositoryRef) async throws {
        try await revokeInstallationToken(installationID: repo.installationID, repositoryID: repo.id)
    }

    public func accessLevel(of username: String, in repo: RepositoryRef) async throws -> String {
        do {
            let answer = try await getCollaboratorPermission(in: repo, username: username)
            let levels: Set<String> = ["admin", "maintain", "write", "triage", "read", "none"]
            if let role = answer.roleName?.lowercased(), levels.contains(role) { return role }
            return levels.contains(answer.permission.lowercased()) ? answer.permission.lowercased() : "none"
        } catch let error as GitHubError where error.status == 404 {
            return "none"
        }
    }

    public func repository(_ repo: RepositoryRef) async throws -> Repository {
        try await getRepository(repo)
    }

    public func issue(number: Int, in repo: RepositoryRef) async throws -> Issue {
        try await getIssue(in: repo, number: number)
    }

    public func pullRequest(number: Int, in repo: RepositoryRef) async throws -> PullRequest {
        try await getPullRequest(in: repo, number: number)
    }

    public func openPullRequests(in repo: RepositoryRef, head: String) async throws -> [PullRequest] {
        try await listPullRequests(in: repo, head: head, state: .open)
    }

    public func openPullRequest(in repo: RepositoryRef, title: String, head: String, base: String, body: String, draft: Bool) async throws -> PullRequest {
        try await createPullRequest(in: repo, title: title, head: head, base: base, body: Optional(body), draft: draft)
    }

    public func branchHead(_ branch: String, in repo: RepositoryRef) async throws -> String {
        try await getBranch(in: repo, name: branch).commit.sha
    }

    public func fileContents(at path: String, ref: String, in repo: RepositoryRef) async throws -> FileContents? {
        try await getFileContents(in: repo, path: path, ref: ref)
    }

    public func createCheckRun(in repo: RepositoryRef, _ run: NewCheckRun) async throws {
        _ = try await createCheckRun(in: repo, run) as CheckRun
    }

    public func checkRuns(for sha: String, in repo: RepositoryRef) async throws -> [CheckRun] {
        try await listCheckRuns(in: repo, ref: sha)
    }

    public func jobLogTail(jobID: Int64, in repo: RepositoryRef) async throws -> String {
        try await jobLogTail(in: repo, jobID: jobID)
    }

    public func botAccount(in repo: RepositoryRef) async throws -> GitHubUser {
        guard let slug = try await getApp().slug, !slug.isEmpty else {
            throw GitHubError(.decoding, route: "GET /app", message: "GitHub gave no slug for the App")
        }
        return try await getUser(slug + "[bot]", in: repo)
    }

    public func requestReview(in repo: RepositoryRef, pullNumber: Int, from reviewer: String) async throws {
        _ = try await requestReviewers(in: repo, pullNumber: pullNumber, reviewers: [reviewer])
    }

    public func createReview(in repo: RepositoryRef, pullNumber: Int, body: String) async throws {
        _ = try await createReview(in: repo, pullNumber: pullNumber, event: .comment, body: body, commitID: nil)
    }

    public func createComment(in repo: RepositoryRef, issueNumber: Int, body: String) async throws -> Int64 {
        try await createIssueComment(in: repo, issueNumber: issueNumber, body: body).id
    }

    public func updateComment(in repo: RepositoryRef, commentID: Int64, body: String) async throws {
        _ = try await updateIssueComment(in: repo, commentID: commentID, body: body)
    }

    public func react(_ content: ReactionContent, toCommentID commentID: Int64?, issueNumber: Int, in repo: RepositoryRef) async throws {
        if let commentID {
            _ = try await addReaction(content, toCommentID: commentID, in: repo)
        } else {
            _ = try await addReaction(content, toIssue: issueNumber, in: repo)
        }
    }
}

/// Returns whether a failure is worth another try later (GitHub 5xx, rate limits, the network).
func isTransient(_ error: any Error) -> Bool {
    if let error = error as? GitHubError {
        if error.code == .rateLimited || error.code == .transport { return true }
        if let status = error.status { return status >= 500 || status == 429 }
        return false
    }
    if error is GitError { return true }
    return false
}
