/// Who asked, where, and in which comment: what a task and a control command share.
public struct CommandOrigin: Sendable, Hashable {
    public var installationID: Int64
    public var repository: RepositorySnapshot
    public var requester: AccountSnapshot
    public var issueNumber: Int64
    public var isPullRequest: Bool
    public var source: CommandSource
    /// The comment, review or review comment holding the command; `nil` for the trigger label.
    public var commentID: Int64?
    /// The command's position among the commands of its comment (0-based).
    public var commandIndex: Int32

    public init(
        installationID: Int64, repository: RepositorySnapshot, requester: AccountSnapshot, issueNumber: Int64,
        isPullRequest: Bool, source: CommandSource, commentID: Int64?, commandIndex: Int32
    ) {
        self.installationID = installationID
        self.repository = repository
        self.requester = requester
        self.issueNumber = issueNumber
        self.isPullRequest = isPullRequest
        self.source = source
        self.commentID = commentID
        self.commandIndex = commandIndex
    }
}

/// A task the intake derived from one command, ready to be queued.
public struct TaskRequest: Sendable, Hashable {
    public var origin: CommandOrigin
    public var kind: TaskKind
    public var agent: String?
    public var priority: TaskPriority
    /// The branch to start from; `nil` means the repository's default branch.
    public var baseBranch: String?
    /// The instruction: the command's text and the lines after it.
    public var prompt: String
    /// Link to the comment (or issue) that asked.
    public var sourceURL: String?
    /// The most credits the task may use (`--budget`), a positive decimal number as typed.
    public var budget: String?
    /// Queue it only when the pull request is one the bot opened (a review requesting changes without a
    /// command): the writer checks `pull_requests`, since the branch's name says nothing certain.
    public var requiresOwnPullRequest = false
    /// Set for an automatic fix of a failed CI run: the task is the bot's, on behalf of whoever asked for the
    /// pull request (the writer finds them), and one head commit makes at most one such task.
    public var ciFailure: CIFailure?

    public init(
        origin: CommandOrigin, kind: TaskKind, agent: String?, priority: TaskPriority, baseBranch: String?,
        prompt: String, sourceURL: String?, budget: String? = nil
    ) {
        self.budget = budget
        self.origin = origin
        self.kind = kind
        self.agent = agent
        self.priority = priority
        self.baseBranch = baseBranch
        self.prompt = prompt
        self.sourceURL = sourceURL
    }
}

/// A failed CI run on a pull request's head commit, as a webhook told it.
public struct CIFailure: Sendable, Hashable {
    /// The commit CI failed on (the pull request's head when the event was sent).
    public var headSHA: String
    /// What failed: the workflow's or the check suite App's name.
    public var name: String
    /// `failure`, `timed_out` or `startup_failure`.
    public var conclusion: String

    public init(headSHA: String, name: String, conclusion: String) {
        self.headSHA = headSHA
        self.name = name
        self.conclusion = conclusion
    }
}

/// A control command (`cancel`, `retry`, `status`, `help`, or an unparseable one) for the executor.
public struct ControlRequest: Sendable, Hashable {
    public var origin: CommandOrigin
    public var verb: ControlVerb
    /// The text after the verb, or for `invalid` the problem found.
    public var argument: String

    public init(origin: CommandOrigin, verb: ControlVerb, argument: String) {
        self.origin = origin
        self.verb = verb
        self.argument = argument
    }
}

/// A change to a pull request the bot may have opened.
public struct PullRequestUpdate: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        case open, closed, merged, draft
    }

    public var githubPRID: Int64
    public var state: State
    public var title: String?
    public var body: String?
    public var mergedAt: String?
    public var closedAt: String?

    public init(githubPRID: Int64, state: State, title: String?, body: String?, mergedAt: String?, closedAt: String?) {
        self.githubPRID = githubPRID
        self.state = state
        self.title = title
        self.body = body
        self.mergedAt = mergedAt
        self.closedAt = closedAt
    }
}

/// A state change an event carries besides tasks.
public enum StateChange: Sendable, Hashable {
    /// An installation was created (or its permissions accepted): record it and its repositories.
    case installationCreated(InstallationSnapshot, repositories: [RepositorySnapshot])
    case installationDeleted(installationID: Int64)
    case installationSuspended(installationID: Int64)
    case installationUnsuspended(installationID: Int64)
    case repositoriesAdded(installation: InstallationSnapshot, repositories: [RepositorySnapshot])
    case repositoriesRemoved(installationID: Int64, repositoryIDs: [Int64])
    case pullRequestUpdated(PullRequestUpdate)
    /// A user revoked the App's authorization (`github_app_authorization` `revoked`): their tokens and sessions go.
    case userAuthorizationRevoked(userGitHubID: Int64)
}

/// Everything one verified delivery asks of the database: written in one transaction.
public struct DeliveryPlan: Sendable {
    /// The `X-GitHub-Delivery` GUID.
    public var deliveryID: String
    public var event: String
    public var action: String?
    public var installationID: Int64?
    public var repositoryID: Int64?
    /// The raw body, kept for audit and replay.
    public var payload: [UInt8]
    public var stateChanges: [StateChange]
    public var tasks: [TaskRequest]
    public var controls: [ControlRequest]
    /// Why nothing is to be done, when nothing is.
    public var ignoredReason: String?

    public init(
        deliveryID: String, event: String, action: String?, installationID: Int64?, repositoryID: Int64?,
        payload: [UInt8], stateChanges: [StateChange] = [], tasks: [TaskRequest] = [],
        controls: [ControlRequest] = [], ignoredReason: String? = nil
    ) {
        self.deliveryID = deliveryID
        self.event = event
        self.action = action
        self.installationID = installationID
        self.repositoryID = repositoryID
        self.payload = payload
        self.stateChanges = stateChanges
        self.tasks = tasks
        self.controls = controls
        self.ignoredReason = ignoredReason
    }

    /// Returns whether the delivery needs more than its own row.
    public var hasEffects: Bool { !stateChanges.isEmpty || !tasks.isEmpty || !controls.isEmpty }
}

/// What recording a delivery came to.
public enum DeliveryOutcome: Sendable, Hashable {
    /// Tasks (and control commands) were queued; their ids.
    case queued(taskIDs: [Int64], controlIDs: [Int64])
    /// State was updated but no work queued.
    case recorded
    /// The GUID was seen before; nothing changed.
    case duplicate
    /// Nothing to do for this delivery (its row is still written).
    case ignored(reason: String)

    /// The word stored in `webhook_deliveries.outcome` and answered to GitHub.
    public var label: String {
        switch self {
        case .queued: "queued"
        case .recorded: "recorded"
        case .duplicate: "duplicate"
        case .ignored: "ignored"
        }
    }
}
