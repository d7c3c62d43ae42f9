import Foundation
import NIOCore

/// Check runs and GitHub Actions job logs: the calls that need `checks` and `actions`, which an installation
/// may not have granted. Each asks for a token with only the permission it needs, so a refusal (422 when the
/// token is minted, 403 when it is used) is this call's alone and never stops the task's other calls.
extension GitHubClient {
    /// The permissions of the token that creates check runs.
    public static let checksWrite = ["checks": "write"]
    /// The permissions of the token that lists check runs.
    public static let checksRead = ["checks": "read"]
    /// The permissions of the token that downloads Actions job logs.
    public static let actionsRead = ["actions": "read"]

    /// Creates a completed check run on `headSHA` (`POST /repos/{owner}/{repo}/check-runs`). Not retried on 5xx.
    public func createCheckRun(in repo: RepositoryRef, _ run: NewCheckRun) async throws -> CheckRun {
        var output: [String: Any] = ["title": run.title, "summary": Self.capped(run.summary)]
        if let text = run.text, !text.isEmpty { output["text"] = Self.capped(text) }
        var fields: [String: Any] = [
            "name": run.name, "head_sha": run.headSHA, "status": "completed", "conclusion": run.conclusion.rawValue,
            "completed_at": Self.iso8601(run.completedAt), "output": output,
        ]
        if let startedAt = run.startedAt { fields["started_at"] = Self.iso8601(startedAt) }
        if let detailsURL = run.detailsURL { fields["details_url"] = detailsURL }
        if let externalID = run.externalID { fields["external_id"] = externalID }
        return try await transport.json(.POST, repoPath(repo, "check-runs"), body: fields, route: "POST /repos/{owner}/{repo}/check-runs",
                                        auth: .scoped(repo, permissions: Self.checksWrite), retryable: false)
    }

    /// Returns the check runs of a commit, newest first, following pages up to `maxPages`
    /// (`GET /repos/{owner}/{repo}/commits/{ref}/check-runs`, `filter=latest`).
    public func listCheckRuns(in repo: RepositoryRef, ref: String, maxPages: Int = 5) async throws -> [CheckRun] {
        var all: [CheckRun] = []
        for page in 1...max(maxPages, 1) {
            let batch: CheckRunList = try await transport.json(
                .GET, repoPath(repo, "commits", ref, "check-runs"),
                query: [("filter", "latest"), ("per_page", "100"), ("page", String(page))],
                route: "GET /repos/{owner}/{repo}/commits/{ref}/check-runs", auth: .scoped(repo, permissions: Self.checksRead))
            all += batch.checkRuns
            if batch.checkRuns.count < 100 || all.count >= batch.totalCount { break }
        }
        return all
    }

    /// Returns the last `maxBytes` of a GitHub Actions job's log
    /// (`GET /repos/{owner}/{repo}/actions/jobs/{job_id}/logs`). GitHub answers with a redirect to the log; the
    /// HTTP client follows it and, the log being on another host, without the `Authorization` header.
    public func jobLogTail(in repo: RepositoryRef, jobID: Int64, maxBytes: Int = 16 * 1024) async throws -> String {
        let response = try await transport.send(
            .GET, repoPath(repo, "actions", "jobs", String(jobID), "logs"),
            route: "GET /repos/{owner}/{repo}/actions/jobs/{job_id}/logs", auth: .scoped(repo, permissions: Self.actionsRead))
        let bytes = response.body.readableBytesView
        return String(decoding: bytes.suffix(maxBytes), as: UTF8.self)
    }

    /// Returns `text` cut to what GitHub takes in a check run's `summary` or `text` (65,535 characters; bytes here,
    /// which is stricter).
    static func capped(_ text: String, bytes: Int = 65_000) -> String {
        guard text.utf8.count > bytes else { return text }
        var cut = String(decoding: text.utf8.prefix(bytes - 40), as: UTF8.self)
        while cut.unicodeScalars.last == "\u{FFFD}" { cut.unicodeScalars.removeLast() }
        return cut + "\n\n… (cut at GitHub's limit)"
    }
}

/// A check run to create (``GitHubClient/createCheckRun(in:_:)``).
public struct NewCheckRun: Sendable, Hashable {
    /// How a check run ended, as GitHub spells it.
    public enum Conclusion: String, Sendable, Hashable {
        case success, failure, neutral, cancelled, skipped
        case timedOut = "timed_out"
        case actionRequired = "action_required"
    }

    public var name: String
    public var headSHA: String
    public var conclusion: Conclusion
    public var title: String
    /// Markdown, at most 65,535 characters (longer is cut).
    public var summary: String
    /// Markdown details, at most 65,535 characters (longer is cut).
    public var text: String?
    public var startedAt: Date?
    public var completedAt: Date
    public var detailsURL: String?
    public var externalID: String?

    /// Creates a completed check run.
    public init(name: String, headSHA: String, conclusion: Conclusion, title: String, summary: String, text: String? = nil,
                startedAt: Date? = nil, completedAt: Date = Date(), detailsURL: String? = nil, externalID: String? = nil) {
        self.name = name
        self.headSHA = headSHA
        self.conclusion = conclusion
        self.title = title
        self.summary = summary
        self.text = text
        self.startedAt = startedAt
        self.completedAt = completedAt
        self.detailsURL = detailsURL
        self.externalID = externalID
    }
}

/// A check run as GitHub returns it (the fields asynccode reads).
public struct CheckRun: Codable, Sendable, Hashable {
    /// The App that made a check run.
    public struct App: Codable, Sendable, Hashable {
        public var id: Int64
        public var slug: String?
    }

    /// What the App wrote of the run.
    public struct Output: Codable, Sendable, Hashable {
        public var title: String?
        public var summary: String?
        public var text: String?
    }

    public var id: Int64
    public var name: String
    public var headSha: String
    /// `queued`, `in_progress` or `completed` (and newer values GitHub may add).
    public var status: String
    /// `success`, `failure`, `timed_out`, … once completed.
    public var conclusion: String?
    public var htmlUrl: String?
    public var detailsUrl: String?
    public var app: App?
    public var output: Output?

    enum CodingKeys: String, CodingKey {
        case id, name, status, conclusion, app, output
        case headSha = "head_sha"
        case htmlUrl = "html_url"
        case detailsUrl = "details_url"
    }

    /// Whether it ended in a way that asks for a fix: `failure`, `timed_out` or `startup_failure`.
    public var failed: Bool {
        ["failure", "timed_out", "startup_failure"].contains(conclusion ?? "")
    }
}

/// A page of ``CheckRun``s.
struct CheckRunList: Decodable {
    var totalCount: Int
    var checkRuns: [CheckRun]

    enum CodingKeys: String, CodingKey {
        case totalCount = "total_count"
        case checkRuns = "check_runs"
    }
}
