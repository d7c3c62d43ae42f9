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
        let target = gitDirectory
        let linked = await BlockingPool.run { () -> String? in
            let fileManager = FileManager.default
            for folder in (try? fileManager.contentsOfDirectory(atPath: mirror + "/objects")) ?? [] where folder != "info" {
                let source = "\(mirror)/objects/\(folder)"
                guard let files = try? fileManager.contentsOfDirectory(atPath: source) else { continue }
                try? fileManager.createDirectory(atPath: "\(target)/objects/\(folder)", withIntermediateDirectories: true)
                for file in files where !file.hasPrefix("tmp") {
                    let from = "\(source)/\(file)"
                    let to = "\(target)/objects/\(folder)/\(file)"
                    if link(from, to) != 0 {
                        // Another file system: a copy.
                        guard errno == EXDEV, (try? fileManager.copyItem(atPath: from, toPath: to)) != nil else {
                            return "cannot link \(folder)/\(file) from the cache (errno \(errno))"
                        }
                    }
                }
            }
            if fileManager.fileExists(atPath: mirror + "/shallow") {
                guard (try? fileManager.copyItem(atPath: mirror + "/shallow", toPath: target + "/shallow")) != nil else {
                    return "cannot copy the cache's shallow file"
                }
            }
            return nil
        }
        if let linked { throw GitError(command: "clone", message: linked) }
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
        let packed = refs.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)\n" }.joined()
        guard FileManager.default.createFile(atPath: gitDirectory + "/packed-refs", contents: Data(packed.utf8)) else {
            throw GitError(command: "clone", message: "cannot write the branch heads")
        }
        try await git(["symbolic-ref", "HEAD", "refs/heads/\(branch)"], name: "symbolic-ref")
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
