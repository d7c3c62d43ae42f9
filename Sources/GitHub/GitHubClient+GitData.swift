import Foundation

/// Users and the Git Data API: commits made by GitHub itself from blobs and trees, which GitHub signs as the App
/// (they show as Verified), for repositories that require signed commits.
extension GitHubClient {
    /// Returns a user or bot account (`GET /users/{username}`), such as the App's own `<slug>[bot]`.
    public func getUser(_ login: String, in repo: RepositoryRef) async throws -> GitHubUser {
        try await transport.json(.GET, "/users/" + Transport.escapeSegment(login), route: "GET /users/{username}", auth: .installation(repo))
    }

    /// Stores `bytes` as a blob (`POST /repos/{owner}/{repo}/git/blobs`, base64); returns its SHA. Safe to retry:
    /// the same bytes are the same blob.
    public func createBlob(in repo: RepositoryRef, bytes: [UInt8]) async throws -> String {
        let created: GitObjectRef = try await transport.json(
            .POST, repoPath(repo, "git", "blobs"), body: ["content": Data(bytes).base64EncodedString(), "encoding": "base64"],
            route: "POST /repos/{owner}/{repo}/git/blobs", auth: .installation(repo), retryable: true)
        return created.sha
    }

    /// Creates a tree from `entries` on top of `baseTree` (`POST /repos/{owner}/{repo}/git/trees`); returns its SHA.
    /// Safe to retry: the same entries are the same tree.
    public func createTree(in repo: RepositoryRef, baseTree: String, entries: [TreeEntry]) async throws -> String {
        let tree: [[String: Any]] = entries.map { entry in
            ["path": entry.path, "mode": entry.mode, "type": entry.type, "sha": entry.sha.map { $0 as Any } ?? NSNull()]
        }
        let created: GitObjectRef = try await transport.json(
            .POST, repoPath(repo, "git", "trees"), body: ["base_tree": baseTree, "tree": tree],
            route: "POST /repos/{owner}/{repo}/git/trees", auth: .installation(repo), retryable: true)
        return created.sha
    }

    /// Creates a commit of `tree` on `parents` authored by `author` (`POST /repos/{owner}/{repo}/git/commits`). No
    /// committer is given, so GitHub commits as the App and signs the commit. Not retried on 5xx (a retry could
    /// make a second commit; an unused one is harmless, but the caller decides).
    public func createCommit(
        in repo: RepositoryRef, message: String, tree: String, parents: [String], author: CommitIdentity
    ) async throws -> GitCommitObject {
        var person: [String: Any] = ["name": author.name, "email": author.email]
        if let date = author.date { person["date"] = Self.iso8601(date) }
        return try await transport.json(
            .POST, repoPath(repo, "git", "commits"), body: ["message": message, "tree": tree, "parents": parents, "author": person],
            route: "POST /repos/{owner}/{repo}/git/commits", auth: .installation(repo), retryable: false)
    }

    /// Creates the branch `branch` at `sha` (`POST /repos/{owner}/{repo}/git/refs`).
    public func createBranchRef(in repo: RepositoryRef, branch: String, sha: String) async throws {
        let _: GitRefObject = try await transport.json(
            .POST, repoPath(repo, "git", "refs"), body: ["ref": "refs/heads/" + branch, "sha": sha],
            route: "POST /repos/{owner}/{repo}/git/refs", auth: .installation(repo), retryable: false)
    }

    /// Moves the branch `branch` to `sha` (`PATCH /repos/{owner}/{repo}/git/refs/{ref}`); without `force` only
    /// forward (GitHub answers 422 "Update is not a fast forward" otherwise).
    public func updateBranchRef(in repo: RepositoryRef, branch: String, sha: String, force: Bool) async throws {
        let _: GitRefObject = try await transport.json(
            // `{ref}` is `heads/<branch>`, one path parameter: its slashes are escaped, as for branch names elsewhere.
            .PATCH, repoPath(repo, "git", "refs", "heads/" + branch),
            body: ["sha": sha, "force": force], route: "PATCH /repos/{owner}/{repo}/git/refs/{ref}", auth: .installation(repo))
    }
}

/// One entry of a tree to create: a file (`100644`, `100755`), a link (`120000`), a submodule (`160000`, type
/// `commit`); `sha` `nil` deletes the path.
public struct TreeEntry: Sendable, Hashable {
    public var path: String
    public var mode: String
    public var type: String
    public var sha: String?

    public init(path: String, mode: String, type: String = "blob", sha: String?) {
        self.path = path
        self.mode = mode
        self.type = type
        self.sha = sha
    }
}

/// The author of a commit made through the API.
public struct CommitIdentity: Sendable, Hashable {
    public var name: String
    public var email: String
    public var date: Date?

    public init(name: String, email: String, date: Date? = nil) {
        self.name = name
        self.email = email
        self.date = date
    }
}

/// A commit as `POST …/git/commits` returns it (the fields asynccode reads).
public struct GitCommitObject: Decodable, Sendable {
    public struct Tree: Decodable, Sendable {
        public var sha: String
    }

    public struct Verification: Decodable, Sendable {
        public var verified: Bool
        public var reason: String
    }

    public var sha: String
    public var tree: Tree
    public var verification: Verification?
}

struct GitObjectRef: Decodable {
    var sha: String
}

struct GitRefObject: Decodable {
    var ref: String
}
