/// One row of `task_events` as subscribers receive it: who may see it and its JSON, built once by the database
/// and shared by every stream that sends it.
public struct TaskEvent: Sendable, Hashable {
    /// The row's id, final in order (see ``EventLog``): the `id:` of a server-sent event.
    public var id: Int64
    public var kind: String
    public var taskID: Int64?
    /// The repository whose readers may see it (`nil` for a ledger entry).
    public var repositoryID: Int64?
    /// The account whose ledger it belongs to (`credits.updated` only).
    public var accountID: Int64?
    /// `{"id", "kind", "task_id", "repository_id", "at", "data"}`.
    public var json: String

    public init(id: Int64, kind: String, taskID: Int64?, repositoryID: Int64?, accountID: Int64?, json: String) {
        self.id = id
        self.kind = kind
        self.taskID = taskID
        self.repositoryID = repositoryID
        self.accountID = accountID
        self.json = json
    }
}

/// What a subscriber may see: events of the repositories it may read and the ledgers of the accounts it may see,
/// optionally of one task only.
public struct EventAudience: Sendable, Hashable {
    public var repositories: Set<Int64>
    public var accounts: Set<Int64>
    /// Only this task's events (its task page), when set.
    public var taskID: Int64?

    public init(repositories: Set<Int64>, accounts: Set<Int64>, taskID: Int64? = nil) {
        self.repositories = repositories
        self.accounts = accounts
        self.taskID = taskID
    }

    /// Whether the event is for this audience: a ledger entry by its account, anything else by its repository.
    public func allows(_ event: TaskEvent) -> Bool {
        if let taskID, event.taskID != taskID { return false }
        if event.kind == "credits.updated" { return event.accountID.map(accounts.contains) ?? false }
        return event.repositoryID.map(repositories.contains) ?? false
    }
}
