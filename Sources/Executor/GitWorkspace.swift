import Foundation
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A file a commit changed, with its line counts (`git diff --numstat`; binary files count 0).
public struct ChangedFile: Sendable, Hashable, Codable {
    public var path: String
    public var additions: Int
    public var deletions: Int
}

/// A git command that failed; the text holds git's own message (never a token: tokens travel only in a
/// header set through git's environment, not in URLs or arguments).
public struct GitError: Error, Sendable, CustomStringConvertible {
    public var command: String
    public var message: String
    public var description: String { "git \(command) failed: \(message)" }
}

/// A task's private folder: the checkout (`repo/`), the agent's `HOME` (`home/`), git's own empty home and
/// the bot's own git directory (`bot.git/`).
///
/// The bot's git never reads anything the agent could have written under `.git`. It clones into its own
/// git directory beside the checkout (`--separate-git-dir`), which the jail does not show; the agent gets a
/// copy of it as the checkout's `.git` (``giveAgentItsRepository()``), which the bot never reads again and
/// removes, with every other `.git` the agent left, before staging (``discardAgentRepositories()``). From
/// then on every git command names the bot's directory and the checkout explicitly (`GIT_DIR`,
/// `GIT_WORK_TREE`), so the agent's config, hooks, `commondir`, alternates, refs or commits are never
/// consulted, and the change set is the checkout's files against the commit the bot checked out.
/// Git runs with no system or global configuration and no hooks; the installation token reaches git only as
/// an `http.extraHeader` set through `GIT_CONFIG_*` variables of that one git process.
public struct GitWorkspace: Sendable {
    public let root: String
    /// Trust roots for the git server (GitHub Enterprise Server with a private CA).
    public var caBundlePath: String?
    /// The longest a single git command may run.
    public var commandTimeout: Duration = .seconds(600)
    /// Work done ahead of time (a ready checkout of the cache): git runs at the lowest CPU priority (`nice -n 19`),
    /// so the tasks running meanwhile come first; alone on the machine it runs as fast as any.
    var background = false

    public var checkout: String { root + "/repo" }
    public var agentHome: String { root + "/home" }
    /// The `passwd` and `group` files naming the task's agent user (``AgentUser``).
    public var agentAccounts: String { root + "/accounts" }
    /// The bot's own git directory: outside the checkout, never shown to the agent.
    public var gitDirectory: String { root + "/bot.git" }
    var gitHome: String { root + "/git-home" }

    /// Creates a fresh folder under `parent` for task `taskID`.
    public static func create(in parent: String, taskID: Int64, caBundlePath: String? = nil) throws -> GitWorkspace {
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        var template = Array("\(parent)/task-\(taskID)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw GitError(command: "workspace", message: "cannot create a folder under \(parent)")
        }
        let root = String(cString: made)
        chmod(root, 0o700)
        let workspace = GitWorkspace(root: root, caBundlePath: caBundlePath)
        for folder in [workspace.agentHome, workspace.gitHome] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        return workspace
    }

    public init(root: String, caBundlePath: String? = nil) {
        self.root = root
        self.caBundlePath = caBundlePath
    }

    /// Deletes the workspace and everything in it, on the blocking thread pool (a checkout of thousands of
    /// files would hold an event loop, and the webhooks it serves, for a while).
    /// Links the agent left are removed as links: what they point at is never touched.
    public func remove() async {
        await BlockingPool.run { [root] in
            try? FileTree.remove(root)
        }
    }

    // MARK: - Remote operations (the token goes to this one git process only)

    /// Clones `branch` of `url`, shallow: the files into the checkout, the repository into the bot's own git
    /// directory.
    public func clone(url: String, branch: String, token: String, depth: Int = 1) async throws(GitError) {
        try checkURL(url)
        try await git(["clone", "--quiet", "--no-tags", "--single-branch", "--depth", String(depth), "--branch", branch,
                       "--separate-git-dir=\(gitDirectory)", "--", url, checkout], repository: false, token: token, name: "clone")
    }

