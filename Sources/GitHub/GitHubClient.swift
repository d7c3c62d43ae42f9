import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOSSL

/// A GitHub REST client acting as a GitHub App: App-JWT calls, and repository calls with
/// installation tokens narrowed to that repository.
///
/// Retries 5xx and connection errors with backoff (for requests where a retry cannot create a
/// duplicate), waits out rate limits as the headers say, and sends mutating calls to one
/// installation one at a time.
public final class GitHubClient: Sendable {
    /// Where GitHub is and how to talk to it.
    public struct Configuration: Sendable {
        /// The REST base URL, e.g. `https://api.github.com` or `https://ghe.example/api/v3`.
        public var apiURL: String
        /// The version in `User-Agent: asynccode/<version>`.
        public var version: String
        /// A PEM CA bundle to trust instead of the system roots (GitHub Enterprise Server).
        public var caBundlePath: String?
        /// Retry and rate-limit behaviour.
        public var retryPolicy: RetryPolicy
        /// The timeout of one HTTP exchange.
        public var requestTimeout: Duration
        /// How long AsyncHTTPClient keeps trying to connect before a request fails.
        public var connectTimeout: Duration = .seconds(10)
        /// The permissions requested for task tokens.
        public var tokenPermissions: [String: String]

        /// Creates a configuration.
        public init(
            apiURL: String = "https://api.github.com",
            version: String = "0.1.0",
            caBundlePath: String? = nil,
            retryPolicy: RetryPolicy = RetryPolicy(),
            requestTimeout: Duration = .seconds(30),
            tokenPermissions: [String: String] = InstallationTokenProvider.taskPermissions
        ) {
            self.apiURL = apiURL
            self.version = version
            self.caBundlePath = caBundlePath
            self.retryPolicy = retryPolicy
            self.requestTimeout = requestTimeout
            self.tokenPermissions = tokenPermissions
        }

        /// Returns a configuration whose `apiURL` comes from `GITHUB_API_URL` (default
        /// `https://api.github.com`) and `caBundlePath` from `GITHUB_CA_BUNDLE`.
        public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Configuration {
            Configuration(
                apiURL: environment["GITHUB_API_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://api.github.com",
                caBundlePath: environment["GITHUB_CA_BUNDLE"].flatMap { $0.isEmpty ? nil : $0 }
            )
        }
    }

    /// The configuration in use.
    public let configuration: Configuration
    /// The installation token cache.
    public let tokens: InstallationTokenProvider
    let transport: Transport

    /// Creates a client signing App JWTs with `signer`. Call ``shutdown()`` when done.
    ///
    /// - Parameters:
    ///   - httpClient: an AsyncHTTPClient to use (the caller shuts it down); by default the
    ///     client makes and owns one, trusting `caBundlePath` if set.
    public init(
        configuration: Configuration,
        signer: AppJWTSigner,
        clock: any GitHubClock = SystemGitHubClock(),
        logger: Logger = Logger(label: "asynccode.github"),
        httpClient: HTTPClient? = nil,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) throws(GitHubError) {
        var apiURL = configuration.apiURL
        while apiURL.hasSuffix("/") { apiURL.removeLast() }
        guard let url = URL(string: apiURL), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw GitHubError(.invalidConfiguration, message: "GITHUB_API_URL is not an http(s) URL: \(configuration.apiURL)")
        }
        let http: HTTPClient
        if let httpClient { http = httpClient } else { http = try Self.makeHTTPClient(configuration) }
        let ownsHTTPClient = httpClient == nil
        self.configuration = configuration
        let transport = Transport(
            apiURL: apiURL,
            userAgent: "asynccode/\(configuration.version)",
            policy: configuration.retryPolicy,
            timeout: configuration.requestTimeout,
            http: http,
            ownsHTTPClient: ownsHTTPClient,
            signer: signer,
            clock: clock,
            logger: logger,
            metrics: metrics
        )
        self.transport = transport
        self.tokens = InstallationTokenProvider(permissions: configuration.tokenPermissions, clock: clock) { installationID, repositoryIDs, permissions in
            try await transport.createInstallationToken(installationID: installationID, repositoryIDs: repositoryIDs, permissions: permissions)
        }
        transport.tokens.set(tokens)
    }

