import Executor
import Foundation
import GitHubSimulator
import Testing
import TestSupport

/// A jailed agent attacks the bot through what it leaves in the checkout's `.git`: every git command and file
/// operation of the bot after the agent runs must ignore it. One test per class of vector, each jailed as in
/// production (`scripts/test` runs them), each checking that no marker appeared outside the checkout, that a
/// folder of the host the agent pointed at is untouched, and that the task still ends cleanly.
@Suite(.serialized, .timeLimit(.minutes(10))) struct HostileGitTests {
    /// What the bot must never run, read through, or write through, whatever the agent left.
    enum Vector: String, CaseIterable, Sendable {
        /// `.git/config` with `core.fsmonitor`, a clean filter, `diff.external`, `core.hooksPath`; hooks; `info/attributes`.
        case config
        /// `.git/commondir` pointing at a folder the agent made, whose `config` sets `core.fsmonitor`.
        case commondir
        /// `.git` replaced by a `gitdir:` file pointing at such a folder.
        case gitfile
        /// `.git` replaced by a link to a folder of the host.
        case symlink
        /// Alternates, `HEAD`, `packed-refs`, `shallow` and `worktrees` rewritten to point elsewhere.
        case refs
        /// A nested repository (`sub/.git` with its own `core.fsmonitor`) and a `.GIT` folder.
        case nested
        /// Links in the work tree to files and folders of the host, and a FIFO.
        case links
    }

    @Test(arguments: Vector.allCases)
    func theBotsGitIgnoresWhatTheAgentLeftInGit(_ vector: Vector) async throws {
        try await EndToEnd.with { e2e in
            let victim = try Victim(folder: URL(fileURLWithPath: e2e.stateDirectory).deletingLastPathComponent().path + "/victim")
            let main = try await e2e.head(of: "main")
            let issue = e2e.issue("Attack \(vector.rawValue)")
            let taskID = try await e2e.comment("/asynccode --agent gitattack vector=\(vector.rawValue)", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed", timeout: .seconds(120))
            try e2e.expectNoMarkers()
            try victim.expectUntouched()
            // The task ended cleanly: a pull request with the agent's edit, one commit of the bot's on top of main.
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            let readme = try await e2e.file("README.md", on: pull.head) ?? ""
            #expect(readme.contains("attacked through \(vector.rawValue)"), "\(readme)")
            #expect(try await e2e.parents(of: pull.head) == [main])
            let files = try await e2e.files(on: pull.head)
            #expect(!files.contains { $0.split(separator: "/").contains { $0.lowercased() == ".git" } }, "\(files)")
            switch vector {
            case .nested:
                // The nested repository's files are plain files now; its `.git` is gone.
                #expect(try await e2e.file("sub/file.txt", on: pull.head) == "nested\n")
            case .links:
                // Links are pushed as links: their target's path, never what the host holds there.
                #expect(try await e2e.file("key-link", on: pull.head) == victim.folder + "/secret.txt")
                #expect(!files.contains("pipe"))
            default:
                break
            }
            let progress = try #require(e2e.botComments(on: issue).first)
            #expect(progress.body.contains("✅"), "\(progress.body)")
        }
    }

    /// The agent commits a change itself (nothing left uncommitted): the bot pushes its own commit of the same
    /// files on the commit it checked out, never the agent's commit.
    @Test func anAgentsOwnCommitIsNotPushedAsItIs() async throws {
        try await EndToEnd.with { e2e in
            let main = try await e2e.head(of: "main")
            let issue = e2e.issue("Commit it yourself")
            let taskID = try await e2e.comment("/asynccode --agent gitattack vector=selfcommit", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            #expect(try await e2e.file("README.md", on: pull.head)?.contains("attacked through selfcommit") == true)
            #expect(try await e2e.parents(of: pull.head) == [main])
            let author = try await e2e.git(["log", "-1", "--format=%an", pull.head])
            #expect(author.trimmingCharacters(in: .whitespacesAndNewlines) == e2e.setup.app.botLogin)
            #expect(try await e2e.git(["log", "--format=%s", pull.head]).contains("the agent's own commit") == false)
            // The pull request lists the file the agent committed.
            #expect(pull.body?.contains("`README.md`") == true, "\(pull.body ?? "")")
        }
    }

    /// Protected paths cannot be bypassed by committing them: the change set is everything between the commit
    /// the bot checked out and the checkout's files.
    @Test func aProtectedPathCommittedByTheAgentIsStillRefused() async throws {
        try await EndToEnd.with(repositoryFiles: [".github/asynccode.yml": "protectedPaths: [\"secrets/**\"]\n"]) { e2e in
            let issue = e2e.issue("Sneak a secret in")
            let taskID = try await e2e.comment("/asynccode --agent gitattack vector=protected", on: issue)
            try await e2e.waitFor(task: taskID, status: "failed")
            let error = try await e2e.string("SELECT error FROM tasks WHERE id = \(taskID)") ?? ""
            #expect(error.contains("protected paths"), "\(error)")
            #expect(error.contains("secrets/key.txt"), "\(error)")
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).isEmpty)
            let branches = try await e2e.git(["for-each-ref", "--format=%(refname)", "refs/heads/"])
            #expect(!branches.contains("asynccode/"), "a branch was pushed: \(branches)")
        }
    }
}

