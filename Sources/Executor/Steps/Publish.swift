import Foundation
import GitHub
import Models
import Queue
import RepositoryConfiguration

/// Step 8 for the tasks that change code: turns what the agent left in the checkout into a commit on the work
/// branch and a pull request (or a push to the follow-up's pull request).
///
/// Nothing the agent left under a `.git` is read: its repositories are discarded first, and the bot's own git
/// directory, which the agent never saw, stages the checkout's files against the commit the bot checked out.
/// A change to a protected path pushes nothing; no change pushes nothing and opens no pull request. Checks
/// still failing (``TaskRun/failingChecks``, with `onChecksFailing: draft`) make the pull request a draft that
/// lists them. With `signedCommits` the commit is made on GitHub through its API (``CommitThroughAPI``) instead of
/// pushed, so GitHub signs it as the App; the author is the App's bot account either way (``BotIdentity``).
struct Publish<API: GitHubAPI>: Sendable {
    let api: API
    let store: TaskStore
    let settings: ExecutorSettings
    let progress: TaskProgress<API>
    let identity: BotIdentity
    let commitThroughAPI: CommitThroughAPI<API>

    func callAsFunction(_ run: inout TaskRun, _ answer: AgentAnswer, plan: WorkPlan, in prepared: PreparedWorkspace) async throws {
        let record = run.record
        let workspace = prepared.git
        let summary = answer.summary
        await progress.step(&run, "Committing the changes")
        let discarded = try await workspace.discardAgentRepositories()
        if !discarded.isEmpty {
            run.logger.info("removed what the agent left under .git", metadata: [
                "workspace.removed": "\(discarded.prefix(20).joined(separator: ", "))", "workspace.removedCount": "\(discarded.count)"])
        }
        let files = try await workspace.stageAll()
        run.files = files
        let protected = run.config.protectedChanges(in: files.map(\.path))
        if !protected.isEmpty {
            throw StepFailure(reason: Self.protectedPathsReason(protected), retryable: false, agentsFault: true)
        }
        if files.isEmpty {
            run.report.finishRunning(.skipped)
            run.report.details = "The agent changed nothing, so there is nothing to push"
                + (plan.followUp ? "." : " and no pull request.")
                + (summary.isEmpty ? "" : "\n\n**Agent's summary**\n\n" + summary)
                + Self.verification(rounds: run.agentRounds, failing: run.failingChecks)
            await remember(run, summary)
            return
        }
        let title = Self.title(instruction: record.prompt, issueTitle: answer.issueTitle)
        let diffStat = try await workspace.stagedDiffStat()
        let patch = SecretRedactor.redact(try await workspace.stagedPatch(limit: settings.patchLimit),
                                          also: [prepared.token] + settings.secretValues.values)
        let message = Self.commitMessage(title: title, record: record)
        let author = await identity.author(api: api, repo: run.repo, settings: settings, logger: run.logger)
        var hash = try await workspace.commit(message: message, authorName: author.name, authorEmail: author.email)
        let filesJSON = (try? String(decoding: JSONEncoder().encode(files), as: UTF8.self)) ?? "[]"
        if run.cancelRequested.isSet { throw CancelledOnRequest() }
        hash = try await deliver(&run, commit: hash, message: message, author: author, plan: plan, in: prepared)
        run.pushedCommit = hash
        try await store.recordCommit(taskID: record.id, commit: CommitRecord(
            hash: hash, branch: plan.workBranch, diffStat: diffStat, patch: patch, changedFilesJSON: filesJSON))
        var pullNumber = plan.pullNumber
        var pullURL = plan.pullURL
        if !plan.followUp {
            let pull = try await openPullRequest(&run, title: title, summary: summary, plan: plan)
            pullNumber = pull.number
            pullURL = pull.htmlUrl
        } else if let pullNumber {
            try? await store.recordPullRequestLink(taskID: record.id, number: Int64(pullNumber), url: pullURL)
        }
        let link = pullNumber.map { number in pullURL.map { "[#\(number)](\($0))" } ?? "#\(number)" } ?? "`\(plan.workBranch)`"
        let duration = ProgressReport.duration(seconds: (ContinuousClock.now - run.started).inSeconds)
        run.report.details = Self.details(
            pushed: plan.followUp ? String(hash.prefix(7)) : nil, link: link, files: files, duration: duration,
            agent: run.report.agent ?? "", summary: summary) + Self.verification(rounds: run.agentRounds, failing: run.failingChecks)
        await remember(run, summary)
    }