    /// Returns an HTTP client with the configuration's timeouts, trusting its CA bundle if one is set.
    /// The caller shuts it down.
    public static func makeHTTPClient(_ configuration: Configuration) throws(GitHubError) -> HTTPClient {
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = .init(connect: .milliseconds(Int64(configuration.connectTimeout.seconds * 1000)), read: .seconds(60))
        if let path = configuration.caBundlePath {
            do {
                _ = try NIOSSLCertificate.fromPEMFile(path)
            } catch {
                throw GitHubError(.invalidConfiguration, message: "CA bundle \(path) is not a readable PEM certificate file")
            }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(path)
            httpConfiguration.tlsConfiguration = tls
        }
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
    }

    /// Shuts down the HTTP client if this client created it.
    public func shutdown() async throws {
        if transport.ownsHTTPClient { try await transport.http.shutdown() }
    }

    // MARK: App endpoints (App JWT)

    /// Returns the authenticated App (`GET /app`).
    public func getApp() async throws -> GitHubApp {
        try await transport.json(.GET, "/app", route: "GET /app", auth: .app)
    }

    /// Mints an installation token narrowed to `repositoryIDs` and `permissions`
    /// (`POST /app/installations/{installation_id}/access_tokens`). Uncached: most callers want
    /// ``InstallationTokenProvider/token(installationID:repositoryID:)`` through ``tokens``.
    public func createInstallationToken(installationID: Int64, repositoryIDs: [Int64], permissions: [String: String]) async throws -> InstallationToken {
        try await transport.createInstallationToken(installationID: installationID, repositoryIDs: repositoryIDs, permissions: permissions)
    }

    /// Returns one page of the App's webhook deliveries, newest first, and the cursor of the next
    /// (older) page from the `Link` header (`GET /app/hook/deliveries`).
    public func listWebhookDeliveries(perPage: Int = 50, cursor: String? = nil) async throws -> (deliveries: [WebhookDelivery], nextCursor: String?) {
        var query = [("per_page", String(perPage))]
        if let cursor { query.append(("cursor", cursor)) }
        let response = try await transport.send(.GET, "/app/hook/deliveries", query: query, route: "GET /app/hook/deliveries", auth: .app)
        let deliveries: [WebhookDelivery] = try transport.decode(response, route: "GET /app/hook/deliveries")
        let nextCursor = response.headers.first(name: "link").flatMap { Self.nextCursor(fromLinkHeader: $0) }
        return (deliveries, nextCursor)
    }

    /// Returns the `cursor` query value of the `rel="next"` link, if any.
    static func nextCursor(fromLinkHeader header: String) -> String? {
        for link in header.split(separator: ",") where link.contains("rel=\"next\"") {
            guard let open = link.firstIndex(of: "<"), let close = link.firstIndex(of: ">"), open < close else { continue }
            let url = link[link.index(after: open)..<close]
            guard let components = URLComponents(string: String(url)) else { continue }
            return components.queryItems?.first { $0.name == "cursor" }?.value
        }
        return nil
    }

    /// Asks GitHub to redeliver a webhook delivery (`POST /app/hook/deliveries/{delivery_id}/attempts`).
    /// Not retried on 5xx: a retry could deliver twice.
    public func redeliverWebhookDelivery(id: Int64) async throws {
        _ = try await transport.send(.POST, "/app/hook/deliveries/\(id)/attempts", route: "POST /app/hook/deliveries/{delivery_id}/attempts", auth: .app, retryable: false)
    }

    // MARK: Token lifetime