/// A folder of the host the agent points its `.git` at: what it holds must be the same after the task.
struct Victim {
    let folder: String
    let files: [String: String] = [
        "config": "[core]\n\tbare = false\n", "hooks/pre-commit": "#!/bin/sh\nexit 0\n", "info/attributes": "* text\n",
        "secret.txt": "the host's secret\n", "HEAD": "ref: refs/heads/main\n",
    ]

    init(folder: String) throws {
        self.folder = folder
        for (path, text) in files {
            let url = URL(fileURLWithPath: folder + "/" + path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: url.path)
        }
    }

    func expectUntouched() throws {
        for (path, text) in files {
            let full = folder + "/" + path
            #expect((try? String(contentsOfFile: full, encoding: .utf8)) == text, "\(path) of the host folder changed")
            let attributes = try? FileManager.default.attributesOfItem(atPath: full)
            #expect((attributes?[.posixPermissions] as? Int) == 0o644, "\(path) of the host folder changed its mode")
            #expect((attributes?[.ownerAccountID] as? Int) == Int(getuid()), "\(path) of the host folder changed its owner")
        }
        let present = Set((FileManager.default.subpaths(atPath: folder) ?? []).filter { path in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: folder + "/" + path, isDirectory: &isDirectory) && !isDirectory.boolValue
        })
        #expect(present == Set(files.keys), "the host folder holds \(present.sorted())")
    }
}

extension EndToEnd {
    /// Runs git on the simulator's copy of the repository.
    func git(_ arguments: [String]) async throws -> String {
        let result = try await TestSupport.run(["git", "--git-dir", setup.repository.gitDirectory] + arguments)
        return result.output
    }

    func head(of branch: String) async throws -> String {
        try await git(["rev-parse", branch]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The parents of the commit at the tip of `branch`.
    func parents(of branch: String) async throws -> [String] {
        try await git(["log", "-1", "--format=%P", branch]).split(separator: " ").map {
            $0.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// The paths in the tree at the tip of `branch`.
    func files(on branch: String) async throws -> [String] {
        try await git(["ls-tree", "-r", "--name-only", branch]).split(separator: "\n").map(String.init)
    }

    /// No command of the agent's ran outside its jail: its markers can only be written from the host.
    func expectNoMarkers() throws {
        let markers = (try FileManager.default.contentsOfDirectory(atPath: stateDirectory)).filter { $0.hasPrefix("pwned") }
        #expect(markers.isEmpty, "the agent's commands ran outside the jail: \(markers)")
    }
}
