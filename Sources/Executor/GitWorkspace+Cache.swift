#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The task's repository made from a mirror of the repository cache (``RepositoryCache``), as `git clone --local`
/// would make it, which git refuses for a shallow source.
extension GitWorkspace {
    /// Creates the bot's git directory and the checkout folder from `mirror`: hard links to its object files (which
    /// git never changes in place), its `shallow` file, its branch heads as `origin/…` and `branch` checked out as
    /// `HEAD` (the files come with ``checkOutHead()``). Nothing of the mirror is writable through the links: git
    /// writes new objects as new files, and the agent gets a copy of this directory, not it.
    public func linkRepository(from mirror: String, branch: String) async throws(GitError) {
        try await git(["init", "--quiet", "--template=", "--separate-git-dir=\(gitDirectory)", checkout], repository: false, name: "init")
        try await refreshRepository(from: mirror, branch: branch)
    }

    /// Brings the bot's git directory up to date with `mirror`: exactly its object files (links to the missing ones,
    /// those it no longer has removed), its `shallow` file and its branch heads, with `branch` as `HEAD`. The
    /// checkout's files are not touched (``checkOutHead()`` writes the ones that differ).
    func refreshRepository(from mirror: String, branch: String) async throws(GitError) {
        let target = gitDirectory
        let failure = await BlockingPool.run { Self.mirrorObjects(of: mirror, into: target) }
        if let failure { throw GitError(command: "clone", message: failure) }
        let heads = try await git(["--git-dir=\(mirror)", "for-each-ref", "--format=%(objectname) %(refname:strip=2)", "refs/heads/"],
                                  repository: false, name: "for-each-ref")
        var refs: [String: String] = [:]
        for line in heads.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { continue }
            refs["refs/remotes/origin/\(parts[1])"] = String(parts[0])
            if parts[1] == branch { refs["refs/heads/\(branch)"] = String(parts[0]) }
        }
        guard refs["refs/heads/\(branch)"] != nil else {
            throw GitError(command: "clone", message: "the cache has no branch \(branch)")
        }
        // The heads as one file; loose refs of an earlier state (a ready checkout's) would shadow it.
        try? FileTree.remove(gitDirectory + "/refs")
        try? FileManager.default.createDirectory(atPath: gitDirectory + "/refs/heads", withIntermediateDirectories: true)
        try? FileManager.default.createDirectory(atPath: gitDirectory + "/refs/tags", withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: gitDirectory + "/ORIG_HEAD")
        try? FileTree.remove(gitDirectory + "/logs")
        let packed = refs.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)\n" }.joined()
        guard FileManager.default.createFile(atPath: gitDirectory + "/packed-refs", contents: Data(packed.utf8)) else {
            throw GitError(command: "clone", message: "cannot write the branch heads")
        }
        try await git(["symbolic-ref", "HEAD", "refs/heads/\(branch)"], name: "symbolic-ref")
    }

    /// Makes `target`'s object files exactly `mirror`'s: hard links to the missing ones (a copy across file
    /// systems), the ones the mirror no longer has removed; and its `shallow` file. Returns what failed.
    private static func mirrorObjects(of mirror: String, into target: String) -> String? {
        let fileManager = FileManager.default
        var wanted: Set<String> = []
        for folder in (try? fileManager.contentsOfDirectory(atPath: mirror + "/objects")) ?? [] where folder != "info" {
            let source = "\(mirror)/objects/\(folder)"
            guard let files = try? fileManager.contentsOfDirectory(atPath: source) else { continue }
            try? fileManager.createDirectory(atPath: "\(target)/objects/\(folder)", withIntermediateDirectories: true)
            for file in files where !file.hasPrefix("tmp") {
                wanted.insert("\(folder)/\(file)")
                let from = "\(source)/\(file)"
                let to = "\(target)/objects/\(folder)/\(file)"
                guard link(from, to) != 0 else { continue }
                let failed = errno
                // Linked before: objects never change under their names.
                if failed == EEXIST { continue }
                // Another file system: a copy.
                if failed == EXDEV, (try? fileManager.copyItem(atPath: from, toPath: to)) != nil { continue }
                return "cannot link \(folder)/\(file) from the cache (errno \(failed))"
            }
        }
        // What an earlier state of the mirror had (a ready checkout made before a repack or a force-push).
        for folder in (try? fileManager.contentsOfDirectory(atPath: target + "/objects")) ?? [] where folder != "info" {
            for file in (try? fileManager.contentsOfDirectory(atPath: "\(target)/objects/\(folder)")) ?? [] where !wanted.contains("\(folder)/\(file)") {
                unlink("\(target)/objects/\(folder)/\(file)")
            }
        }
        unlink(target + "/shallow")
        if fileManager.fileExists(atPath: mirror + "/shallow") {
            guard (try? fileManager.copyItem(atPath: mirror + "/shallow", toPath: target + "/shallow")) != nil else {
                return "cannot copy the cache's shallow file"
            }
        }
        return nil
    }

    /// Moves the repository of `ready` (a workspace the cache prepared, which no agent ever saw) into this one:
    /// its git directory and its checkout, the agent's copy of the repository included. Both are on one file
    /// system; `false` (nothing moved) when they are not.
    func adoptRepository(of ready: GitWorkspace) -> Bool {
        guard rename(ready.gitDirectory, gitDirectory) == 0 else { return false }
        guard rename(ready.checkout, checkout) == 0 else {
            rename(gitDirectory, ready.gitDirectory)
            return false
        }
        return true
    }

    /// Checks out `HEAD` into the checkout (its files and the index).
    public func checkOutHead() async throws(GitError) {
        try await git(["reset", "--quiet", "--hard", "HEAD"], name: "checkout")
    }

    /// Removes the bot's git directory and the checkout (a repository half made), keeping the workspace.
    public func removeRepository() async {
        await BlockingPool.run { [gitDirectory, checkout] in
            try? FileTree.remove(gitDirectory)
            try? FileTree.remove(checkout)
        }
    }
}
