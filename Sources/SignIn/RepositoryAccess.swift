import AsyncHTTPClient
import Database
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// A repository a signed-in user may see, with the permission GitHub gives them there.
public struct AccessibleRepository: Sendable, Hashable {
    public var id: Int64
    public var githubID: Int64
    public var fullName: String
    public var isPrivate: Bool
    public var defaultBranch: String?
    public var htmlURL: String?
    /// `admin`, `maintain`, `write`, `triage` or `read`.
    public var permission: String

    /// Whether the permission lets the user push (start or cancel tasks).
    public var canPush: Bool { ["admin", "maintain", "write"].contains(permission) }
}

/// What each signed-in user may see, as GitHub says: the App's installations the user can reach
/// (`GET /user/installations`) and their repositories (`GET /user/installations/{id}/repositories`, every page),
/// read with the user's own token. The user's rows of `user_repository_access` are replaced in one transaction at
/// each sync; a sync older than ``maxAge`` is done again before it is used.
public struct RepositoryAccess: Sendable {
    let client: BoundedClient
    let settings: SignInSettings
    let http: HTTPClient
    let logger: Logger
    /// How long a sync is trusted.
    public var maxAge: Duration = .seconds(600)
    /// The most repositories read for one user (pages of 100).
    public var maxRepositories = 5000

    public init(client: PostgresClient, settings: SignInSettings, http: HTTPClient = .shared, logger: Logger) {
        self.client = BoundedClient(client, timeout: .seconds(60))
        self.settings = settings
        self.http = http
        self.logger = logger
    }

    /// Returns the user's repositories, syncing first when the last sync is older than ``maxAge`` (or `force`).
    public func repositories(accountID: Int64, token: @Sendable () async throws -> String?, force: Bool = false) async throws -> [AccessibleRepository] {
        try await refresh(accountID: accountID, token: token, force: force)
        return try await stored(accountID: accountID)
    }

    /// Syncs the user's rows when the last sync is older than ``maxAge`` (or `force`), without reading them: for
    /// the queries that join `user_repository_access` themselves.
    public func refresh(accountID: Int64, token: @Sendable () async throws -> String?, force: Bool = false) async throws {
        let stale = try await isStale(accountID: accountID)
        guard force || stale else { return }
        guard let userToken = try await token() else {
            throw SignInError(.refused, "GitHub holds no token for this user any more; sign in again")
        }
        try await sync(accountID: accountID, token: userToken)
    }

    /// Returns the permission the user has on a repository (by our id), or `nil` when they may not see it.
    public func permission(accountID: Int64, repositoryID: Int64, token: @Sendable () async throws -> String?) async throws -> AccessibleRepository? {
        try await repositories(accountID: accountID, token: token).first { $0.id == repositoryID }
    }

    private func isStale(accountID: Int64) async throws -> Bool {
        let rows = try await client.query("""
            SELECT access_synced_at IS NULL OR access_synced_at < now() - make_interval(secs => \(maxAge.inSeconds))
            FROM accounts WHERE id = \(accountID)
            """, logger: logger)
        for try await stale in rows.decode(Bool.self) { return stale }
        return true
    }

