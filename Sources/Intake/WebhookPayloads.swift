// The parts of GitHub's webhook payloads the intake reads. Unknown keys are ignored.

struct UserPayload: Decodable {
    var id: Int64
    var login: String
    var type: String?
    var avatar_url: String?
}

struct RepositoryPayload: Decodable {
    var id: Int64
    var name: String
    var full_name: String
    var owner: UserPayload?
    var `private`: Bool?
    var description: String?
    var default_branch: String?
    var language: String?
    var html_url: String?
    var clone_url: String?
}

struct InstallationRef: Decodable {
    var id: Int64
}

struct InstallationPayload: Decodable {
    var id: Int64
    var account: UserPayload?
    var repository_selection: String?
}

struct PullRequestMarker: Decodable {
    var url: String?
}

struct LabelPayload: Decodable {
    var name: String
}

struct IssuePayload: Decodable {
    var number: Int64
    var title: String?
    var html_url: String?
    var pull_request: PullRequestMarker?
}

struct CommentPayload: Decodable {
    var id: Int64
    var body: String?
    var user: UserPayload?
    var html_url: String?
    /// For a review comment: the file and line it is on, and the diff around it.
    var path: String?
    var line: Int64?
    var diff_hunk: String?
}

struct PullRequestPayload: Decodable {
    struct Branch: Decodable {
        var ref: String
    }

    var id: Int64
    var number: Int64
    var user: UserPayload?
    var head: Branch?
    var state: String?
    var title: String?
    var body: String?
    var draft: Bool?
    var merged: Bool?
    var merged_at: String?
    var closed_at: String?
    var html_url: String?
}

struct ReviewPayload: Decodable {
    var id: Int64
    var body: String?
    var state: String?
    var user: UserPayload?
    var html_url: String?
}

/// A payload whose envelope and event-specific part are decoded from one parse.
struct Delivery<Body: Decodable>: Decodable {
    var envelope: EnvelopePayload
    var body: Body

    init(from decoder: any Decoder) throws {
        envelope = try EnvelopePayload(from: decoder)
        body = try Body(from: decoder)
    }
}

/// The envelope every event shares.
struct EnvelopePayload: Decodable {
    var action: String?
    var installation: InstallationRef?
    var repository: RepositoryPayload?
    var sender: UserPayload?
}

struct IssueCommentEvent: Decodable {
    var action: String
    var issue: IssuePayload
    var comment: CommentPayload
}

struct IssuesEvent: Decodable {
    var action: String
    var issue: IssuePayload
    var label: LabelPayload?
}

struct PullRequestEvent: Decodable {
    var action: String
    var pull_request: PullRequestPayload
}

struct PullRequestReviewEvent: Decodable {
    var action: String
    var review: ReviewPayload
    var pull_request: PullRequestPayload
}

struct PullRequestReviewCommentEvent: Decodable {
    var action: String
    var comment: CommentPayload
    var pull_request: PullRequestPayload
}

struct InstallationRepositoryPayload: Decodable {
    var id: Int64
    var name: String
    var full_name: String
    var `private`: Bool?
}

struct InstallationEvent: Decodable {
    var action: String
    var installation: InstallationPayload
    var repositories: [InstallationRepositoryPayload]?
}

struct InstallationRepositoriesEvent: Decodable {
    var action: String
    var installation: InstallationPayload
    var repositories_added: [InstallationRepositoryPayload]?
    var repositories_removed: [InstallationRepositoryPayload]?
}

/// A pull request as `check_suite` and `workflow_run` list them: the branches and their repositories.
struct CIPullRequestPayload: Decodable {
    struct Branch: Decodable {
        struct Repo: Decodable {
            var id: Int64
        }

        var ref: String
        var sha: String
        var repo: Repo?
    }

    var number: Int64
    var head: Branch
    var base: Branch
}

struct AppPayload: Decodable {
    var id: Int64
    var slug: String?
    var name: String?
}

struct CheckSuiteEvent: Decodable {
    struct Suite: Decodable {
        var id: Int64
        var head_sha: String
        var conclusion: String?
        var app: AppPayload?
        var pull_requests: [CIPullRequestPayload]?
    }

    var action: String
    var check_suite: Suite
}

struct WorkflowRunEvent: Decodable {
    struct Run: Decodable {
        var id: Int64
        var name: String?
        var head_sha: String
        var conclusion: String?
        var html_url: String?
        var pull_requests: [CIPullRequestPayload]?
    }

    var action: String
    var workflow_run: Run
}

/// An event whose envelope says everything.
struct EmptyBody: Decodable {}
