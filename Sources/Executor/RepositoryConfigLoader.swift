import Foundation
import GitHub
import Logging
import Queue
import RepositoryConfiguration

/// A repository's `.github/asynccode.yml` as it stands on the default branch.
public struct LoadedRepositoryConfig: Sendable {
    /// The settings: the file's, or the defaults when there is no file or it is invalid.
    public var configuration: RepositoryConfiguration
    /// The default branch's commit it was read at.
    public var commit: String
    /// Why the file could not be used (the defaults apply then).
    public var problem: RepositoryConfigurationError?
}

/// Reads `.github/asynccode.yml` through the contents API at the default branch's head commit, cached per
/// commit in `repository_configs`: one small ref lookup per task while the branch does not move.
public struct RepositoryConfigLoader<API: GitHubAPI>: Sendable {
    let api: API
    let store: TaskStore
    let logger: Logger

    public init(api: API, store: TaskStore, logger: Logger) {
        self.api = api
        self.store = store
        self.logger = logger
    }

    /// Returns the repository's settings at the head of `branch`.
    ///
    /// - Throws: GitHub's errors (the caller retries transient ones); an invalid file is not an error.
    public func load(repositoryID: Int64, repo: RepositoryRef, branch: String) async throws -> LoadedRepositoryConfig {
        let commit: String
        do {
            commit = try await api.branchHead(branch, in: repo)
        } catch where !isTransient(error) {
            // A server without the branch lookup (or a branch it cannot name): read the file at the branch
            // itself, uncached.
            logger.debug("cannot look up the default branch's head; reading the settings uncached", metadata: [
                "repo.fullName": "\(repo.fullName)", "error": "\(error)",
            ])
            let content = (try? await fetch(repo: repo, ref: branch)) ?? nil
            return parse(content, commit: branch, repo: repo)
        }
        let content: String?
        if let cached = try? await store.cachedRepositoryConfig(repositoryID: repositoryID, commit: commit) {
            content = cached
        } else {
            do {
                content = try await fetch(repo: repo, ref: commit)
            } catch where !isTransient(error) {
                // Refused (a missing permission, say): the defaults, and no cache so a fix is seen at once.
                logger.debug("cannot read the repository's settings", metadata: ["repo.fullName": "\(repo.fullName)", "error": "\(error)"])
                return parse(nil, commit: commit, repo: repo)
            }
            try? await store.saveRepositoryConfig(repositoryID: repositoryID, commit: commit, content: content)
        }
        return parse(content, commit: commit, repo: repo)
    }

    /// Marks a file the parser must refuse with `problem` as is (not YAML).
    static var unusableMarker: String { "\u{1}asynccode-unusable:" }

    private func parse(_ content: String?, commit: String, repo: RepositoryRef) -> LoadedRepositoryConfig {
        guard let content else { return LoadedRepositoryConfig(configuration: RepositoryConfiguration(), commit: commit) }
        if content.hasPrefix(Self.unusableMarker) {
            let problem = RepositoryConfigurationError(problem: String(content.dropFirst(Self.unusableMarker.count)))
            return LoadedRepositoryConfig(configuration: RepositoryConfiguration(), commit: commit, problem: problem)
        }
        do {
            return LoadedRepositoryConfig(configuration: try RepositoryConfiguration.parse(content), commit: commit)
        } catch {
            logger.debug("invalid repository configuration", metadata: ["repo.fullName": "\(repo.fullName)", "error": "\(error)"])
            return LoadedRepositoryConfig(configuration: RepositoryConfiguration(), commit: commit, problem: error)
        }
    }

    /// Returns the file's text at `ref`, `nil` when there is none; a file that cannot be settings (a folder,
    /// over the size limit, not UTF-8) comes back marked with its problem, so the cache keeps that too.
    private func fetch(repo: RepositoryRef, ref: String) async throws -> String? {
        guard let file = try await api.fileContents(at: RepositoryConfiguration.path, ref: ref, in: repo) else { return nil }
        guard file.type == "file" else { return Self.unusableMarker + "it is a \(file.type), not a file" }
        if let size = file.size, size > RepositoryConfiguration.maxBytes {
            return Self.unusableMarker + "the file is over \(RepositoryConfiguration.maxBytes / 1024) KB"
        }
        guard let data = file.decodedContent else { return Self.unusableMarker + "GitHub sent the file in an unknown encoding" }
        guard let text = String(data: data, encoding: .utf8) else { return Self.unusableMarker + "the file is not UTF-8 text" }
        return text
    }
}
