import Accounting
import GitHub
import Metrics
import Models
import Queue
import RepositoryConfiguration

/// Settings of the executor that are not the agents themselves.
public struct ExecutorSettings: Sendable {
    /// Where task workspaces are made (`ASYNCCODE_WORKSPACE_DIR`).
    public var workspaceRoot: String
    /// The commit author: the App's bot account.
    public var botName: String
    public var botEmail: String
    /// How long a collaborator-permission answer is trusted.
    public var accessCacheDuration: Duration = .seconds(600)
    /// How often a running task looks for a `/asynccode cancel`.
    public var cancelPollInterval: Duration = .seconds(1)
    /// Trust roots for git over HTTPS to GitHub Enterprise Server.
    public var caBundlePath: String?
    /// The most bytes of patch kept in `tasks.git_patch`.
    public var patchLimit: Int = 1024 * 1024
    /// Whether commits go through GitHub's Git Data API (signed by GitHub as the App) where a repository's
    /// `signedCommits` does not say.
    public var signedCommits = false
    /// The bot's public address (`ASYNCCODE_PUBLIC_URL`): progress comments link the task's live page there.
    public var publicURL: String?
    /// The first retry's delay after a transient failure; doubled per attempt, with jitter.
    public var retryBaseDelay: Duration = .seconds(10)
    /// Values never to show in comments or store (the webhook secret, the database password…).
    public var secretValues = SecretValues([])
    /// Warm mirrors of the repositories, from which checkouts are made (`nil`: every task clones from GitHub).
    public var repositoryCache: RepositoryCache?
    /// Where agent exits are counted (`asynccode_agent_exits_total`).
    public var metrics: any MetricsFactory = NOOPMetricsHandler.instance

    public init(workspaceRoot: String, botName: String = "asynccode[bot]", botEmail: String = "asynccode[bot]@users.noreply.github.com") {
        self.workspaceRoot = workspaceRoot
        self.botName = botName
        self.botEmail = botEmail
    }
}

/// The executor's accounting: the credits ledger, the usage limits and `task_analytics`.
public struct ExecutorAccounting: Sendable {
    public var ledger: CreditLedger
    public var gate: UsageGate
    public var analytics: TaskAnalyticsStore
    public var limits: UsageLimits
    /// How long a task held back by `runningTasksPerRepository` waits before it looks again.
    public var deferral: Duration = .seconds(15)

    public init(ledger: CreditLedger, gate: UsageGate, analytics: TaskAnalyticsStore, limits: UsageLimits) {
        self.ledger = ledger
        self.gate = gate
        self.analytics = analytics
        self.limits = limits
    }
}

/// Counts the tasks using each repository's installation token in this process, so the token is revoked
/// when the last one ends (tasks of one repository share the cached token).
actor TokenLeases {
    private var counts: [String: Int] = [:]

    func acquire(_ repo: RepositoryRef) {
        counts["\(repo.installationID)/\(repo.id)", default: 0] += 1
    }

    /// Returns whether this was the last task using the token.
    func release(_ repo: RepositoryRef) -> Bool {
        let key = "\(repo.installationID)/\(repo.id)"
        let count = (counts[key] ?? 1) - 1
        counts[key] = count > 0 ? count : nil
        return count <= 0
    }
}
