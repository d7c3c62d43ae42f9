/// A GitHub user, bot or organization as a webhook describes it.
public struct AccountSnapshot: Sendable, Hashable, Codable {
    public var githubID: Int64
    public var login: String
    /// `User`, `Organization` or `Bot`.
    public var type: String
    public var avatarURL: String?

    public init(githubID: Int64, login: String, type: String, avatarURL: String?) {
        self.githubID = githubID
        self.login = login
        self.type = type
        self.avatarURL = avatarURL
    }
}

/// A repository as a webhook describes it; fields an event does not carry are `nil`.
public struct RepositorySnapshot: Sendable, Hashable, Codable {
    public var githubID: Int64
    public var fullName: String
    public var name: String
    public var ownerLogin: String
    public var description: String?
    public var isPrivate: Bool
    public var defaultBranch: String?
    public var language: String?
    public var htmlURL: String?
    public var cloneURL: String?
    /// The owner, when the event describes it (the account that pays when the installation's is unknown).
    public var owner: AccountSnapshot?

    public init(
        githubID: Int64, fullName: String, name: String, ownerLogin: String, description: String? = nil,
        isPrivate: Bool, defaultBranch: String? = nil, language: String? = nil, htmlURL: String? = nil,
        cloneURL: String? = nil, owner: AccountSnapshot? = nil
    ) {
        self.owner = owner
        self.githubID = githubID
        self.fullName = fullName
        self.name = name
        self.ownerLogin = ownerLogin
        self.description = description
        self.isPrivate = isPrivate
        self.defaultBranch = defaultBranch
        self.language = language
        self.htmlURL = htmlURL
        self.cloneURL = cloneURL
    }
}

/// An App installation as an `installation` event describes it.
public struct InstallationSnapshot: Sendable, Hashable, Codable {
    public var githubID: Int64
    public var account: AccountSnapshot
    /// `all` or `selected`.
    public var repositorySelection: String?

    public init(githubID: Int64, account: AccountSnapshot, repositorySelection: String?) {
        self.githubID = githubID
        self.account = account
        self.repositorySelection = repositorySelection
    }
}
