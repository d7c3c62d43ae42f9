import Models

/// Step 2: checks that the requester may write to the repository (GitHub's collaborator permission, cached
/// by ``AccessChecker``); anyone else's task ends "not permitted" before anything is read or run.
struct Authorize<API: GitHubAPI>: Sendable {
    let access: AccessChecker<API>
    let progress: TaskProgress<API>

    func callAsFunction(_ run: inout TaskRun) async throws {
        let record = run.record
        await progress.step(&run, "Checking @\(record.requesterLogin)'s permission")
        let level = try await access.accessLevel(
            accountID: record.requesterID, login: record.requesterLogin, repositoryID: record.repositoryID, repo: run.repo)
        if let refusal = Self.refusal(requester: record.requesterLogin, level: level) { throw refusal }
    }

    /// Returns the failure for a requester with `level` access, or `nil` when that level may write.
    static func refusal(requester: String, level: String) -> StepFailure? {
        guard !AccessChecker<API>.writeLevels.contains(level) else { return nil }
        return StepFailure(reason: "not permitted: @\(requester) has \(level) access", retryable: false, state: .notPermitted)
    }
}