    /// Reads the user's installations and repositories from GitHub and replaces their rows.
    public func sync(accountID: Int64, token: String) async throws {
        var found: [GitHubRepositoryAccess] = []
        for installation in try await pages("/user/installations", token: token, key: "installations") {
            guard let installationID = (installation["id"] as? NSNumber)?.int64Value else { continue }
            let account = installation["account"] as? [String: Any]
            for repository in try await pages("/user/installations/\(installationID)/repositories", token: token, key: "repositories") {
                guard let access = GitHubRepositoryAccess(repository, installationID: installationID,
                                                          installationAccount: account?["login"] as? String) else { continue }
                found.append(access)
                if found.count >= maxRepositories { break }
            }
        }
        let logger = self.logger
        let repositories = found
        try await client.withTransaction(logger: logger) { connection in
            // One replacement per user at a time (two at once would interleave their deletes and inserts).
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockClass), (\(accountID) % 2147483647)::int4)", logger: logger)
            try await connection.query("DELETE FROM user_repository_access WHERE account_id = \(accountID)", logger: logger)
            for access in repositories {
                try await connection.query("""
                    WITH installation AS (
                        INSERT INTO installations (github_id) VALUES (\(access.installationID))
                        ON CONFLICT (github_id) DO UPDATE SET github_id = excluded.github_id RETURNING id
                    ), repository AS (
                        INSERT INTO repositories (github_id, installation_id, full_name, name, owner_login, private, default_branch, html_url,
                                                  clone_url, is_active)
                        SELECT \(access.githubID), installation.id, \(access.fullName), \(access.name), \(access.owner), \(access.isPrivate),
                               \(access.defaultBranch), \(access.htmlURL), \(access.cloneURL), true
                        FROM installation
                        ON CONFLICT (github_id) DO UPDATE SET full_name = excluded.full_name, name = excluded.name,
                            owner_login = excluded.owner_login, private = excluded.private,
                            default_branch = COALESCE(excluded.default_branch, repositories.default_branch),
                            html_url = COALESCE(excluded.html_url, repositories.html_url), updated_at = now()
                        RETURNING id
                    )
                    INSERT INTO user_repository_access (account_id, repository_id, access_level, checked_at)
                    SELECT \(accountID), repository.id, \(access.permission)::access_level, now() FROM repository
                    ON CONFLICT (account_id, repository_id) DO UPDATE SET access_level = excluded.access_level, checked_at = now()
                    RETURNING repository_id
                    """, logger: logger)
            }
            try await connection.query("UPDATE accounts SET access_synced_at = now() WHERE id = \(accountID)", logger: logger)
        }
        logger.debug("synced a user's repositories", metadata: ["user.accountID": "\(accountID)", "repositories": "\(found.count)"])
    }

    private func stored(accountID: Int64) async throws -> [AccessibleRepository] {
        let rows = try await client.query("""
            SELECT r.id, r.github_id, r.full_name, r.private, r.default_branch, r.html_url, u.access_level::text
            FROM user_repository_access u JOIN repositories r ON r.id = u.repository_id
            WHERE u.account_id = \(accountID) AND u.access_level <> 'none'
            ORDER BY lower(r.full_name)
            """, logger: logger)
        var repositories: [AccessibleRepository] = []
        for try await (id, githubID, name, isPrivate, branch, url, permission) in rows.decode((Int64, Int64, String, Bool, String?, String?, String).self) {
            repositories.append(AccessibleRepository(id: id, githubID: githubID, fullName: name, isPrivate: isPrivate, defaultBranch: branch,
                                                     htmlURL: url, permission: permission))
        }
        return repositories
    }

    /// Returns every item of a paged user-token listing (`per_page=100`, following the `Link` header's `next`).
    private func pages(_ path: String, token: String, key: String) async throws -> [[String: Any]] {
        var items: [[String: Any]] = []
        var url: String? = settings.apiURL + path + "?per_page=100"
        var pageCount = 0
        while let next = url, pageCount < 50 {
            pageCount += 1
            let request = GitHubOAuth.apiRequest(next, token: token, version: settings.version)
            let response: HTTPClientResponse
            let body: ByteBuffer
            do {
                response = try await http.execute(request, timeout: .seconds(30))
                body = try await response.body.collect(upTo: 16 * 1024 * 1024)
            } catch {
                throw SignInError(.githubUnavailable, "cannot reach GitHub (\(type(of: error)))")
            }
            if response.status.code == 401 { throw SignInError(.refused, "GitHub does not accept the user token any more") }
            guard response.status.code == 200,
                  let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                  let batch = object[key] as? [[String: Any]] else {
                throw SignInError(.githubUnavailable, "GitHub answered GET \(path) with \(response.status.code)")
            }
            items += batch
            url = Self.nextLink(response.headers.first(name: "link"))
            // Only GitHub's own address is followed.
            if let link = url, !link.hasPrefix(settings.apiURL + "/") { url = nil }
        }
        return items
    }

    /// The advisory lock class of a user's access replacement (with the account id as the second key).
    static let lockClass: Int32 = 20_020

    /// Returns the `rel="next"` address of a `Link` header.
    static func nextLink(_ header: String?) -> String? {
        guard let header else { return nil }
        for part in header.split(separator: ",") {
            let pieces = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard pieces.count >= 2, pieces.dropFirst().contains("rel=\"next\""), pieces[0].hasPrefix("<"), pieces[0].hasSuffix(">") else { continue }
            return String(pieces[0].dropFirst().dropLast())
        }
        return nil
    }
}

/// One repository of `GET /user/installations/{id}/repositories`, with the user's highest permission.
struct GitHubRepositoryAccess: Sendable {
    var githubID: Int64
    var installationID: Int64
    var fullName: String
    var name: String
    var owner: String
    var isPrivate: Bool
    var defaultBranch: String?
    var htmlURL: String?
    var cloneURL: String?
    var permission: String

    init?(_ object: [String: Any], installationID: Int64, installationAccount: String?) {
        guard let id = (object["id"] as? NSNumber)?.int64Value, let fullName = object["full_name"] as? String,
              let name = object["name"] as? String, let permissions = object["permissions"] as? [String: Any] else { return nil }
        func has(_ key: String) -> Bool { (permissions[key] as? Bool) == true }
        let permission: String
        if has("admin") { permission = "admin" } else if has("maintain") { permission = "maintain" } else if has("push") {
            permission = "write"
        } else if has("triage") { permission = "triage" } else if has("pull") { permission = "read" } else { return nil }
        githubID = id
        self.installationID = installationID
        self.fullName = fullName
        self.name = name
        owner = (object["owner"] as? [String: Any])?["login"] as? String ?? installationAccount ?? String(fullName.split(separator: "/").first ?? "")
        isPrivate = object["private"] as? Bool ?? true
        defaultBranch = object["default_branch"] as? String
        htmlURL = object["html_url"] as? String
        cloneURL = object["clone_url"] as? String
        self.permission = permission
    }
}
