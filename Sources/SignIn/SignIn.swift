import Database
import Foundation
import Logging
import PostgresNIO

/// "Sign in with GitHub", start to end: ``begin()`` records a state and returns where to send the browser;
/// ``complete(code:state:cookie:)`` checks the state against the browser's cookie, exchanges the code (PKCE),
/// reads who signed in, records the account and its tokens (encrypted) and opens a session.
public struct SignIn: Sendable {
    public let settings: SignInSettings
    public let states: OAuthStates
    public let sessions: Sessions
    public let tokens: UserTokens
    public let oauth: GitHubOAuth
    /// The database the sign-in records go to.
    public let client: BoundedClient
    let logger: Logger

    public init(settings: SignInSettings, client: PostgresClient, logger: Logger) {
        self.settings = settings
        states = OAuthStates(client: client, keys: settings.keys, lifetime: settings.stateLifetime, logger: logger)
        sessions = Sessions(client: client, idle: settings.sessionIdle, lifetime: settings.sessionLifetime, logger: logger)
        tokens = UserTokens(client: client, keys: settings.keys, refreshMargin: settings.refreshMargin, logger: logger)
        oauth = GitHubOAuth(settings: settings)
        self.client = BoundedClient(client)
        self.logger = logger
    }

    /// Starts a sign-in: returns GitHub's authorize address and the state for the browser's cookie.
    public func begin() async throws -> (redirect: String, state: String) {
        let begun = try await states.begin()
        return (oauth.authorizeURL(state: begun.state, challenge: begun.challenge), begun.state)
    }

    /// Finishes a sign-in; returns the new session's cookie value, the user and their GitHub token.
    public func complete(code: String?, state: String?, cookie: String?) async throws -> (session: String, user: SignedInUser, token: String) {
        let verifier = try await states.consume(state: state, cookie: cookie)
        guard let code, !code.isEmpty, code.utf8.count <= 256 else {
            throw SignInError(.refused, "GitHub sent no code back; start again at /login")
        }
        let grant = try await oauth.exchange(code: code, verifier: verifier)
        let account = try await oauth.user(token: grant.accessToken)
        let accountID = try await upsert(account)
        try await tokens.store(accountID: accountID, grant: grant)
        let session = try await sessions.open(accountID: accountID)
        logger.info("signed in", metadata: ["user.login": "\(account.login)", "user.accountID": "\(accountID)"])
        return (session, SignedInUser(accountID: accountID, githubID: account.id, login: account.login, displayName: nil,
                                      avatarURL: account.avatarURL), grant.accessToken)
    }

    /// Returns the user a GitHub user token belongs to (asked of GitHub), recording the account.
    public func account(forToken token: String) async throws -> SignedInUser {
        let account = try await oauth.user(token: token)
        let accountID = try await upsert(account)
        let rows = try await client.query("SELECT display_name FROM accounts WHERE id = \(accountID)", logger: logger)
        var name: String?
        for try await value in rows.decode(String?.self) { name = value }
        return SignedInUser(accountID: accountID, githubID: account.id, login: account.login, displayName: name, avatarURL: account.avatarURL)
    }

    /// Ends every session of the GitHub user and forgets their tokens (they revoked the App); returns how many
    /// sessions ended.
    @discardableResult
    public func forget(githubID: Int64) async throws -> Int {
        let rows = try await client.query("SELECT id FROM accounts WHERE github_id = \(githubID)", logger: logger)
        var ended = 0
        for try await accountID in rows.decode(Int64.self) {
            try await tokens.delete(accountID: accountID)
            ended += try await sessions.endAll(accountID: accountID)
        }
        return ended
    }

    /// Sets the user's display name (`nil` or empty: none).
    public func setDisplayName(_ name: String?, accountID: Int64) async throws {
        let trimmed = name?.trimmingCharacters(in: .whitespacesAndNewlines)
        try await client.query("""
            UPDATE accounts SET display_name = \(trimmed?.isEmpty == false ? trimmed : nil), updated_at = now() WHERE id = \(accountID)
            """, logger: logger)
    }

    private func upsert(_ account: GitHubAccount) async throws -> Int64 {
        let rows = try await client.query("""
            INSERT INTO accounts (github_id, login, type, avatar_url) VALUES (\(account.id), \(account.login), \(account.type ?? "User"), \(account.avatarURL))
            ON CONFLICT (github_id) DO UPDATE SET login = excluded.login, avatar_url = excluded.avatar_url, updated_at = now()
            RETURNING id
            """, logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        throw SignInError(.githubUnavailable, "the account could not be recorded")
    }
}
