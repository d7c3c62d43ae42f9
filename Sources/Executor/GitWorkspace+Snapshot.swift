import Foundation
import Kubernetes

/// What a Kubernetes run of the agent is given and gives back (issue 22): the checkout as a git bundle, and the
/// agent's change as a patch applied to the bot's own checkout.
extension GitWorkspace {
    /// Writes the checkout as it is now (every file git would stage; nothing ignored) as one commit with no parent
    /// into a bundle at `path`, on the branch ``AgentJob/bundleBranch``; returns the commit. The same files give the
    /// same commit (a fixed author and date), so a worker taking a task over knows the Job an earlier one started.
    public func snapshotBundle(to path: String) async throws(GitError) -> String {
        let index = root + "/snapshot.index"
        // From a copy of the bot's index, so files unchanged since the clone are not read again.
        try? FileManager.default.removeItem(atPath: index)
        try? FileManager.default.copyItem(atPath: gitDirectory + "/index", toPath: index)
        let indexed = ["GIT_INDEX_FILE": index]
        try await git(["add", "--all", "--", "."], name: "add", environment: indexed)
        let tree = try await git(["write-tree"], name: "write-tree", environment: indexed).trimmingCharacters(in: .whitespacesAndNewlines)
        var fixed: [String: String] = [:]
        for role in ["AUTHOR", "COMMITTER"] {
            fixed["GIT_\(role)_NAME"] = "asynccode"
            fixed["GIT_\(role)_EMAIL"] = "asynccode@localhost"
            fixed["GIT_\(role)_DATE"] = "1700000000 +0000"
        }
        let commit = try await git(["commit-tree", tree, "-m", "The checkout as the agent starts on it"], name: "commit-tree",
                                   environment: fixed).trimmingCharacters(in: .whitespacesAndNewlines)
        let ref = "refs/heads/" + AgentJob.bundleBranch
        try await git(["update-ref", ref, commit], name: "update-ref")
        let bundled: Result<Void, GitError>
        do {
            try await git(["bundle", "create", "--quiet", path, ref], name: "bundle")
            bundled = .success(())
        } catch {
            bundled = .failure(error)
        }
        _ = try? await git(["update-ref", "-d", ref], name: "update-ref")
        try? FileManager.default.removeItem(atPath: index)
        try bundled.get()
        return commit
    }

    /// Applies the patch at `path` (`git diff --binary`, as an agent's pod uploads it) to the checkout's files.
    /// `git apply` refuses paths in `.git`, outside the checkout and beyond a symbolic link, the patch's own
    /// links included; the bot's repository is never touched.
    public func applyPatch(at path: String) async throws(GitError) {
        try await git(["apply", "--binary", "--whitespace=nowarn", "--", path], name: "apply")
    }
}
