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
        let commit = try await api.branchHead(branch, in: repo)
        let content: String?
        if let cached = try? await store.cachedRepositoryConfig(repositoryID: repositoryID, commit: commit) {
            content = cached
        } else {
            content = try await fetch(repo: repo, commit: commit)
            try? await store.saveRepositoryConfig(repositoryID: repositoryID, commit: commit, content: content)
        }
        guard let content else { return LoadedRepositoryConfig(configuration: RepositoryConfiguration(), commit: commit) }
        do {
            return LoadedRepositoryConfig(configuration: try RepositoryConfiguration.parse(content), commit: commit)
        } catch {
            logger.debug("invalid repository configuration", metadata: ["repo.fullName": "\(repo.fullName)", "error": "\(error)"])
            return LoadedRepositoryConfig(configuration: RepositoryConfiguration(), commit: commit, problem: error)
        }
    }

    /// Returns the file's text at `commit`, `nil` when there is none; a file too large or not UTF-8 comes
    /// back as text the parser refuses with a clear problem.
    private func fetch(repo: RepositoryRef, commit: String) async throws -> String? {
        guard let file = try await api.fileContents(at: RepositoryConfiguration.path, ref: commit, in: repo) else { return nil }
        guard file.type == "file" else { return "# .github/asynccode.yml is a \(file.type), not a file\n!invalid" }
        if let size = file.size, size > RepositoryConfiguration.maxBytes {
            return String(repeating: "#", count: RepositoryConfiguration.maxBytes + 1)
        }
        guard let data = file.decodedContent else { return "" }
        guard let text = String(data: data, encoding: .utf8) else { return "!invalid: the file is not UTF-8 text" }
        return text
    }
}