    /// Puts the local commit on GitHub: pushed, or with `signedCommits` made again through GitHub's API (signed as
    /// the App; a change set too large for the API is pushed where the branch takes unsigned commits). Returns the
    /// commit now at the head of the work branch.
    private func deliver(
        _ run: inout TaskRun, commit hash: String, message: String, author: CommitIdentity, plan: WorkPlan, in prepared: PreparedWorkspace
    ) async throws -> String {
        let workspace = prepared.git
        let token = prepared.token
        let cancel = run.cancelRequested
        func push() async throws {
            try await cancellable(cancel) {
                try await workspace.push(url: plan.cloneURL, branch: plan.workBranch, token: token, force: !plan.followUp)
            }
        }
        guard run.config.signedCommits ?? settings.signedCommits else {
            await progress.step(&run, "Pushing `\(plan.workBranch)`")
            do {
                try await push()
            } catch let error as GitError where Self.refusedUnsigned(error) {
                throw StepFailure(reason: "GitHub refused the push: `\(plan.workBranch)` requires signed commits (\(error.message)); "
                    + "set `signedCommits: true` in `.github/asynccode.yml` to have GitHub sign the bot's commits", retryable: false)
            }
            return hash
        }
        await progress.step(&run, "Committing to `\(plan.workBranch)` through GitHub's API (signed by GitHub)")
        switch try await commitThroughAPI(repo: run.repo, workspace: workspace, commit: hash, message: message, author: author,
                                          plan: plan, token: token) {
        case .committed(let sha, let verified):
            run.logger.info("committed through GitHub's API", metadata: ["git.commit": "\(sha)", "git.verified": "\(verified)"])
            return sha
        case .tooLarge(let files, let bytes):
            run.report.record("The change set is too large for GitHub's API (\(files) files): pushing it, unsigned", .skipped)
            do {
                try await push()
            } catch let error as GitError where Self.refusedUnsigned(error) {
                throw StepFailure(reason: CommitThroughAPI<API>.tooLargeReason(files: files, bytes: bytes), retryable: false)
            }
            return hash
        }
    }

    /// Returns whether a push failed because the branch takes only signed commits (GitHub's GH006).
    static func refusedUnsigned(_ error: GitError) -> Bool {
        error.message.contains("verified signatures") || error.message.contains("GH006")
    }

    /// Opens the pull request (or takes the one already open from the branch), asks for reviews and records it.
    private func openPullRequest(_ run: inout TaskRun, title: String, summary: String, plan: WorkPlan) async throws -> PullRequest {
        let record = run.record
        await progress.step(&run, "Opening the pull request")
        let body = Self.pullRequestBody(summary: summary, record: record, files: run.files, agent: run.report.agent ?? "",
                                        rounds: run.agentRounds, failing: run.failingChecks)
        let existing = try await api.openPullRequests(in: run.repo, head: "\(run.repo.owner):\(plan.workBranch)")
        let pull: PullRequest
        if let reused = existing.first {
            pull = reused
        } else {
            pull = try await api.openPullRequest(in: run.repo, title: title, head: plan.workBranch, base: plan.baseBranch,
                                                 body: body, draft: run.config.draft || !run.failingChecks.isEmpty)
            for reviewer in Self.reviewers(requester: record.requesterLogin, configured: run.config.reviewers) {
                do {
                    try await api.requestReview(in: run.repo, pullNumber: pull.number, from: reviewer)
                } catch {
                    run.logger.debug("cannot request a review", metadata: ["error": "\(error)", "reviewer": "\(reviewer)"])
                }
            }
        }
        try await store.recordPullRequest(
            taskID: record.id, repositoryID: record.repositoryID, githubID: pull.id, number: Int64(pull.number),
            title: pull.title, body: pull.body, sourceBranch: plan.workBranch, targetBranch: plan.baseBranch, url: pull.htmlUrl)
        return pull
    }

    private func remember(_ run: TaskRun, _ summary: String) async {
        try? await store.appendChatMessage(taskID: run.record.id, ChatMessage(role: "assistant", content: summary, author: "asynccode"))
    }
}
