import Foundation

/// A GitHub App registered in the simulator, with its key pair.
public struct SimulatedApp: Sendable {
    /// The App id (the JWT `iss`).
    public var id: Int64
    /// The App's slug; its bot user is `<slug>[bot]`.
    public var slug: String
    /// The display name.
    public var name: String
    /// The client id (also accepted as the JWT `iss`, and the OAuth `client_id` of "Sign in with GitHub").
    public var clientID: String
    /// The client secret (40 hex digits) the App's server sends to `POST /login/oauth/access_token`.
    public var clientSecret: String
    /// The registered callback URLs: a `redirect_uri` must be one of them (any is accepted while empty).
    public var callbackURLs: [String] = []
    /// The App's private key as PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`), as GitHub hands it out.
    public var privateKeyPEM: String
    /// The App's private key as PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    public var privateKeyPKCS8PEM: String
    /// The public key the simulator verifies JWTs with.
    public var publicKeyPEM: String
    /// The bot account's login.
    public var botLogin: String { "\(slug)[bot]" }
    /// The bot account's user id (`GET /users/<slug>[bot]`): a fixed number derived from the App id, as stable
    /// as GitHub's.
    public var botUserID: Int64 { 100_000_000 + id }
    /// The address GitHub gives the bot's commits: `<botUserID>+<slug>[bot]@users.noreply.github.com`.
    public var botEmail: String { "\(botUserID)+\(botLogin)@users.noreply.github.com" }
}

/// What GitHub says about a commit's signature (the `verification` object of the Git commits API).
public struct SimulatedCommitVerification: Sendable, Equatable {
    /// Whether GitHub considers the commit signed by its committer.
    public var verified: Bool
    /// `valid` for a verified commit, `unsigned` without a signature, `unknown_key` for a signature GitHub
    /// cannot check.
    public var reason: String
    /// The armored signature in the commit's `gpgsig` header, if any.
    public var signature: String?
    /// The commit object without its signature (what was signed), if signed.
    public var payload: String?
}

/// A repository in the simulator, backed by a bare git repository on disk.
public struct SimulatedRepository: Sendable {
    public var id: Int64
    public var owner: String
    public var name: String
    public var installationID: Int64
    public var defaultBranch: String
    public var isPrivate: Bool
    /// The bare repository served over smart HTTP.
    public var gitDirectory: String
    /// `http://127.0.0.1:<port>/<owner>/<name>.git`.
    public var cloneURL: String
    /// Collaborators and their role (`admin`, `maintain`, `write`, `triage`, `read`).
    public var collaborators: [String: String]
    /// `owner/name`.
    public var fullName: String { "\(owner)/\(name)" }
}

/// An issue (or the issue side of a pull request) in the simulator.
public struct SimulatedIssue: Sendable {
    public var repositoryID: Int64
    public var id: Int64
    public var number: Int
    public var title: String
    public var body: String?
    public var author: String
    public var state: String
    public var labels: [String]
    public var isPullRequest: Bool
}

/// An issue comment with every body it has had.
public struct SimulatedComment: Sendable {
    public var id: Int64
    public var repositoryID: Int64
    public var issueNumber: Int
    public var author: String
    public var createdAt: Date
    public var updatedAt: Date
    /// Every body in order; the last is the current one.
    public var history: [String]
    /// The current body.
    public var body: String { history.last ?? "" }
}

/// What a reaction is on.
public enum ReactionSubject: Sendable, Hashable {
    case comment(id: Int64)
    case issue(repositoryID: Int64, number: Int)
}

/// A reaction.
public struct SimulatedReaction: Sendable {
    public var id: Int64
    public var subject: ReactionSubject
    public var content: String
    public var user: String
}

/// A pull request.
public struct SimulatedPullRequest: Sendable {
    public var id: Int64
    public var repositoryID: Int64
    public var number: Int
    public var title: String
    public var body: String?
    public var author: String
    /// The head branch name.
    public var head: String
    /// The head owner (the repository owner for same-repo PRs).
    public var headOwner: String
    public var headSHA: String
    public var base: String
    public var baseSHA: String
    public var state: String
    public var draft: Bool
    public var requestedReviewers: [String]
    public var requestedTeams: [String]
}

/// A pull request review.
public struct SimulatedReview: Sendable {
    public var id: Int64
    public var repositoryID: Int64
    public var pullNumber: Int
    public var author: String
    public var state: String
    public var body: String?
    public var commitID: String
}

/// An installation token the simulator minted.
public struct IssuedToken: Sendable {
    public var token: String
    public var installationID: Int64
    /// The repositories it is narrowed to (nil: all of the installation's).
    public var repositoryIDs: [Int64]?
    public var permissions: [String: String]
    public var expiresAt: Date
    public var revoked: Bool
}

/// One request the simulator received.
public struct RecordedRequest: Sendable {
    public var method: String
    /// The path as sent (percent-encoded).
    public var path: String
    /// The raw query string, if any.
    public var query: String?
    /// Header names lowercased.
    public var headers: [String: String]
    public var body: [UInt8]
    /// The status answered.
    public var status: Int
    /// Whether the answer was an injected failure.
    public var injected: Bool
    public var receivedAt: Date

    /// Whether this was a git smart-HTTP request rather than a REST call.
    public var isGit: Bool { path.contains(".git/") }

    /// The query as name → value pairs (percent-decoded).
    public var queryItems: [(name: String, value: String)] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ") }
            let name = parts[0].removingPercentEncoding ?? parts[0]
            let value = parts.count > 1 ? (parts[1].removingPercentEncoding ?? parts[1]) : ""
            return (name, value)
        }
    }

    /// The body parsed as JSON, if it is JSON.
    public var jsonBody: Any? {
        body.isEmpty ? nil : try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
    }
}

/// A failure the simulator answers with instead of handling a request.
public enum InjectedFailure: Sendable {
    /// Answers with this status (e.g. 500, 502, 503) and a GitHub-style message.
    case status(Int)
    /// 403 "secondary rate limit", with `Retry-After` when given.
    case secondaryRateLimit(retryAfter: Int?)
    /// 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` = `resetAt` (epoch seconds).
    case primaryRateLimit(resetAt: Int)
    /// 429 with `Retry-After`.
    case tooManyRequests(retryAfter: Int)
}

/// A webhook delivery as listed by `GET /app/hook/deliveries`.
public struct SimulatedDelivery: Sendable {
    public var id: Int64
    public var guid: String
    public var event: String
    public var action: String?
    public var statusCode: Int
    public var redelivery: Bool
    public var installationID: Int64?
    public var repositoryID: Int64?
    public var deliveredAt: Date
    /// The JSON body that was (or would have been) posted.
    public var payload: [UInt8]
}
