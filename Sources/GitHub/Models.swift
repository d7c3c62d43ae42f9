import Foundation

/// Identifies a repository together with the installation that may act on it.
public struct RepositoryRef: Sendable, Hashable, CustomStringConvertible {
    /// The owner's login.
    public var owner: String
    /// The repository name.
    public var name: String
    /// GitHub's numeric repository id (used to narrow installation tokens).
    public var id: Int64
    /// The App installation that covers the repository.
    public var installationID: Int64

    /// Creates a reference.
    public init(owner: String, name: String, id: Int64, installationID: Int64) {
        self.owner = owner
        self.name = name
        self.id = id
        self.installationID = installationID
    }

    /// `owner/name`.
    public var fullName: String { "\(owner)/\(name)" }
    public var description: String { fullName }
}

/// A GitHub user or organization account (the fields we use).
public struct GitHubUser: Codable, Sendable, Hashable {
    public var login: String
    public var id: Int64
    public var type: String?
}

/// A GitHub App (`GET /app`).
public struct GitHubApp: Codable, Sendable {
    public var id: Int64
    public var slug: String?
    public var name: String
    public var clientId: String?
    public var owner: GitHubUser?
    public var permissions: [String: String]?
    public var events: [String]?

    enum CodingKeys: String, CodingKey {
        case id
        case slug
        case name
        case clientId = "client_id"
        case owner
        case permissions
        case events
    }
}

/// An installation access token. Its description hides the token.
public struct InstallationToken: Codable, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The secret token (`ghs_…`). Never log it.
    public var token: String
    /// When GitHub will stop accepting the token.
    public var expiresAt: Date
    /// The permissions granted.
    public var permissions: [String: String]?
    /// `all` or `selected`.
    public var repositorySelection: String?

    /// Creates a token value.
    public init(token: String, expiresAt: Date, permissions: [String: String]? = nil, repositorySelection: String? = nil) {
        self.token = token
        self.expiresAt = expiresAt
        self.permissions = permissions
        self.repositorySelection = repositorySelection
    }

    public var description: String { "InstallationToken(expiresAt: \(expiresAt), token: [REDACTED])" }
    public var debugDescription: String { description }

    enum CodingKeys: String, CodingKey {
        case token
        case expiresAt = "expires_at"
        case permissions
        case repositorySelection = "repository_selection"
    }
}

/// A repository (`GET /repos/{owner}/{repo}`).
public struct Repository: Codable, Sendable {
    public var id: Int64
    public var name: String
    public var fullName: String
    public var owner: GitHubUser
    public var `private`: Bool
    public var defaultBranch: String?
    public var cloneUrl: String?
    public var htmlUrl: String?

    enum CodingKeys: String, CodingKey {
        case id
        case name
        case fullName = "full_name"
        case owner
        case `private`
        case defaultBranch = "default_branch"
        case cloneUrl = "clone_url"
        case htmlUrl = "html_url"
    }
}

/// A collaborator's permission on a repository.
public struct CollaboratorPermission: Codable, Sendable {
    /// `admin`, `write`, `read` or `none` (GitHub maps maintain → write, triage → read).
    public var permission: String
    /// The finer role: `admin`, `maintain`, `write`, `triage`, `read`.
    public var roleName: String?
    public var user: GitHubUser?

    /// Returns whether the permission allows pushing (`admin` or `write`).
    public var canWrite: Bool { permission == "admin" || permission == "write" }

    enum CodingKeys: String, CodingKey {
        case permission
        case roleName = "role_name"
        case user
    }
}

/// A label.
public struct Label: Codable, Sendable, Hashable {
    public var id: Int64?
    public var name: String
    public var color: String?
}

/// An issue (or the issue side of a pull request).
public struct Issue: Codable, Sendable {
    public var id: Int64
    public var number: Int
    public var title: String
    public var body: String?
    public var state: String
    public var user: GitHubUser?
    public var labels: [Label]
    public var htmlUrl: String?
    /// Present when the issue is a pull request.
    public var pullRequest: PullRequestLink?

    /// The `pull_request` object of an issue that is a pull request.
    public struct PullRequestLink: Codable, Sendable {
        public var url: String?
    }

    enum CodingKeys: String, CodingKey {
        case id
        case number
        case title
        case body
        case state
        case user
        case labels
        case htmlUrl = "html_url"
        case pullRequest = "pull_request"
    }
}

/// An issue comment.
public struct IssueComment: Codable, Sendable {
    public var id: Int64
    public var body: String?
    public var user: GitHubUser?
    public var createdAt: Date?
    public var updatedAt: Date?
    public var htmlUrl: String?

