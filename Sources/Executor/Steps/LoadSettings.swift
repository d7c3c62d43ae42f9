import GitHub
import Models
import Queue
import RepositoryConfiguration

/// Step 3: reads the repository's `.github/asynccode.yml` into ``TaskRun/config`` (an invalid file gets one
/// comment naming the problem, and the defaults apply), refuses when asynccode is turned off there, and
/// chooses the agent: the one asked for, or the repository's or the operator's default, if allowed.
struct LoadSettings<API: GitHubAPI>: Sendable {
    let api: API
    let store: TaskStore
    let configs: RepositoryConfigLoader<API>
    let catalog: AgentCatalog

    /// Returns the agent that runs the task, and names it in the report and the `tasks` row.
    func callAsFunction(_ run: inout TaskRun) async throws -> AgentCommand {
        let record = run.record
        let config = try await repositoryConfig(&run)
        run.config = config
        guard config.enabled else {
            let reason = "asynccode is turned off in this repository (`enabled: false` in `\(RepositoryConfiguration.path)`)"
            throw StepFailure(reason: reason, retryable: false, state: .notStarted(reason: reason))
        }
        let agent = try Self.agent(named: record.agent ?? config.defaultAgent, in: catalog, allowed: config.allowedAgents).get()
        run.report.agent = agent.name
        // The tasks row names the agent that runs, the default one included (`status`, analytics).
        if record.agent != agent.name {
            try await store.recordAgent(taskID: record.id, agent: agent.name)
            run.record.agent = agent.name
        }
        return agent
    }

    /// Returns the agent named `requested` (the catalog's default for `nil`) when the repository allows it.
    static func agent(named requested: String?, in catalog: AgentCatalog, allowed: [String]?) -> Result<AgentCommand, StepFailure> {
        guard let agent = catalog.agent(named: requested) else {
            let known = catalog.names.compactMap { catalog.agents[$0] }
                .map { "`\($0.name)`" + ($0.displayName == $0.name ? "" : " (\($0.displayName))") }.joined(separator: ", ")
            let reason = requested.map { "there is no agent `\($0)`; the agents are: \(known.isEmpty ? "none" : known)" }
                ?? "no agent is configured (set `agents` and `defaultAgent` in the ASYNCCODE_CONFIG file)"
            return .failure(StepFailure(reason: reason, retryable: false))
        }
        if let allowed, !allowed.contains(where: { $0.lowercased() == agent.name.lowercased() }) {
            return .failure(StepFailure(
                reason: "agent `\(agent.name)` is not allowed in this repository (`allowedAgents` in `\(RepositoryConfiguration.path)`: "
                    + allowed.map { "`\($0)`" }.joined(separator: ", ") + ")", retryable: false))
        }
        return .success(agent)
    }

    /// Reads the repository's `.github/asynccode.yml`; an invalid file gets one comment on the thread (per
    /// commit) that names the line and the problem, and the defaults apply.
    private func repositoryConfig(_ run: inout TaskRun) async throws -> RepositoryConfiguration {
        let record = run.record
        var branch = record.defaultBranch
        if branch == nil { branch = try await api.repository(run.repo).defaultBranch }
        let loaded = try await configs.load(repositoryID: record.repositoryID, repo: run.repo, branch: branch ?? "main")
        if let problem = loaded.problem {
            run.report.record("`\(RepositoryConfiguration.path)` is invalid (\(problem)); using the defaults", .failed)
            if record.hasIssue, (try? await store.claimConfigWarning(
                repositoryID: record.repositoryID, commit: loaded.commit, issueNumber: record.issueNumber)) == true {
                let body = Self.configWarning(problem, commit: loaded.commit, repo: run.repo)
                do {
                    _ = try await api.createComment(in: run.repo, issueNumber: Int(record.issueNumber), body: body)
                } catch {
                    try? await store.releaseConfigWarning(
                        repositoryID: record.repositoryID, commit: loaded.commit, issueNumber: record.issueNumber)
                }
            }
        }
        return loaded.configuration
    }

    /// Returns the comment about an invalid `.github/asynccode.yml`.
    static func configWarning(_ problem: RepositoryConfigurationError, commit: String, repo: RepositoryRef) -> String {
        """
        ⚠️ **asynccode**: `\(RepositoryConfiguration.path)` at \(commit.prefix(7)) cannot be used: \(problem).

        asynccode goes on with the default settings until the file on the default branch is fixed.
        """
    }
}
