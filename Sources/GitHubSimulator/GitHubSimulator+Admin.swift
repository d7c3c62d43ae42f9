import Foundation
import OpenSSLCrypto

// MARK: Setting up state

extension GitHubSimulator {
    /// Creates a GitHub App with a fresh 2048-bit RSA key pair (generated with OpenSSL).
    @discardableResult
    public func createApp(id: Int64? = nil, slug: String = "asynccode-test", name: String = "asynccode (test)", clientID: String? = nil) throws -> SimulatedApp {
        let keys = try AppKeys.generate()
        return store.withState { state in
            state.registerApp(id: id, slug: slug, name: name, clientID: clientID, keys: keys)
        }
    }

    /// Creates an installation of `appID` on `account` and returns its id.
    @discardableResult
    public func createInstallation(appID: Int64, account: String) -> Int64 {
        store.withState { state in
            let id = state.makeID()
            state.installations[id] = (appID, account)
            return id
        }
    }

    /// Creates a repository covered by `installationID`, backed by a bare git repository holding
    /// one commit on `defaultBranch` with `files` (path → text).
    @discardableResult
    public func createRepository(
        owner: String, name: String, installationID: Int64, defaultBranch: String = "main", isPrivate: Bool = false,
        files: [String: String] = ["README.md": "# Test repository\n"]
    ) async throws -> SimulatedRepository {
        let fileManager = FileManager.default
        let gitDirectory = "\(gitRoot)/\(owner)/\(name).git"
        try fileManager.createDirectory(atPath: "\(gitRoot)/\(owner)", withIntermediateDirectories: true)
        try await git(["init", "--quiet", "--bare", "--initial-branch", defaultBranch, gitDirectory])
        try await git(["--git-dir", gitDirectory, "config", "http.receivepack", "true"])
        let work = fileManager.temporaryDirectory.appendingPathComponent("ghsim-seed-\(UUID().uuidString)").path
        defer { try? fileManager.removeItem(atPath: work) }
        try await git(["init", "--quiet", "--initial-branch", defaultBranch, work])
        for (path, text) in files {
            let url = URL(fileURLWithPath: work).appendingPathComponent(path)
            try fileManager.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        try await git(["add", "-A"], currentDirectory: work)
        try await git(["commit", "--quiet", "--allow-empty", "-m", "Initial commit"], currentDirectory: work)
        try await git(["push", "--quiet", gitDirectory, "HEAD:refs/heads/\(defaultBranch)"], currentDirectory: work)
        return store.withState { state in
            let repo = SimulatedRepository(id: state.makeID(), owner: owner, name: name, installationID: installationID,
                                           defaultBranch: defaultBranch, isPrivate: isPrivate, gitDirectory: gitDirectory,
                                           cloneURL: "\(baseURL)/\(owner)/\(name).git", collaborators: [owner: "admin"])
            state.repositories[repo.id] = repo
            return repo
        }
    }

    /// Gives `username` a role on the repository (`admin`, `maintain`, `write`, `triage`, `read`).
    public func setCollaborator(_ username: String, role: String, onRepositoryID repositoryID: Int64) {
        store.withState { $0.repositories[repositoryID]?.collaborators[username] = role }
    }

    /// Opens an issue and returns its number.
    @discardableResult
    public func createIssue(repositoryID: Int64, title: String, body: String? = nil, author: String = "octocat", labels: [String] = []) -> Int {
        store.withState { state in
            let number = state.makeNumber(repositoryID)
            state.issues[repositoryID, default: [:]][number] = SimulatedIssue(
                repositoryID: repositoryID, id: state.makeID(), number: number, title: title, body: body, author: author,
                state: "open", labels: labels, isPullRequest: false)
            return number
        }
    }

    /// Adds a comment written by `author` (e.g. a user's `/asynccode` command) and returns it.
    @discardableResult
    public func addComment(repositoryID: Int64, issueNumber: Int, body: String, author: String = "octocat") -> SimulatedComment {
        store.withState { state in
            let now = Date()
            let comment = SimulatedComment(id: state.makeID(), repositoryID: repositoryID, issueNumber: issueNumber, author: author,
                                           createdAt: now, updatedAt: now, history: [body])
            state.comments[comment.id] = comment
            return comment
        }
    }

    /// Records a webhook delivery for `GET /app/hook/deliveries` and returns its id.
    @discardableResult
    public func addWebhookDelivery(event: String, action: String? = nil, statusCode: Int = 200, installationID: Int64? = nil, repositoryID: Int64? = nil) -> Int64 {
        store.withState { state in
            let id = state.makeID()
            state.deliveries.append(SimulatedDelivery(id: id, guid: UUID().uuidString.lowercased(), event: event, action: action,
                                                      statusCode: statusCode, redelivery: false, installationID: installationID,
                                                      repositoryID: repositoryID, deliveredAt: Date(), payload: Array("{}".utf8)))
            return id
        }
    }

    // MARK: Faults

    /// Answers the next `times` requests matching `method` (any if nil) and `path` with `failure`.
    ///
    /// `path` is matched by segments: `*` matches one segment, a trailing `**` the rest, e.g.
    /// `/repos/*/*/issues/*/comments`.
    public func injectFailure(_ failure: InjectedFailure, method: String? = nil, path: String, times: Int = 1) {
        let pattern = path.split(separator: "/", omittingEmptySubsequences: true)
        store.withState { $0.failures.append(InjectionRule(method: method, pattern: pattern, effect: failure, remaining: times)) }
    }

    /// Holds the next `times` requests matching `method` and `path` (segments; `*` matches one, a trailing
    /// `**` the rest; git paths too) for `duration` before answering them, so a test can act while they are
    /// in flight (a request in flight is recorded with status 0).
    public func injectDelay(_ duration: Duration, method: String? = nil, path: String, times: Int = 1) {
        let pattern = path.split(separator: "/", omittingEmptySubsequences: true)
        store.withState { $0.delays.append(InjectionRule(method: method, pattern: pattern, effect: duration, remaining: times)) }
    }

    /// Fails a share `rate` of REST calls (git over HTTP and the simulator's own routes are spared) from now on:
    /// `rateLimitShare` of those with a secondary rate limit (403, `Retry-After: 1`), the rest with 502.
    /// The choice is drawn from `seed`, so a run can be replayed.
    public func injectRandomFailures(rate: Double, rateLimitShare: Double = 0.2, seed: UInt64 = 1) {
        store.withState { $0.chaos = RandomFailures(rate: rate, rateLimitShare: rateLimitShare, state: seed) }
    }

    /// Removes every injected failure not yet used, and random failures.
    public func clearInjectedFailures() {
        store.withState { state in
            state.failures.removeAll()
            state.delays.removeAll()
            state.chaos = nil
        }
    }

    /// Makes every minted token expire now.
    public func expireAllTokens() {
        store.withState { state in
            for key in state.tokens.keys { state.tokens[key]?.expiresAt = configuration.clock().addingTimeInterval(-1) }
        }
    }

    // MARK: Inspecting state

    /// Every request received so far, in arrival order.
    public var requests: [RecordedRequest] { store.withState { $0.requests } }

    /// Forgets the recorded requests.
    public func clearRequests() { store.withState { $0.requests.removeAll() } }

    /// Every minted installation token, oldest first.
    public var issuedTokens: [IssuedToken] { store.withState { state in state.tokenOrder.compactMap { state.tokens[$0] } } }

    /// The repository with this owner and name.
    public func repository(owner: String, name: String) -> SimulatedRepository? { store.withState { $0.repository(owner: owner, name: name) } }

    /// An issue or a pull request's issue.
    public func issue(repositoryID: Int64, number: Int) -> SimulatedIssue? { store.withState { $0.issues[repositoryID]?[number] } }

    /// The labels on an issue.
    public func labels(repositoryID: Int64, issueNumber: Int) -> [String] { issue(repositoryID: repositoryID, number: issueNumber)?.labels ?? [] }

    /// The comments on an issue, oldest first, with their edit history.
    public func comments(repositoryID: Int64, issueNumber: Int) -> [SimulatedComment] {
        store.withState { $0.comments.values.filter { $0.repositoryID == repositoryID && $0.issueNumber == issueNumber }.sorted { $0.id < $1.id } }
    }

    /// A comment by id.
    public func comment(id: Int64) -> SimulatedComment? { store.withState { $0.comments[id] } }

    /// Every reaction, oldest first.
    public var reactions: [SimulatedReaction] { store.withState { $0.reactions } }

    /// The pull requests of a repository, by number.
    public func pullRequests(repositoryID: Int64) -> [SimulatedPullRequest] {
        store.withState { ($0.pullRequests[repositoryID] ?? [:]).values.sorted { $0.number < $1.number } }
    }

    /// Every review, oldest first.
    public var reviews: [SimulatedReview] { store.withState { $0.reviews } }

    /// The delivery ids redelivery was requested for.
    public var redeliveryRequests: [Int64] { store.withState { $0.redeliveries } }

    /// The most mutating repository calls that were in flight at once for an installation.
    public func maxConcurrentMutations(installationID: Int64) -> Int { store.withState { $0.maxInFlightMutations[installationID] ?? 0 } }

    /// The commit a branch of a repository points at, or nil.
    public func branchHead(repositoryID: Int64, branch: String) async -> String? {
        guard let repo = store.withState({ $0.repositories[repositoryID] }) else { return nil }
        return try? await git(["--git-dir", repo.gitDirectory, "rev-parse", "--verify", "--quiet", "refs/heads/\(branch)"])
    }

    /// Creates a branch `name` with one more commit (adding `files`) on top of `from` directly in the
    /// bare repository, as a push would, and returns the commit.
    @discardableResult
    public func createBranch(repositoryID: Int64, name: String, from: String? = nil, files: [String: String], message: String = "Change") async throws -> String {
        guard let repo = store.withState({ $0.repositories[repositoryID] }) else { throw SimulatorError("no repository \(repositoryID)") }
        let fileManager = FileManager.default
        let work = fileManager.temporaryDirectory.appendingPathComponent("ghsim-branch-\(UUID().uuidString)").path
        defer { try? fileManager.removeItem(atPath: work) }
        try await git(["clone", "--quiet", "--branch", from ?? repo.defaultBranch, repo.gitDirectory, work])
        try await git(["checkout", "--quiet", "-b", name], currentDirectory: work)
        for (path, text) in files {
            let url = URL(fileURLWithPath: work).appendingPathComponent(path)
            try fileManager.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        try await git(["add", "-A"], currentDirectory: work)
        try await git(["commit", "--quiet", "--allow-empty", "-m", message], currentDirectory: work)
        try await git(["push", "--quiet", "origin", "HEAD:refs/heads/\(name)"], currentDirectory: work)
        return try await git(["rev-parse", "HEAD"], currentDirectory: work)
    }

    /// Opens a pull request by `author` from `head` into `base` directly, as a user would. With a `headOwner`
    /// other than the repository's owner it comes from that account's fork (its `head.label` is
    /// `headOwner:head`); the commits stand in the repository under `head`, as GitHub keeps a fork's
    /// commits under `refs/pull/N/head`. Make the branch first (``createBranch(repositoryID:name:from:files:message:)``).
    @discardableResult
    public func openPullRequest(
        repositoryID: Int64, title: String, head: String, headOwner: String? = nil, base: String? = nil, author: String = "octocat"
    ) async throws -> SimulatedPullRequest {
        guard let repo = store.withState({ $0.repositories[repositoryID] }) else { throw SimulatorError("no repository \(repositoryID)") }
        let base = base ?? repo.defaultBranch
        let headSHA = try await git(["--git-dir", repo.gitDirectory, "rev-parse", "--verify", "refs/heads/\(head)^{commit}"])
        let baseSHA = try await git(["--git-dir", repo.gitDirectory, "rev-parse", "--verify", "refs/heads/\(base)^{commit}"])
        return store.withState { state in
            let number = state.makeNumber(repo.id)
            let pull = SimulatedPullRequest(
                id: state.makeID(), repositoryID: repo.id, number: number, title: title, body: nil, author: author, head: head,
                headOwner: headOwner ?? repo.owner, headSHA: headSHA, base: base, baseSHA: baseSHA, state: "open", draft: false,
                requestedReviewers: [], requestedTeams: [])
            state.pullRequests[repo.id, default: [:]][number] = pull
            state.issues[repo.id, default: [:]][number] = SimulatedIssue(
                repositoryID: repo.id, id: state.makeID(), number: number, title: title, body: nil, author: author,
                state: "open", labels: [], isPullRequest: true)
            return pull
        }
    }
}

/// An App with one installation and one repository: the usual starting point of a test.
public struct SimulatedSetup: Sendable {
    public var app: SimulatedApp
    public var installationID: Int64
    public var repository: SimulatedRepository
}

extension GitHubSimulator {
    /// Creates an App, installs it on `owner` and creates `owner/name` with `files`.
    public func setUpAppWithRepository(
        owner: String = "acme", name: String = "widgets", files: [String: String] = ["README.md": "# Test repository\n"]
    ) async throws -> SimulatedSetup {
        let app = try createApp()
        let installationID = createInstallation(appID: app.id, account: owner)
        let repository = try await createRepository(owner: owner, name: name, installationID: installationID, files: files)
        return SimulatedSetup(app: app, installationID: installationID, repository: repository)
    }
}

/// A fresh App key pair, made outside the store's lock.
struct AppKeys: Sendable {
    var pkcs1: String
    var pkcs8: String
    var publicPEM: String
    var verifier: RSAPublicKeyBox

    static func generate() throws -> AppKeys {
        let key = try RSAPrivateKey.generate(bits: 2048)
        let publicKey = try key.publicKey()
        return AppKeys(
            pkcs1: try key.pkcs1PEMRepresentation(), pkcs8: try key.pkcs8PEMRepresentation(),
            publicPEM: try key.publicKeyPEMRepresentation(),
            verifier: RSAPublicKeyBox(verify: { signature, message in publicKey.isValidSHA256Signature(signature, for: message) }))
    }
}

extension SimulatorStore.State {
    mutating func registerApp(id: Int64?, slug: String, name: String, clientID: String?, keys: AppKeys) -> SimulatedApp {
        let appID = id ?? makeID()
        let app = SimulatedApp(id: appID, slug: slug, name: name, clientID: clientID ?? "Iv1.\(randomAlphanumeric(16).lowercased())",
                               clientSecret: randomHex(bytes: 20), privateKeyPEM: keys.pkcs1, privateKeyPKCS8PEM: keys.pkcs8,
                               publicKeyPEM: keys.publicPEM)
        apps[appID] = app
        appPublicKeys[appID] = keys.verifier
        return app
    }
}

extension GitHubSimulator {
    /// Returns what `git <arguments>` prints, run on a repository's bare git directory (e.g. `diff main...topic`).
    public func gitOutput(repositoryID: Int64, _ arguments: [String]) async throws -> String {
        guard let repo = store.withState({ $0.repositories[repositoryID] }) else { throw SimulatorError("no repository \(repositoryID)") }
        return try await git(["--git-dir", repo.gitDirectory] + arguments)
    }
}

/// Random failures for fault-injection runs: a seeded SplitMix64 draw per REST call.
struct RandomFailures: Sendable {
    var rate: Double
    var rateLimitShare: Double
    var state: UInt64

    mutating func nextUnit() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }

    mutating func draw() -> InjectedFailure? {
        guard nextUnit() < rate else { return nil }
        return nextUnit() < rateLimitShare ? .secondaryRateLimit(retryAfter: 1) : .status(502)
    }
}