    enum CodingKeys: String, CodingKey {
        case id
        case body
        case user
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case htmlUrl = "html_url"
    }
}

/// The reaction kinds GitHub accepts.
public enum ReactionContent: String, Codable, Sendable, CaseIterable {
    case plusOne = "+1"
    case minusOne = "-1"
    case laugh, confused, heart, hooray, rocket, eyes
}

/// A reaction.
public struct Reaction: Codable, Sendable {
    public var id: Int64
    public var content: ReactionContent
    public var user: GitHubUser?
}

/// A branch end of a pull request.
public struct PullRequestBranch: Codable, Sendable {
    /// The branch name.
    public var ref: String
    /// The commit the branch points at.
    public var sha: String
    /// `owner:branch`.
    public var label: String?
}

/// A pull request.
public struct PullRequest: Codable, Sendable {
    public var id: Int64
    public var number: Int
    public var state: String
    public var title: String
    public var body: String?
    public var draft: Bool?
    public var merged: Bool?
    public var user: GitHubUser?
    public var head: PullRequestBranch
    public var base: PullRequestBranch
    public var htmlUrl: String?
    public var requestedReviewers: [GitHubUser]?

    enum CodingKeys: String, CodingKey {
        case id
        case number
        case state
        case title
        case body
        case draft
        case merged
        case user
        case head
        case base
        case htmlUrl = "html_url"
        case requestedReviewers = "requested_reviewers"
    }
}

/// The state filter of ``GitHubClient/listPullRequests(in:head:state:)``.
public enum PullRequestStateFilter: String, Sendable {
    case open, closed, all
}

/// The action of a pull request review.
public enum ReviewEvent: String, Codable, Sendable {
    case approve = "APPROVE"
    case requestChanges = "REQUEST_CHANGES"
    case comment = "COMMENT"
}

/// A pull request review.
public struct PullRequestReview: Codable, Sendable {
    public var id: Int64
    public var state: String
    public var body: String?
    public var commitId: String?
    public var user: GitHubUser?

    enum CodingKeys: String, CodingKey {
        case id
        case state
        case body
        case commitId = "commit_id"
        case user
    }
}

/// A file read through the contents API.
public struct FileContents: Codable, Sendable {
    public var type: String
    public var path: String
    public var sha: String
    public var size: Int?
    public var encoding: String?
    public var content: String?

    /// Returns the decoded bytes of a base64-encoded file.
    public var decodedContent: Data? {
        guard encoding == "base64", let content else { return nil }
        return Data(base64Encoded: content.replacingOccurrences(of: "\n", with: ""))
    }
}

/// A branch (`GET /repos/{owner}/{repo}/branches/{branch}`).
public struct Branch: Codable, Sendable {
    public struct Commit: Codable, Sendable {
        public var sha: String
    }

    public var name: String
    public var commit: Commit
}

/// One delivery of the App's webhook.
public struct WebhookDelivery: Codable, Sendable {
    public var id: Int64
    public var guid: String
    public var deliveredAt: Date?
    public var redelivery: Bool
    public var duration: Double?
    public var status: String
    public var statusCode: Int
    public var event: String
    public var action: String?
    public var installationId: Int64?
    public var repositoryId: Int64?

    enum CodingKeys: String, CodingKey {
        case id
        case guid
        case deliveredAt = "delivered_at"
        case redelivery
        case duration
        case status
        case statusCode = "status_code"
        case event
        case action
        case installationId = "installation_id"
        case repositoryId = "repository_id"
    }
}

extension WebhookDelivery {
    /// Decodes a delivery; a `status_code` that is missing or null (no answer was recorded) reads as 0.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(Int64.self, forKey: .id), guid: try c.decode(String.self, forKey: .guid),
            deliveredAt: try c.decodeIfPresent(Date.self, forKey: .deliveredAt),
            redelivery: try c.decodeIfPresent(Bool.self, forKey: .redelivery) ?? false,
            duration: try c.decodeIfPresent(Double.self, forKey: .duration),
            status: try c.decodeIfPresent(String.self, forKey: .status) ?? "",
            statusCode: try c.decodeIfPresent(Int.self, forKey: .statusCode) ?? 0,
            event: try c.decode(String.self, forKey: .event), action: try c.decodeIfPresent(String.self, forKey: .action),
            installationId: try c.decodeIfPresent(Int64.self, forKey: .installationId),
            repositoryId: try c.decodeIfPresent(Int64.self, forKey: .repositoryId))
    }
}
