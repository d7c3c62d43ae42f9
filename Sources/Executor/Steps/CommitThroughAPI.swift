import Foundation
import GitHub
import Models

/// Part of ``Publish`` with `signedCommits`: makes the task's commit again through GitHub's Git Data API, so that
/// GitHub creates it as the App and signs it (Verified), and moves the branch to it, instead of a push.
///
/// The change set is the local commit's (the one the protected-path check saw), read from the bot's own git
/// directory, never from the checkout: a blob per added or changed file (links as links, binary as base64), the
/// same modes, deletions, one tree on the base commit's tree and the commit on the base commit. GitHub's tree
/// must be the local commit's tree, hash for hash, or nothing moves. A new task's branch is created (or replaced,
/// as a push would force it); a follow-up moves its pull request's branch forward only: when someone pushed in the
/// meantime, the commit is rebuilt once on the new head, and otherwise the task fails without overwriting.
struct CommitThroughAPI<API: GitHubAPI>: Sendable {
    /// The largest change set committed through the API: files and bytes of blobs.
    static var maxFiles: Int { 1000 }
    static var maxBytes: Int { 100 * 1024 * 1024 }

    enum Outcome {
        case committed(sha: String, verified: Bool)
        /// Over ``maxFiles`` or ``maxBytes``: nothing was sent.
        case tooLarge(files: Int, bytes: Int)
    }

    let api: API

    func callAsFunction(
        repo: RepositoryRef, workspace: GitWorkspace, commit local: String, message: String, author: CommitIdentity,
        plan: WorkPlan, token: String
    ) async throws -> Outcome {
        let base = try await workspace.resolve("\(local)^")
        let changes = try await workspace.treeChanges(from: base, to: local)
        guard changes.count <= Self.maxFiles else { return .tooLarge(files: changes.count, bytes: 0) }
        var entries: [TreeEntry] = []
        var bytes = 0
        for change in changes {
            if change.status == "D" || change.newMode == "000000" {
                entries.append(TreeEntry(path: change.path, mode: change.oldMode, sha: nil))
            } else if change.newMode == "160000" {
                entries.append(TreeEntry(path: change.path, mode: change.newMode, type: "commit", sha: change.newSHA))
            } else if change.oldSHA == change.newSHA {
                // Only the mode changed: the blob is already GitHub's.
                entries.append(TreeEntry(path: change.path, mode: change.newMode, sha: change.newSHA))
            } else {
                let content = try await workspace.blob(change.newSHA, limit: Self.maxBytes - bytes + 1)
                bytes += content.count
                guard bytes <= Self.maxBytes else { return .tooLarge(files: changes.count, bytes: bytes) }
                // One at a time: GitHub asks for a client's writes to come one after another (the client sends an
                // installation's writes in turn anyway).
                let sha = try await api.createBlob(in: repo, bytes: content)
                guard sha == change.newSHA else {
                    throw StepFailure(reason: "GitHub stored `\(change.path)` as blob \(sha.prefix(12)), not \(change.newSHA.prefix(12)); nothing was pushed",
                                      retryable: false)
                }
                entries.append(TreeEntry(path: change.path, mode: change.newMode, sha: sha))
            }
        }
        let localTree = try await workspace.resolve("\(local)^{tree}")
        let tree = try await api.createTree(in: repo, baseTree: try await workspace.resolve("\(base)^{tree}"), entries: entries)
        guard tree == localTree else {
            throw StepFailure(reason: "GitHub built tree \(tree.prefix(12)) from the change set, not \(localTree.prefix(12)); nothing was pushed",
                              retryable: false)
        }
        var made = try await api.createCommit(in: repo, message: message, tree: tree, parents: [base], author: author)
        if !plan.followUp {
            do {
                try await api.createBranchRef(in: repo, branch: plan.workBranch, sha: made.sha)
            } catch let error as GitHubError where error.status == 422 {
                // The branch is an earlier attempt's: replaced, as the push would force it.
                try await api.updateBranchRef(in: repo, branch: plan.workBranch, sha: made.sha, force: true)
            }
            return .committed(sha: made.sha, verified: made.verification?.verified ?? false)
        }
        do {
            try await api.updateBranchRef(in: repo, branch: plan.workBranch, sha: made.sha, force: false)
        } catch let error as GitHubError where error.status == 422 {
            // Someone pushed to the pull request's branch meanwhile: the same changes once more, on its new head.
            let head = try await workspace.fetchHead(url: plan.cloneURL, branch: plan.workBranch, token: token)
            let rebuilt = try await api.createTree(in: repo, baseTree: try await workspace.resolve("\(head)^{tree}"), entries: entries)
            made = try await api.createCommit(in: repo, message: message, tree: rebuilt, parents: [head], author: author)
            do {
                try await api.updateBranchRef(in: repo, branch: plan.workBranch, sha: made.sha, force: false)
            } catch let again as GitHubError where again.status == 422 {
                throw StepFailure(reason: "`\(plan.workBranch)` moved twice while asynccode committed to it; nothing was overwritten",
                                  retryable: false)
            }
        }
        return .committed(sha: made.sha, verified: made.verification?.verified ?? false)
    }

    /// Returns why a change set too large for the API could not be pushed either.
    static func tooLargeReason(files: Int, bytes: Int) -> String {
        let size = bytes > 0 ? ", \(bytes / (1024 * 1024)) MB so far" : ""
        return "the change set (\(files) files\(size)) is over what asynccode commits through GitHub's API (\(maxFiles) files "
            + "or \(maxBytes / (1024 * 1024)) MB), and the branch requires signed commits, so a push was refused; nothing was pushed"
    }
}
