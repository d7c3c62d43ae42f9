import Foundation
import Logging

/// Mints and caches installation tokens narrowed to one repository.
///
/// A token is cached per (installation, repository, permissions) until ``refreshMargin`` before its
/// `expires_at`; callers that arrive while a mint is in flight wait for that one request. Task tokens ask for
/// ``permissions``; a call that needs a permission an installation may not have granted (`checks`, `actions`)
/// asks for a token of its own with only that, so a refusal there never stops a task.
public actor InstallationTokenProvider {
    /// Mints a token: `(installationID, repositoryIDs, permissions)`.
    public typealias Minter = @Sendable (_ installationID: Int64, _ repositoryIDs: [Int64], _ permissions: [String: String]) async throws -> InstallationToken

    struct Key: Hashable {
        var installationID: Int64
        var repositoryID: Int64
        var permissions: [String: String]
    }

    private enum Entry {
        case ready(InstallationToken)
        case minting([CheckedContinuation<InstallationToken, any Error>])
    }

    /// The permissions every task token asks for.
    public static let taskPermissions: [String: String] = [
        "contents": "write", "issues": "write", "pull_requests": "write", "metadata": "read",
    ]

    private let mint: Minter
    private let clock: any GitHubClock
    /// The permissions requested for each token.
    public let permissions: [String: String]
    /// How long before `expires_at` a cached token is replaced.
    public let refreshMargin: Duration
    private var entries: [Key: Entry] = [:]
    /// How many tokens were minted (for tests and metrics).
    public private(set) var mintCount = 0

    /// Creates a provider that mints with `mint`.
    public init(
        permissions: [String: String] = InstallationTokenProvider.taskPermissions,
        refreshMargin: Duration = .seconds(5 * 60),
        clock: any GitHubClock = SystemGitHubClock(),
        mint: @escaping Minter
    ) {
        self.permissions = permissions
        self.refreshMargin = refreshMargin
        self.clock = clock
        self.mint = mint
    }

    /// Returns a live token for `repositoryID` in `installationID`, minting one if none is cached
    /// or the cached one expires within ``refreshMargin``.
    public func token(installationID: Int64, repositoryID: Int64) async throws -> InstallationToken {
        try await token(installationID: installationID, repositoryID: repositoryID, permissions: permissions)
    }

    /// Returns a live token for `repositoryID` in `installationID` with exactly `permissions`, cached apart
    /// from the task token.
    public func token(installationID: Int64, repositoryID: Int64, permissions: [String: String]) async throws -> InstallationToken {
        let key = Key(installationID: installationID, repositoryID: repositoryID, permissions: permissions)
        switch entries[key] {
        case .ready(let token) where token.expiresAt.timeIntervalSince(clock.now()) > refreshMargin.seconds:
            return token
        case .minting:
            return try await withCheckedThrowingContinuation { continuation in
                if case .minting(var waiters) = entries[key] {
                    waiters.append(continuation)
                    entries[key] = .minting(waiters)
                } else if case .ready(let token) = entries[key] {
                    continuation.resume(returning: token)
                } else {
                    continuation.resume(throwing: GitHubError(.transport, message: "installation token mint was abandoned"))
                }
            }
        default:
            entries[key] = .minting([])
            mintCount += 1
            do {
                let token = try await mint(installationID, [repositoryID], key.permissions)
                let waiters = takeWaiters(key)
                entries[key] = .ready(token)
                for waiter in waiters { waiter.resume(returning: token) }
                return token
            } catch {
                let waiters = takeWaiters(key)
                entries[key] = nil
                for waiter in waiters { waiter.resume(throwing: error) }
                throw error
            }
        }
    }

    /// Removes and returns the cached tokens of (installation, repository), whatever their permissions.
    public func removeTokens(installationID: Int64, repositoryID: Int64) -> [InstallationToken] {
        var removed: [InstallationToken] = []
        for (key, entry) in entries where key.installationID == installationID && key.repositoryID == repositoryID {
            guard case .ready(let token) = entry else { continue }
            entries[key] = nil
            removed.append(token)
        }
        return removed
    }

    /// Drops the cached token if it is still `token` (after GitHub rejected it).
    func invalidate(installationID: Int64, repositoryID: Int64, token: String) {
        for (key, entry) in entries where key.installationID == installationID && key.repositoryID == repositoryID {
            if case .ready(let cached) = entry, cached.token == token { entries[key] = nil }
        }
    }

    private func takeWaiters(_ key: Key) -> [CheckedContinuation<InstallationToken, any Error>] {
        if case .minting(let waiters) = entries[key] { return waiters }
        return []
    }
}
