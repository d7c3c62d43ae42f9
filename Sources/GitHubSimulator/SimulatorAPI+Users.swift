import Foundation
import OpenSSLCrypto

/// `GET /users/{username}`: the accounts the simulator knows of, Apps' bots among them.
extension SimulatorAPI {
    /// The user id GitHub gives `github-actions[bot]`.
    static let actionsBotUserID: Int64 = 41_898_282

    /// Answers without credentials, with an installation token, a user access token or an App JWT, as GitHub
    /// does; credentials that are none of these (or dead) get 401.
    func getUser(_ login: String, headers: [String: String]) -> SimResponse {
        if let authorization = headers["authorization"] {
            guard let token = bearerToken(authorization) else { return .message(401, "Bad credentials") }
            let now = configuration.clock()
            let liveToken = store.withState { state -> Bool in
                if let issued = state.tokens[token] { return !issued.revoked && issued.expiresAt > now }
                let userToken = state.userTokens.last { $0.accessToken == token }
                return userToken?.isLive(at: now) ?? false
            }
            if !liveToken, case .failure = verifyJWT("Bearer \(token)") { return .message(401, "Bad credentials") }
        }
        guard let user = store.withState({ $0.knownUser(login) }) else { return .notFound }
        return .json(200, publicUserJSON(user))
    }

    func publicUserJSON(_ user: KnownUser) -> [String: Any] {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))
        let url = "\(base)/users/\(user.login.addingPercentEncoding(withAllowedCharacters: allowed) ?? user.login)"
        let created = "2011-01-25T18:44:36Z"
        return [
            "login": user.login, "id": user.id, "node_id": (user.isBot ? "BOT_" : "U_") + String(user.id), "type": user.isBot ? "Bot" : "User",
            "avatar_url": user.appID.map { "https://avatars.githubusercontent.com/in/\($0)?v=4" } ?? "https://avatars.githubusercontent.com/u/\(user.id)?v=4",
            "gravatar_id": "", "url": url,
            "html_url": user.appSlug.map { "\(base)/apps/\($0)" } ?? "\(base)/\(user.login)",
            "followers_url": "\(url)/followers", "following_url": "\(url)/following{/other_user}", "gists_url": "\(url)/gists{/gist_id}",
            "starred_url": "\(url)/starred{/owner}{/repo}", "subscriptions_url": "\(url)/subscriptions",
            "organizations_url": "\(url)/orgs", "repos_url": "\(url)/repos", "events_url": "\(url)/events{/privacy}",
            "received_events_url": "\(url)/received_events", "site_admin": false,
            "name": NSNull(), "company": NSNull(), "blog": "", "location": NSNull(), "email": NSNull(), "hireable": NSNull(),
            "bio": NSNull(), "twitter_username": NSNull(), "public_repos": 0, "public_gists": 0, "followers": 0, "following": 0,
            "created_at": created, "updated_at": created,
        ]
    }
}

/// An account `GET /users/{username}` finds.
struct KnownUser {
    var login: String
    var id: Int64
    var isBot: Bool
    /// For an App's bot: the App.
    var appID: Int64? = nil
    var appSlug: String? = nil
}

extension SimulatorStore.State {
    /// The account named `login` (any case), if the simulator has seen it: Apps' bots, repository owners and
    /// collaborators, installation accounts, and the authors of issues, comments, pull requests, reviews and reactions.
    func knownUser(_ login: String) -> KnownUser? {
        let wanted = login.lowercased()
        if let app = apps.values.first(where: { $0.botLogin.lowercased() == wanted }) {
            return KnownUser(login: app.botLogin, id: app.botUserID, isBot: true, appID: app.id, appSlug: app.slug)
        }
        if wanted == "\(SimulatorAPI.actionsApp.slug)[bot]" {
            return KnownUser(login: wanted, id: SimulatorAPI.actionsBotUserID, isBot: true,
                             appID: SimulatorAPI.actionsApp.id, appSlug: SimulatorAPI.actionsApp.slug)
        }
        var logins = Array(knownUsers)
        for repository in repositories.values { logins += [repository.owner] + repository.collaborators.keys }
        logins += installations.values.map(\.account)
        logins += issues.values.flatMap { $0.values.map(\.author) }
        logins += comments.values.map(\.author)
        logins += pullRequests.values.flatMap { $0.values.flatMap { [$0.author] + $0.requestedReviewers } }
        logins += reviews.map(\.author) + reactions.map(\.user)
        guard let found = logins.first(where: { $0.lowercased() == wanted }) else { return nil }
        return KnownUser(login: found, id: Self.stableUserID(found), isBot: found.hasSuffix("[bot]"))
    }

    /// A user id that stays the same for a login across runs.
    static func stableUserID(_ login: String) -> Int64 {
        let digest = SHA256Digest.hash(Array(login.lowercased().utf8))
        return Int64(digest.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) } % 90_000_000) + 1_000_000
    }
}
