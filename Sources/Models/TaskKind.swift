/// What a task asks the agent to do; stored as `tasks.kind`.
public enum TaskKind: String, Sendable, Codable, CaseIterable, Hashable {
    case code, ask, plan, review, docs, debug

    /// Returns whether a task of this kind ends in a pushed branch.
    public var pushesChanges: Bool {
        switch self {
        case .code, .docs, .debug: true
        case .ask, .plan, .review: false
        }
    }
}

/// Commands that steer tasks instead of starting one; stored in `control_commands.verb`.
public enum ControlVerb: String, Sendable, Codable, CaseIterable, Hashable {
    case cancel, retry, status, help
    /// A command that could not be parsed: the executor replies with the problem.
    case invalid
    /// A label added to an issue: the executor starts a task when it is the repository's trigger label.
    /// Never typed by users; the argument is the label's name.
    case label
}

/// A task's priority; higher runs first.
public enum TaskPriority: String, Sendable, Codable, CaseIterable, Hashable {
    case low, medium, high

    /// The value stored in `tasks.priority`.
    public var rank: Int32 {
        switch self {
        case .low: 1
        case .medium: 2
        case .high: 3
        }
    }
}

/// Where a command was written.
public enum CommandSource: String, Sendable, Codable, Hashable {
    /// An issue comment, on an issue or a pull request.
    case issueComment = "issue_comment"
    /// The body of a pull request review.
    case review = "pull_request_review"
    /// A comment on a line of a pull request's diff.
    case reviewComment = "pull_request_review_comment"
    /// The trigger label added to an issue.
    case label
    /// A failed CI run (`check_suite` or `workflow_run`) on the bot's own pull request, with `fixFailingCI` on.
    case ciFailure = "ci_failure"
}