    /// Revokes the cached tokens of (installation, repository), if any (`DELETE /installation/token`).
    /// Call when a task ends.
    public func revokeInstallationToken(installationID: Int64, repositoryID: Int64) async throws {
        var failure: (any Error)?
        for token in await tokens.removeTokens(installationID: installationID, repositoryID: repositoryID) {
            do {
                try await revokeInstallationToken(token)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// Revokes `token` (`DELETE /installation/token`).
    public func revokeInstallationToken(_ token: InstallationToken) async throws {
        _ = try await transport.send(.DELETE, "/installation/token", route: "DELETE /installation/token", auth: .token(token.token, installationID: nil))
    }

    // MARK: Repository endpoints (installation token)

    /// Returns a repository (`GET /repos/{owner}/{repo}`).
    public func getRepository(_ repo: RepositoryRef) async throws -> Repository {
        try await transport.json(.GET, repoPath(repo), route: "GET /repos/{owner}/{repo}", auth: .installation(repo))
    }

    /// Returns `username`'s permission on the repository
    /// (`GET /repos/{owner}/{repo}/collaborators/{username}/permission`).
    public func getCollaboratorPermission(in repo: RepositoryRef, username: String) async throws -> CollaboratorPermission {
        try await transport.json(.GET, repoPath(repo, "collaborators", username, "permission"),
                                 route: "GET /repos/{owner}/{repo}/collaborators/{username}/permission", auth: .installation(repo))
    }

    /// Returns an issue or pull request's issue (`GET /repos/{owner}/{repo}/issues/{issue_number}`).
    public func getIssue(in repo: RepositoryRef, number: Int) async throws -> Issue {
        try await transport.json(.GET, repoPath(repo, "issues", String(number)),
                                 route: "GET /repos/{owner}/{repo}/issues/{issue_number}", auth: .installation(repo))
    }

    /// Creates a comment on an issue or pull request (`POST …/issues/{issue_number}/comments`).
    /// Not retried on 5xx (a retry could post twice); the caller checks before posting again.
    public func createIssueComment(in repo: RepositoryRef, issueNumber: Int, body: String) async throws -> IssueComment {
        try await transport.json(.POST, repoPath(repo, "issues", String(issueNumber), "comments"), body: ["body": body],
                                 route: "POST /repos/{owner}/{repo}/issues/{issue_number}/comments", auth: .installation(repo), retryable: false)
    }

    /// Replaces a comment's body (`PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}`).
    public func updateIssueComment(in repo: RepositoryRef, commentID: Int64, body: String) async throws -> IssueComment {
        try await transport.json(.PATCH, repoPath(repo, "issues", "comments", String(commentID)), body: ["body": body],
                                 route: "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}", auth: .installation(repo))
    }

    /// Returns a comment (`GET /repos/{owner}/{repo}/issues/comments/{comment_id}`).
    public func getIssueComment(in repo: RepositoryRef, commentID: Int64) async throws -> IssueComment {
        try await transport.json(.GET, repoPath(repo, "issues", "comments", String(commentID)),
                                 route: "GET /repos/{owner}/{repo}/issues/comments/{comment_id}", auth: .installation(repo))
    }

    /// Returns one page of an issue's comments, oldest first (`GET …/issues/{issue_number}/comments`).
    public func listIssueComments(in repo: RepositoryRef, issueNumber: Int, since: Date? = nil, perPage: Int = 100, page: Int = 1) async throws -> [IssueComment] {
        var query = [("per_page", String(perPage)), ("page", String(page))]
        if let since { query.append(("since", Self.iso8601(since))) }
        return try await transport.json(.GET, repoPath(repo, "issues", String(issueNumber), "comments"), query: query,
                                        route: "GET /repos/{owner}/{repo}/issues/{issue_number}/comments", auth: .installation(repo))
    }

    /// Returns all of an issue's comments, following pages until a short one (at most `maxPages`).
    public func listAllIssueComments(in repo: RepositoryRef, issueNumber: Int, since: Date? = nil, maxPages: Int = 20) async throws -> [IssueComment] {
        var all: [IssueComment] = []
        for page in 1...max(maxPages, 1) {
            let batch = try await listIssueComments(in: repo, issueNumber: issueNumber, since: since, perPage: 100, page: page)
            all += batch
            if batch.count < 100 { break }
        }
        return all
    }

    /// Adds a reaction to an issue comment (`POST …/issues/comments/{comment_id}/reactions`).
    /// GitHub answers 200 for a reaction that already exists, so retrying is safe.
    public func addReaction(_ content: ReactionContent, toCommentID commentID: Int64, in repo: RepositoryRef) async throws -> Reaction {
        try await transport.json(.POST, repoPath(repo, "issues", "comments", String(commentID), "reactions"), body: ["content": content.rawValue],
                                 route: "POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", auth: .installation(repo), retryable: true)
    }

    /// Adds a reaction to an issue or pull request (`POST …/issues/{issue_number}/reactions`).
    public func addReaction(_ content: ReactionContent, toIssue issueNumber: Int, in repo: RepositoryRef) async throws -> Reaction {
        try await transport.json(.POST, repoPath(repo, "issues", String(issueNumber), "reactions"), body: ["content": content.rawValue],
                                 route: "POST /repos/{owner}/{repo}/issues/{issue_number}/reactions", auth: .installation(repo), retryable: true)
    }

    /// Adds labels to an issue and returns all its labels (`POST …/issues/{issue_number}/labels`).
    /// Adding a present label is a no-op on GitHub, so retrying is safe.
    public func addLabels(_ labels: [String], toIssue issueNumber: Int, in repo: RepositoryRef) async throws -> [Label] {
        try await transport.json(.POST, repoPath(repo, "issues", String(issueNumber), "labels"), body: ["labels": labels],
                                 route: "POST /repos/{owner}/{repo}/issues/{issue_number}/labels", auth: .installation(repo), retryable: true)
    }

    /// Removes a label from an issue (`DELETE …/issues/{issue_number}/labels/{name}`); a label that
    /// is not there is not an error.
    public func removeLabel(_ name: String, fromIssue issueNumber: Int, in repo: RepositoryRef) async throws {
        do {
            _ = try await transport.send(.DELETE, repoPath(repo, "issues", String(issueNumber), "labels", name),
                                         route: "DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels/{name}", auth: .installation(repo))
        } catch let error as GitHubError where error.status == 404 && error.message.lowercased().contains("label") {
            return
        }
    }

    /// Opens a pull request (`POST /repos/{owner}/{repo}/pulls`). Not retried on 5xx; GitHub
    /// answers 422 for a second open PR from the same head, so check with
    /// ``listPullRequests(in:head:state:)`` first.
    public func createPullRequest(in repo: RepositoryRef, title: String, head: String, base: String, body: String? = nil, draft: Bool = false) async throws -> PullRequest {
        var fields: [String: Any] = ["title": title, "head": head, "base": base, "draft": draft]
        if let body { fields["body"] = body }
        return try await transport.json(.POST, repoPath(repo, "pulls"), body: fields,
                                        route: "POST /repos/{owner}/{repo}/pulls", auth: .installation(repo), retryable: false)
    }

    /// Returns pull requests whose head is `head` (`owner:branch`) (`GET /repos/{owner}/{repo}/pulls`).
    public func listPullRequests(in repo: RepositoryRef, head: String, state: PullRequestStateFilter = .all) async throws -> [PullRequest] {
        try await transport.json(.GET, repoPath(repo, "pulls"), query: [("head", head), ("state", state.rawValue), ("per_page", "100")],
                                 route: "GET /repos/{owner}/{repo}/pulls", auth: .installation(repo))
    }

    /// Returns a pull request (`GET /repos/{owner}/{repo}/pulls/{pull_number}`).
    public func getPullRequest(in repo: RepositoryRef, number: Int) async throws -> PullRequest {
        try await transport.json(.GET, repoPath(repo, "pulls", String(number)),
                                 route: "GET /repos/{owner}/{repo}/pulls/{pull_number}", auth: .installation(repo))
    }

    /// Updates a pull request's title, body or state (`PATCH /repos/{owner}/{repo}/pulls/{pull_number}`).
    public func updatePullRequest(in repo: RepositoryRef, number: Int, title: String? = nil, body: String? = nil, state: String? = nil) async throws -> PullRequest {
        var fields: [String: Any] = [:]
        if let title { fields["title"] = title }
        if let body { fields["body"] = body }
        if let state { fields["state"] = state }
        return try await transport.json(.PATCH, repoPath(repo, "pulls", String(number)), body: fields,
                                        route: "PATCH /repos/{owner}/{repo}/pulls/{pull_number}", auth: .installation(repo))
    }

    /// Requests reviews from users and teams (`POST …/pulls/{pull_number}/requested_reviewers`).
    public func requestReviewers(in repo: RepositoryRef, pullNumber: Int, reviewers: [String], teamReviewers: [String] = []) async throws -> PullRequest {
        var fields: [String: Any] = ["reviewers": reviewers]
        if !teamReviewers.isEmpty { fields["team_reviewers"] = teamReviewers }
        return try await transport.json(.POST, repoPath(repo, "pulls", String(pullNumber), "requested_reviewers"), body: fields,
                                        route: "POST /repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers", auth: .installation(repo), retryable: true)
    }

    /// Creates a pull request review (`POST …/pulls/{pull_number}/reviews`). Not retried on 5xx.
    public func createReview(in repo: RepositoryRef, pullNumber: Int, event: ReviewEvent, body: String? = nil, commitID: String? = nil) async throws -> PullRequestReview {
        var fields: [String: Any] = ["event": event.rawValue]
        if let body { fields["body"] = body }
        if let commitID { fields["commit_id"] = commitID }
        return try await transport.json(.POST, repoPath(repo, "pulls", String(pullNumber), "reviews"), body: fields,
                                        route: "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews", auth: .installation(repo), retryable: false)
    }

    /// Returns a file's contents at `ref` (default branch if nil), or nil when there is no such
    /// file (`GET /repos/{owner}/{repo}/contents/{path}`).
    public func getFileContents(in repo: RepositoryRef, path: String, ref: String? = nil) async throws -> FileContents? {
        let segments = path.split(separator: "/").map(String.init)
        do {
            return try await transport.json(.GET, repoPath(repo, ["contents"] + segments), query: ref.map { [("ref", $0)] } ?? [],
                                            route: "GET /repos/{owner}/{repo}/contents/{path}", auth: .installation(repo))
        } catch let error as GitHubError where error.status == 404 {
            return nil
        }
    }

    /// Returns the repository's branches with their head commits (`GET /repos/{owner}/{repo}/branches`, pages of
    /// 100, at most `maxPages`).
    public func listBranches(in repo: RepositoryRef, maxPages: Int = 10) async throws -> [Branch] {
        var all: [Branch] = []
        for page in 1...max(maxPages, 1) {
            let batch: [Branch] = try await transport.json(.GET, repoPath(repo, "branches"), query: [("per_page", "100"), ("page", String(page))],
                                                           route: "GET /repos/{owner}/{repo}/branches", auth: .installation(repo))
            all += batch
            if batch.count < 100 { break }
        }
        return all
    }

    /// Returns a branch with its head commit (`GET /repos/{owner}/{repo}/branches/{branch}`).
    public func getBranch(in repo: RepositoryRef, name: String) async throws -> Branch {
        try await transport.json(.GET, repoPath(repo, "branches", name),
                                 route: "GET /repos/{owner}/{repo}/branches/{branch}", auth: .installation(repo))
    }

    // MARK: Helpers

    func repoPath(_ repo: RepositoryRef, _ segments: String...) -> String {
        repoPath(repo, segments)
    }

    func repoPath(_ repo: RepositoryRef, _ segments: [String]) -> String {
        (["repos", repo.owner, repo.name] + segments).map(Transport.escapeSegment).reduce("") { $0 + "/" + $1 }
    }

    static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}
