import Executor
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `FileTree` changes a tree an agent wrote without ever following a link out of it.
@Suite struct FileTreeTests {
    /// A scratch folder with a tree inside (`tree/`) and a folder beside it the tree's links point at.
    struct Scratch {
        let root: String
        var tree: String { root + "/tree" }
        var outside: String { root + "/outside" }

        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("filetree-\(UUID().uuidString)").path
            for folder in [tree + "/a/b", outside + "/inner"] {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            }
            try "outside\n".write(toFile: outside + "/file.txt", atomically: true, encoding: .utf8)
            try "inner\n".write(toFile: outside + "/inner/file.txt", atomically: true, encoding: .utf8)
            try "kept\n".write(toFile: tree + "/a/b/kept.txt", atomically: true, encoding: .utf8)
            chmod(outside + "/file.txt", 0o644)
            try FileManager.default.createSymbolicLink(atPath: tree + "/file-link", withDestinationPath: outside + "/file.txt")
            try FileManager.default.createSymbolicLink(atPath: tree + "/a/folder-link", withDestinationPath: outside)
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }

        func expectOutsideUntouched() {
            #expect((try? String(contentsOfFile: outside + "/file.txt", encoding: .utf8)) == "outside\n")
            #expect((try? String(contentsOfFile: outside + "/inner/file.txt", encoding: .utf8)) == "inner\n")
            let mode = (try? FileManager.default.attributesOfItem(atPath: outside + "/file.txt"))?[.posixPermissions] as? Int
            #expect(mode == 0o644)
        }
    }

    @Test func removingATreeRemovesLinksNotWhatTheyPointAt() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        // A folder the agent left unwritable still goes.
        chmod(scratch.tree + "/a/b", 0o500)
        chmod(scratch.tree + "/a", 0o500)
        try FileTree.remove(scratch.tree)
        #expect(!FileManager.default.fileExists(atPath: scratch.tree))
        scratch.expectOutsideUntouched()
    }

    @Test func everyGitEntryAndSpecialFileGoesAndNothingElse() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let tree = scratch.tree
        for folder in [".git/hooks", "a/.GIT", "a/b/sub/.git"] {
            try FileManager.default.createDirectory(atPath: tree + "/" + folder, withIntermediateDirectories: true)
        }
        try "gitdir: ../elsewhere\n".write(toFile: tree + "/a/b/.Git", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: tree + "/linked", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: tree + "/linked/.git", withDestinationPath: scratch.outside)
        #expect(mkfifo(tree + "/a/pipe", 0o600) == 0)
        let removed = try FileTree.removeRepositoriesAndSpecialFiles(under: tree)
        #expect(Set(removed) == [".git", "a/.GIT", "a/b/.Git", "a/b/sub/.git", "a/pipe", "linked/.git"], "\(removed)")
        for path in [".git", "a/.GIT", "a/b/.Git", "a/b/sub/.git", "a/pipe", "linked/.git"] {
            var info = stat()
            #expect(lstat(tree + "/" + path, &info) != 0, "\(path) is still there")
        }
        // Files, folders and links stay; the folder a link points at is not walked into.
        #expect(FileManager.default.fileExists(atPath: tree + "/a/b/kept.txt"))
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: tree + "/file-link")) == scratch.outside + "/file.txt")
        scratch.expectOutsideUntouched()
    }

    @Test func aLinkNamedGitIsRemovedAsALink() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try FileManager.default.createSymbolicLink(atPath: scratch.tree + "/.git", withDestinationPath: scratch.outside)
        #expect(try FileTree.removeRepositoriesAndSpecialFiles(under: scratch.tree) == [".git"])
        scratch.expectOutsideUntouched()
        #expect(FileManager.default.fileExists(atPath: scratch.outside + "/inner"))
    }

    @Test func chownGivesLinksAsLinks() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let target = Sandbox.runsAsRoot ? UInt32(4_000_000) : getuid()
        try FileTree.chown(scratch.tree, uid: target, gid: target)
        var info = stat()
        #expect(lstat(scratch.tree + "/a/b/kept.txt", &info) == 0 && info.st_uid == target)
        #expect(lstat(scratch.tree + "/file-link", &info) == 0 && info.st_uid == target)
        // What the links point at keeps its owner.
        #expect(stat(scratch.outside + "/file.txt", &info) == 0 && info.st_uid == getuid())
        #expect(stat(scratch.outside + "/inner", &info) == 0 && info.st_uid == getuid())
    }

    @Test func aTreeTooDeepIsRefused() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        // Deeper than `maxDepth`, made through descriptors (a path that long would pass PATH_MAX).
        var folder = open(scratch.tree, O_RDONLY | O_DIRECTORY)
        for _ in 0...FileTree.maxDepth {
            mkdirat(folder, "d", 0o700)
            let next = openat(folder, "d", O_RDONLY | O_DIRECTORY)
            close(folder)
            folder = next
        }
        close(folder)
        #expect(throws: FileTree.WalkError.self) { try FileTree.removeRepositoriesAndSpecialFiles(under: scratch.tree) }
    }
}
