import Foundation
import GitHub
import OpenSSLCrypto

/// Writes what the setup wizard got from GitHub: the App's key to its own file and the App's id, webhook secret,
/// key path and OAuth client (plus a first `ASYNCCODE_ENCRYPTION_KEYS` key when none is set) to `.env`, both mode
/// 0600, each replaced in one rename.
struct SetupFiles: Sendable {
    /// The folder holding `.env` and the key file.
    let directory: String

    var dotEnvPath: String { directory + "/.env" }

    func keyPath(appID: Int64) -> String { directory + "/github-app-\(appID).private-key.pem" }

    /// Writes the key file, then `.env`; on failure removes what it wrote and throws.
    /// - Returns: the key file's path.
    func write(_ app: CreatedApp, webhookSecret: String) throws -> String {
        let keyPath = keyPath(appID: app.id)
        try Self.writePrivate(app.pem.hasSuffix("\n") ? app.pem : app.pem + "\n", to: keyPath)
        do {
            let existing = (try? String(contentsOfFile: dotEnvPath, encoding: .utf8)) ?? ""
            var settings = [
                ("GITHUB_APP_ID", String(app.id)),
                ("GITHUB_WEBHOOK_SECRET", webhookSecret),
                ("GITHUB_APP_PRIVATE_KEY_PATH", keyPath),
                ("GITHUB_CLIENT_ID", app.clientID),
            ]
            if let secret = app.clientSecret, !secret.isEmpty { settings.append(("GITHUB_CLIENT_SECRET", secret)) }
            // Sign-in stores users' tokens encrypted: a first key, unless one is set already.
            if !Self.sets("ASYNCCODE_ENCRYPTION_KEYS", existing), ProcessInfo.processInfo.environment["ASYNCCODE_ENCRYPTION_KEYS"] == nil {
                settings.append(("ASYNCCODE_ENCRYPTION_KEYS", try KeyRing.newEntry(id: "k1")))
            }
            let updated = Self.merging(existing, with: settings, removing: ["GITHUB_APP_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET_PREVIOUS"])
            try Self.writePrivate(updated, to: dotEnvPath)
        } catch {
            try? FileManager.default.removeItem(atPath: keyPath)
            throw error
        }
        return keyPath
    }

    /// Returns whether `text` (a `.env` file) sets `key`.
    static func sets(_ key: String, _ text: String) -> Bool {
        text.split(separator: "\n").contains { line in
            var body = line.trimmingCharacters(in: .whitespaces)
            if body.hasPrefix("export ") { body = String(body.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
            return body.hasPrefix(key + "=")
        }
    }

    /// Returns `text` (a `.env` file) with `settings` set: lines for those keys and for `removing` are
    /// dropped, other lines kept as they are, and the settings appended under a comment.
    static func merging(_ text: String, with settings: [(String, String)], removing: Set<String>) -> String {
        let replaced = Set(settings.map(\.0)).union(removing)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { line in
            var body = line.trimmingCharacters(in: .whitespaces)
            if body.hasPrefix("export ") { body = String(body.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
            guard let equals = body.firstIndex(of: "=") else { return true }
            return !replaced.contains(body[..<equals].trimmingCharacters(in: .whitespaces))
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        if !lines.isEmpty { lines.append("") }
        lines.append("# Written by the asynccode setup wizard on \(ISO8601DateFormatter().string(from: Date())).")
        for (key, value) in settings { lines.append("\(key)='\(value)'") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes `text` to a new file created with mode 0600 beside `path`, then renames it over `path`.
    static func writePrivate(_ text: String, to path: String) throws {
        let temporary = path + ".tmp-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw SetupError.cannotWrite(path, errno) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                let code = errno
                close(descriptor)
                unlink(temporary)
                throw SetupError.cannotWrite(path, code)
            }
            written += count
        }
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard synced, rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw SetupError.cannotWrite(path, code)
        }
    }
}

/// Why the setup wizard could not finish. Never holds a secret.
enum SetupError: Error, CustomStringConvertible {
    case cannotWrite(String, Int32)

    var description: String {
        switch self {
        case .cannotWrite(let path, let code): "cannot write \(path): \(String(cString: strerror(code)))"
        }
    }
}
