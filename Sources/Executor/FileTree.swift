#if canImport(Glibc)
import Glibc
#endif

/// Walks and changes a folder tree that an agent could write, without ever following a symbolic link.
///
/// Every step goes through a descriptor of the folder it is in (`openat`, `fstatat` and `unlinkat` with
/// `AT_SYMLINK_NOFOLLOW`, folders opened with `O_NOFOLLOW`), so a link the agent left (`.git -> /etc`,
/// `notes -> /root/app.pem`) is changed or removed as the link itself, and what it points at on the host
/// is never read, written, chowned or chmodded. Run these after the agent's processes are gone.
public enum FileTree {
    /// A tree deeper than this is refused rather than walked (each level holds a descriptor).
    public static let maxDepth = 512

    /// What a walk could not do.
    public struct WalkError: Error, Sendable, CustomStringConvertible {
        public enum Code: Sendable { case cannotOpen, tooDeep }
        public var code: Code
        public var path: String
        public var description: String {
            switch code {
            case .cannotOpen: "cannot open \(path)"
            case .tooDeep: "a folder tree under \(path) is deeper than \(FileTree.maxDepth) levels"
            }
        }
    }

    /// Gives `path` and everything under it to `uid`:`gid`; links are given as links.
    public static func chown(_ path: String, uid: UInt32, gid: UInt32) throws(WalkError) {
        lchown(path, uid, gid)
        try walk(path) { directory, name, _, _ in
            fchownat(directory, name, uid, gid, AT_SYMLINK_NOFOLLOW)
            return .descend
        }
    }

    /// Removes `path` and everything under it (folders the agent made read-only included). A link is
    /// removed as a link; nothing outside the tree is touched.
    public static func remove(_ path: String) throws(WalkError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            unlink(path)
            return
        }
        let parent = open(parentPath(of: path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard parent >= 0 else { throw WalkError(code: .cannotOpen, path: path) }
        defer { close(parent) }
        try removeEntry(in: parent, name: lastComponent(of: path), isDirectory: true, depth: 0, shown: path)
    }

    /// Removes every entry named `.git` (in any case) under `path`, at any depth, and everything that is
    /// not a regular file, folder or link (FIFOs, sockets, devices); returns the paths removed, relative
    /// to `path`.
    public static func removeRepositoriesAndSpecialFiles(under path: String) throws(WalkError) -> [String] {
        var removed: [String] = []
        var failure: WalkError?
        try walk(path) { directory, name, relative, info in
            let kind = info.st_mode & S_IFMT
            if name.lowercased() == ".git" || (kind != S_IFREG && kind != S_IFDIR && kind != S_IFLNK) {
                do throws(WalkError) {
                    try removeEntry(in: directory, name: name, isDirectory: kind == S_IFDIR, depth: 0, shown: relative)
                    removed.append(relative)
                } catch {
                    failure = error
                }
                return .skip
            }
            return .descend
        }
        if let failure { throw failure }
        return removed
    }

    // MARK: - Walking

    enum Step { case descend, skip }

    /// Calls `body` with the descriptor of the folder, the name, the path relative to `path` and the
    /// `lstat` of each entry under `path`, parents before children; `.descend` on a folder walks into it
    /// (a link is never walked into).
    static func walk(_ path: String, _ body: (Int32, String, String, stat) -> Step) throws(WalkError) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else { throw WalkError(code: .cannotOpen, path: path) }
        try walk(descriptor: descriptor, prefix: "", depth: 0, body)
    }

    /// Walks the folder open as `descriptor`, which it closes.
    private static func walk(descriptor: Int32, prefix: String, depth: Int, _ body: (Int32, String, String, stat) -> Step) throws(WalkError) {
        guard depth < maxDepth else {
            close(descriptor)
            throw WalkError(code: .tooDeep, path: prefix)
        }
        guard let folder = fdopendir(descriptor) else {
            close(descriptor)
            throw WalkError(code: .cannotOpen, path: prefix)
        }
        defer { closedir(folder) }
        for name in names(in: folder) {
            var info = stat()
            guard fstatat(descriptor, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let relative = prefix + name
            guard body(descriptor, name, relative, info) == .descend, info.st_mode & S_IFMT == S_IFDIR else { continue }
            let child = openat(descriptor, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard child >= 0 else { continue }
            try walk(descriptor: child, prefix: relative + "/", depth: depth + 1, body)
        }
    }

    /// Removes `name` in the folder `directory`: a folder with everything in it, anything else as itself.
    private static func removeEntry(in directory: Int32, name: String, isDirectory: Bool, depth: Int, shown: String) throws(WalkError) {
        guard isDirectory else {
            unlinkat(directory, name, 0)
            return
        }
        guard depth < maxDepth else { throw WalkError(code: .tooDeep, path: shown) }
        let child = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard child >= 0 else {
            // Not a folder after all (or gone): remove it as whatever it is.
            unlinkat(directory, name, 0)
            return
        }
        // The agent may have left the folder unwritable; ours to empty now.
        fchmod(child, 0o700)
        guard let folder = fdopendir(child) else {
            close(child)
            throw WalkError(code: .cannotOpen, path: shown)
        }
        var failure: WalkError?
        for entry in names(in: folder) {
            var info = stat()
            guard fstatat(child, entry, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            do throws(WalkError) {
                try removeEntry(in: child, name: entry, isDirectory: info.st_mode & S_IFMT == S_IFDIR, depth: depth + 1, shown: shown)
            } catch {
                failure = error
            }
        }
        closedir(folder)
        if let failure { throw failure }
        unlinkat(directory, name, AT_REMOVEDIR)
    }

    /// The names in an open folder, without `.` and `..` (read in full before anything is changed).
    private static func names(in folder: OpaquePointer) -> [String] {
        var names: [String] = []
        while let entry = readdir(folder) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    private static func parentPath(of path: String) -> String {
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        let parent = String(trimmed[..<slash])
        return parent.isEmpty ? "/" : parent
    }

    private static func lastComponent(of path: String) -> String {
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        return trimmed.split(separator: "/").last.map(String.init) ?? trimmed
    }
}
