import GitHub
import Models
import Queue

/// Step 5: decides where the work starts and where it goes (``WorkPlan``): the branch to clone, the base,
/// and the branch to push: the pull request's own for a follow-up, or a new `asynccode/<issue>-<slug>` one.
///
/// What can be refused without the code is refused here, before anything is cloned or run: `review` on an
/// issue, changes to a fork's branch, changes to a closed pull request.
struct PlanWork<API: GitHubAPI>: Sendable {
    let api: API
    let store: TaskStore

    func callAsFunction(_ run: inout TaskRun) async throws -> WorkPlan {
        var record = run.record
        if record.kind == .review, !record.isPullRequest {
            let reason = "`review` works on pull requests and this is an issue; ask for it on the pull request"
            throw StepFailure(reason: reason, retryable: false, state: .notStarted(reason: reason))
        }
        var cloneURL = record.cloneURL
        var defaultBranch = record.defaultBranch
        if cloneURL == nil || (defaultBranch == nil && record.targetBranch == nil && !record.isPullRequest) {
            let repository = try await api.repository(run.repo)
            cloneURL = cloneURL ?? repository.cloneUrl
            defaultBranch = defaultBranch ?? repository.defaultBranch
        }
        guard let cloneURL else { throw StepFailure(reason: "GitHub gave no clone URL for \(run.repo.fullName)", retryable: false) }
        let pushes = [.code, .docs, .debug].contains(record.kind)
        // A task started through the API names a number: GitHub says whether it is a pull request.
        if record.source == "api", record.hasIssue, !record.isPullRequest,
           try await api.issue(number: Int(record.issueNumber), in: run.repo).pullRequest != nil {
            run.record.isPullRequest = true
            record.isPullRequest = true
        }
        if record.isPullRequest {
            let pull = try await api.pullRequest(number: Int(record.issueNumber), in: run.repo)
            let sameRepository = pull.head.label.map { $0.lowercased().hasPrefix(run.repo.owner.lowercased() + ":") } ?? true
            if pushes, !sameRepository {
                // Policy: commits go to branches of this repository only, never to a fork's (README, "Follow-ups").
                let owner = pull.head.label?.split(separator: ":").first.map { "`\($0)`'s fork" } ?? "a fork"
                let reason = "asynccode cannot push to forks: this pull request's branch is in \(owner). "
                    + "`ask`, `plan` and `review` work here; for changes, ask on an issue or on a pull request from a branch of "
                    + "\(run.repo.fullName)"
                throw StepFailure(reason: reason, retryable: false, state: .notStarted(reason: reason))
            }
            if pushes, pull.state != "open" {
                throw StepFailure(reason: "the pull request is \(pull.state); reopen it first", retryable: false)
            }
            return WorkPlan(cloneURL: cloneURL, cloneBranch: sameRepository ? pull.head.ref : pull.base.ref,
                            baseBranch: pull.base.ref, workBranch: pull.head.ref, followUp: true, pullNumber: pull.number,
                            pullURL: pull.htmlUrl, pushes: pushes)
        }
        let base = record.targetBranch ?? defaultBranch ?? "main"
        var branch = record.prBranch
        if branch == nil, pushes {
            // Without an issue the branch is named after the task: `<prefix>t<task>-<slug>`.
            var candidate = record.hasIssue
                ? Self.branchName(prefix: run.config.branchPrefix, issueNumber: record.issueNumber, text: record.prompt)
                : Self.branchName(prefix: run.config.branchPrefix + "t", issueNumber: record.id, text: record.prompt)
            if try await store.isBranchTaken(repositoryID: record.repositoryID, branch: candidate, exceptTaskID: record.id) {
                candidate += "-t\(record.id)"
            }
            branch = try await store.assignBranch(taskID: record.id, branch: candidate)
        }
        return WorkPlan(cloneURL: cloneURL, cloneBranch: base, baseBranch: base, workBranch: branch ?? base,
                        followUp: false, pullNumber: nil, pullURL: nil, pushes: pushes)
    }

    /// Returns `<prefix><issue>-<slug>` (prefix `asynccode/` by default) with a slug of the instruction's first words.
    static func branchName(prefix: String = "asynccode/", issueNumber: Int64, text: String) -> String {
        var slug = ""
        var lastWasDash = true
        for scalar in text.lowercased().unicodeScalars {
            if slug.count >= 40 { break }
            if ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) {
                slug.unicodeScalars.append(scalar)
                lastWasDash = false
            } else if !lastWasDash {
                slug.append("-")
                lastWasDash = true
            }
        }
        while slug.hasSuffix("-") { slug.removeLast() }
        return "\(prefix)\(issueNumber)" + (slug.isEmpty ? "" : "-\(slug)")
    }
}
