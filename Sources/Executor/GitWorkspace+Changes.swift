/// A path a commit changed, as git records it: what the Git Data API needs to build the same commit.
public struct TreeChange: Sendable, Hashable {
    public var path: String
    /// Modes as git writes them: `100644`, `100755`, `120000` (a link), `160000` (a submodule), `000000` (none).
    public var oldMode: String
    public var newMode: String
    public var oldSHA: String
    public var newSHA: String
    /// `A`dded, `M`odified, `D`eleted or `T`ype changed.
    public var status: Character
}

/// What the bot's own git directory says of a commit, for committing it again through GitHub's API.
extension GitWorkspace {
    /// Returns what `commit` changed against `base`, one entry per path at any depth
    /// (`git diff-tree -r --raw -z --no-renames`).
    public func treeChanges(from base: String, to commit: String) async throws(GitError) -> [TreeChange] {
        let output = try await git(["diff-tree", "-r", "--raw", "-z", "--no-renames", "--no-commit-id", base, commit], name: "diff-tree")
        return Self.parseRawDiff(output)
    }

    /// Returns a blob's bytes (`git cat-file blob`); more than `limit` bytes fails.
    public func blob(_ sha: String, limit: Int) async throws(GitError) -> [UInt8] {
        try await gitBytes(["cat-file", "blob", sha], name: "cat-file", limit: limit)
    }

    /// Returns the full SHA `revision` names (`git rev-parse --verify`).
    public func resolve(_ revision: String) async throws(GitError) -> String {
        try await git(["rev-parse", "--verify", "--quiet", "--end-of-options", revision], name: "rev-parse")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Fetches the current head of `branch` (one commit deep); returns it.
    public func fetchHead(url: String, branch: String, token: String) async throws(GitError) -> String {
        try await fetch(url: url, branch: branch, token: token, depth: 1)
        return try await resolve("refs/remotes/origin/\(branch)")
    }

    /// Parses `git diff-tree --raw -z` output: `:<old mode> <new mode> <old sha> <new sha> <status>\0<path>\0` each.
    static func parseRawDiff(_ text: String) -> [TreeChange] {
        var changes: [TreeChange] = []
        var fields = text.split(separator: "\0", omittingEmptySubsequences: false).makeIterator()
        while let meta = fields.next(), meta.hasPrefix(":"), let path = fields.next() {
            let parts = meta.dropFirst().split(separator: " ")
            guard parts.count == 5, let status = parts[4].first else { continue }
            changes.append(TreeChange(path: String(path), oldMode: String(parts[0]), newMode: String(parts[1]),
                                      oldSHA: String(parts[2]), newSHA: String(parts[3]), status: status))
        }
        return changes
    }
}