    /// Fetches `branch` of `url` (for reviews: the base branch to diff against) as `origin/<branch>`.
    public func fetch(url: String, branch: String, token: String, depth: Int = 50) async throws(GitError) {
        try checkURL(url)
        try await git(["fetch", "--quiet", "--no-tags", "--depth", String(depth), "--", url,
                       "+refs/heads/\(branch):refs/remotes/origin/\(branch)"], token: token, name: "fetch")
    }

    /// Pushes `HEAD` to `branch` of `url`; `force` replaces what an earlier attempt of the same task pushed.
    public func push(url: String, branch: String, token: String, force: Bool) async throws(GitError) {
        try checkURL(url)
        var arguments = ["push", "--quiet", "--no-verify"]
        if force { arguments.append("--force") }
        arguments += ["--", url, "HEAD:refs/heads/\(branch)"]
        try await git(arguments, token: token, name: "push")
    }

    // MARK: - Local operations

    /// Creates and checks out `branch` at `HEAD`.
    public func createBranch(_ branch: String) async throws(GitError) {
        try await git(["checkout", "--quiet", "-B", branch], name: "checkout")
    }

    /// Gives the agent a repository of its own in the checkout: a copy of the bot's git directory as `.git`
    /// (the clone left a `.git` file pointing at the bot's). Whatever the agent does to it, the bot never reads it.
    ///
    /// `refreshing`: the checkout came from a ready checkout of the cache, whose `.git` is already such a copy,
    /// made by the bot and never shown to an agent; only what differs is copied again (object files, named by their
    /// content, are kept when present with the same size; everything else is copied anew).
    public func giveAgentItsRepository(refreshing: Bool = false) async throws(GitError) {
        let (source, target) = (gitDirectory, checkout + "/.git")
        let copied = await BlockingPool.run { () -> Bool in
            var info = stat()
            if refreshing, lstat(target, &info) == 0, info.st_mode & S_IFMT == S_IFDIR {
                return Self.refreshCopy(of: source, at: target)
            }
            try? FileTree.remove(target)
            do {
                try FileManager.default.copyItem(atPath: source, toPath: target)
                return true
            } catch {
                return false
            }
        }
        guard copied else { throw GitError(command: "copy", message: "cannot copy the repository for the agent") }
    }

    /// Makes `target` a copy of `source` again, copying only what may differ (see ``giveAgentItsRepository(refreshing:)``).
    private static func refreshCopy(of source: String, at target: String) -> Bool {
        var wanted: Set<String> = []
        var failed = false
        do throws(FileTree.WalkError) {
            try FileTree.walk(source) { _, _, relative, info in
                wanted.insert(relative)
                let to = target + "/" + relative
                var existing = stat()
                let present = lstat(to, &existing) == 0
                switch info.st_mode & S_IFMT {
                case S_IFDIR:
                    if present, existing.st_mode & S_IFMT != S_IFDIR { try? FileTree.remove(to) }
                    if !present || existing.st_mode & S_IFMT != S_IFDIR { mkdir(to, 0o755) }
                    return .descend
                case S_IFREG:
                    let immutable = relative.hasPrefix("objects/") && !relative.hasPrefix("objects/info/")
                    if immutable, present, existing.st_mode & S_IFMT == S_IFREG, existing.st_size == info.st_size { return .skip }
                    if present { try? FileTree.remove(to) }
                    if (try? FileManager.default.copyItem(atPath: source + "/" + relative, toPath: to)) == nil { failed = true }
                    return .skip
                default:
                    return .skip
                }
            }
            // What the copy has and the bot's directory no longer has.
            var extra: [String] = []
            try FileTree.walk(target) { _, _, relative, _ in
                guard wanted.contains(relative) else {
                    extra.append(relative)
                    return .skip
                }
                return .descend
            }
            for relative in extra { try FileTree.remove(target + "/" + relative) }
        } catch {
            return false
        }
        return !failed
    }

