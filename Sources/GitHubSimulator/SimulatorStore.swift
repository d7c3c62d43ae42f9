import Foundation

/// The simulator's in-memory GitHub, guarded by one lock.
final class SimulatorStore: @unchecked Sendable {
    struct State {
        var nextID: Int64 = 1000
        var apps: [Int64: SimulatedApp] = [:]
        var appPublicKeys: [Int64: RSAPublicKeyBox] = [:]
        var installations: [Int64: (appID: Int64, account: String)] = [:]
        var repositories: [Int64: SimulatedRepository] = [:]
        var nextNumber: [Int64: Int] = [:]
        var issues: [Int64: [Int: SimulatedIssue]] = [:]
        var comments: [Int64: SimulatedComment] = [:]
        var reactions: [SimulatedReaction] = []
        var pullRequests: [Int64: [Int: SimulatedPullRequest]] = [:]
        var reviews: [SimulatedReview] = []
        var tokens: [String: IssuedToken] = [:]
        var tokenOrder: [String] = []
        var requests: [RecordedRequest] = []
        var failures: [InjectionRule<InjectedFailure>] = []
        var deliveries: [SimulatedDelivery] = []
        var redeliveries: [Int64] = []
        var inFlightMutations: [Int64: Int] = [:]
        var maxInFlightMutations: [Int64: Int] = [:]
        var knownUsers: Set<String> = []
        var webhookURL: String? = nil
        var webhookSecret: String? = nil
        /// Manifests posted to the App-creation page, by the one-time code GitHub's redirect carries.
        var manifestCodes: [String: PendingManifest] = [:]
        var submittedManifests: [String] = []
        var chaos: RandomFailures? = nil
        var delays: [InjectionRule<Duration>] = []
        /// What each installation was granted; an installation not listed has ``SimulatorAPI/defaultPermissions``.
        var installationPermissions: [Int64: [String: String]] = [:]
        /// Check runs by repository id, oldest first.
        var checkRuns: [Int64: [SimulatedCheckRun]] = [:]
        /// GitHub Actions job logs by job id.
        var jobLogs: [Int64: String] = [:]
        /// Log downloads waiting behind a redirect, by their one-time key: the job id.
        var logDownloads: [String: Int64] = [:]
        /// Log downloads that arrived with an `Authorization` header (GitHub's storage refuses them; so does this).
        var logDownloadsWithAuthorization = 0
        /// The signature verdicts of commits made through the Git commits API, by repository id and SHA.
        var commitVerifications: [Int64: [String: SimulatedCommitVerification]] = [:]
        /// Branch patterns whose updates need verified commits ("require signed commits"), by repository id.
        var signedCommitBranches: [Int64: [String]] = [:]
        /// The user signed in to the simulated github.com in the browser (who approves `/login/oauth/authorize`).
        var signedInUser: String? = nil
        /// Whether the user clicks "Cancel" instead of "Authorize" on the authorize page.
        var authorizationDenied = false
        /// Codes from the authorize page, by code, until exchanged (or found older than ten minutes).
        var oauthCodes: [String: PendingOAuthCode] = [:]
        /// Every approval on the authorize page, oldest first.
        var oauthAuthorizations: [SimulatedOAuthAuthorization] = []
        /// Every user access token issued, oldest first.
        var userTokens: [SimulatedUserToken] = []
        /// Refreshes (refresh-token grants that succeeded) by ``userKey(appID:login:)``.
        var userTokenRefreshes: [String: Int] = [:]
        /// Profiles set by tests, by lowercased login.
        var userProfiles: [String: SimulatedUserProfile] = [:]
    }

    private let lock = NSLock()
    private var state = State()
    // A separate lock: the base URL is read inside `withState` bodies.
    private let baseURLLock = NSLock()
    private var _baseURL = ""

    var baseURL: String {
        get { baseURLLock.withLock { _baseURL } }
        set { baseURLLock.withLock { _baseURL = newValue } }
    }

    private weak var _simulator: GitHubSimulator?
    /// The simulator that owns this store (for the admin routes that act like a user).
    var simulator: GitHubSimulator? {
        get { baseURLLock.withLock { _simulator } }
        set { baseURLLock.withLock { _simulator = newValue } }
    }

    func withState<T>(_ body: (inout State) throws -> T) rethrows -> T {
        try lock.withLock { try body(&state) }
    }
}

/// Holds an RSA public key (OpenSSL) for JWT verification.
struct RSAPublicKeyBox: @unchecked Sendable {
    let verify: @Sendable ([UInt8], [UInt8]) -> Bool
}

extension SimulatorStore.State {
    mutating func makeID() -> Int64 {
        nextID += 1
        return nextID
    }

    mutating func makeNumber(_ repositoryID: Int64) -> Int {
        let number = (nextNumber[repositoryID] ?? 0) + 1
        nextNumber[repositoryID] = number
        return number
    }

    func repository(owner: String, name: String) -> SimulatedRepository? {
        repositories.values.first { $0.owner.lowercased() == owner.lowercased() && $0.name.lowercased() == name.lowercased() }
    }
}