    /// Removes every `.git` the agent left in the checkout (its copy of the repository, nested repositories,
    /// files or links named `.git`) and every FIFO, socket or device, without following links; returns what
    /// was removed. Run once the agent's processes are gone and before staging.
    public func discardAgentRepositories() async throws(GitError) -> [String] {
        let result = await BlockingPool.run { [checkout] () -> Result<[String], FileTree.WalkError> in
            do throws(FileTree.WalkError) {
                return .success(try FileTree.removeRepositoriesAndSpecialFiles(under: checkout))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let removed): return removed
        case .failure(let error): throw GitError(command: "clean", message: error.description)
        }
    }

    /// Stages every change of the working tree; returns the changed files (empty: nothing changed).
    public func stageAll() async throws(GitError) -> [ChangedFile] {
        try await git(["add", "--all", "--", "."], name: "add")
        let numstat = try await git(["diff", "--cached", "--no-ext-diff", "--no-textconv", "--numstat", "-z", "--no-renames"], name: "diff")
        return Self.parseNumstat(numstat)
    }

    /// `git diff --cached --stat` of the staged changes.
    public func stagedDiffStat() async throws(GitError) -> String {
        try await git(["diff", "--cached", "--no-ext-diff", "--no-textconv", "--stat=200"], name: "diff")
    }

    /// The staged changes as a patch, cut to `limit` bytes.
    public func stagedPatch(limit: Int) async throws(GitError) -> String {
        let file = root + "/staged.patch"
        try await git(["diff", "--cached", "--binary", "--no-ext-diff", "--no-textconv", "--output=\(file)"], name: "diff")
        defer { try? FileManager.default.removeItem(atPath: file) }
        guard let handle = FileHandle(forReadingAtPath: file) else { return "" }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: limit + 1)) ?? Data()
        let text = String(decoding: data.prefix(limit), as: UTF8.self)
        return data.count > limit ? text + "\n[… patch cut at \(limit) bytes]" : text
    }

    /// Commits the staged changes; returns the commit's hash.
    public func commit(message: String, authorName: String, authorEmail: String) async throws(GitError) -> String {
        let file = root + "/commit-message.txt"
        do {
            try message.write(toFile: file, atomically: true, encoding: .utf8)
        } catch {
            throw GitError(command: "commit", message: "cannot write the commit message")
        }
        defer { try? FileManager.default.removeItem(atPath: file) }
        try await git(["-c", "user.name=\(authorName)", "-c", "user.email=\(authorEmail)", "-c", "commit.gpgsign=false",
                       "commit", "--quiet", "--no-verify", "--file", file], name: "commit")
        return try await git(["rev-parse", "HEAD"], name: "rev-parse").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Parses `git diff --numstat -z` output.
    static func parseNumstat(_ text: String) -> [ChangedFile] {
        var files: [ChangedFile] = []
        for record in text.split(separator: "\0", omittingEmptySubsequences: true) {
            let fields = record.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let path = fields[2].trimmingCharacters(in: .newlines)
            files.append(ChangedFile(path: path, additions: Int(fields[0]) ?? 0, deletions: Int(fields[1]) ?? 0))
        }
        return files
    }

    // MARK: - Running git

    func checkURL(_ url: String) throws(GitError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              scheme == "https" || scheme == "http", components.host != nil, components.user == nil, components.password == nil
        else {
            throw GitError(command: "remote", message: "the repository's clone URL is not a plain http(s) URL")
        }
    }

    /// Returns git's environment: nothing of the bot's own, no configuration files, no prompts, the bot's git
    /// directory and the checkout named explicitly (`repository`); and with a token, the authorization header
    /// as configuration of this one process.
    func environment(token: String?, repository: Bool = true) -> [String: String] {
        var environment: [String: String] = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": gitHome,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "SSH_ASKPASS": "/bin/false",
            "GIT_ALLOW_PROTOCOL": "http:https",
            "GIT_CEILING_DIRECTORIES": root,
        ]
        if repository {
            environment["GIT_DIR"] = gitDirectory
            environment["GIT_WORK_TREE"] = checkout
        }
        var settings: [(String, String)] = [
            ("core.hooksPath", "/dev/null"), ("credential.helper", ""), ("core.fsmonitor", "false"),
            ("core.untrackedCache", "false"), ("gc.auto", "0"), ("maintenance.auto", "false"), ("submodule.recurse", "false"),
            // Files of a checkout written by one worker per core: on a slow disk a 10,000-file checkout took
            // 1.85 s instead of 3.39 s.
            ("checkout.workers", "0"),
        ]
        if let caBundlePath { settings.append(("http.sslCAInfo", caBundlePath)) }
        if let token {
            let basic = Data("x-access-token:\(token)".utf8).base64EncodedString()
            settings.append(("http.extraHeader", "Authorization: Basic \(basic)"))
        }
        environment["GIT_CONFIG_COUNT"] = String(settings.count)
        for (index, (key, value)) in settings.enumerated() {
            environment["GIT_CONFIG_KEY_\(index)"] = key
            environment["GIT_CONFIG_VALUE_\(index)"] = value
        }
        return environment
    }

    @discardableResult
    func git(
        _ arguments: [String], repository: Bool = true, token: String? = nil, name: String, environment extra: [String: String] = [:]
    ) async throws(GitError) -> String {
        String(decoding: try await gitBytes(arguments, repository: repository, token: token, name: name, environment: extra), as: UTF8.self)
    }

    /// Runs git and returns its standard output as bytes (at most `limit`; more fails).
    func gitBytes(
        _ arguments: [String], repository: Bool = true, token: String? = nil, name: String, limit: Int = 8 * 1024 * 1024,
        environment extra: [String: String] = [:]
    ) async throws(GitError) -> [UInt8] {
        var keys: [Environment.Key: String] = [:]
        for (key, value) in environment(token: token, repository: repository).merging(extra, uniquingKeysWith: { $1 }) {
            if let environmentKey = Environment.Key(rawValue: key) { keys[environmentKey] = value }
        }
        var options = PlatformOptions()
        options.createSession = true
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .seconds(2))]
        let configuration = Configuration(
            executable: .name(background ? "nice" : "git"), arguments: Arguments(background ? ["-n", "19", "git"] + arguments : arguments),
            environment: .custom(keys),
            workingDirectory: FilePath(repository ? checkout : root), platformOptions: options)
        let timeout = commandTimeout
        enum Outcome: Sendable { case finished(TerminationStatus, [UInt8], String), timedOut }
        let outcome: Outcome
        do {
            outcome = try await withThrowingTaskGroup(of: Outcome.self) { group in
                group.addTask {
                    let result = try await Subprocess.run(
                        configuration, output: .bytes(limit: limit), error: .string(limit: 1024 * 1024))
                    return .finished(result.terminationStatus, result.standardOutput, result.standardError)
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return .timedOut
                }
                defer { group.cancelAll() }
                guard let first = try await group.next() else { throw CancellationError() }
                return first
            }
        } catch is CancellationError {
            throw GitError(command: name, message: "stopped")
        } catch {
            throw GitError(command: name, message: "could not run git (\(Self.redact(String(describing: error), token: token)))")
        }
        switch outcome {
        case .timedOut:
            throw GitError(command: name, message: "took longer than \(timeout.components.seconds) s")
        case .finished(let status, let output, let errorOutput):
            guard case .exited(0) = status else {
                let message = errorOutput.split(separator: "\n").suffix(4).joined(separator: " ")
                throw GitError(command: name, message: Self.redact(message.isEmpty ? "\(status)" : message, token: token))
            }
            return output
        }
    }

    static func redact(_ text: String, token: String?) -> String {
        guard let token, !token.isEmpty else { return text }
        return text.replacingOccurrences(of: token, with: "[REDACTED]")
    }
}
