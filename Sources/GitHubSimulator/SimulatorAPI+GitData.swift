import Foundation

/// The Git database API (blobs, trees, commits, references) as GitHub answers it, done with git plumbing on the
/// repository's bare git directory. Commits the App makes without naming a committer are signed and verified,
/// as GitHub signs its bots' API commits.
extension SimulatorAPI {
    func handleGitData(method: String, repo: SimulatedRepository, rest: [String], fields: [String: Any]) async -> SimResponse {
        do {
            switch (method, rest[1], rest.count) {
            case ("POST", "blobs", 2): return try await createBlob(repo: repo, fields: fields)
            case ("POST", "trees", 2): return try await createTree(repo: repo, fields: fields)
            case ("POST", "commits", 2): return try await createCommit(repo: repo, fields: fields)
            case ("POST", "refs", 2): return try await createRef(repo: repo, fields: fields)
            case ("PATCH", "refs", 3...): return try await updateRef(repo: repo, segments: Array(rest.dropFirst(2)), fields: fields)
            default: return .notFound
            }
        } catch let error as SimResponseError {
            return error.response
        } catch {
            return .message(500, "Something went wrong (simulator): \(error)")
        }
    }

    // MARK: Blobs

    private func createBlob(repo: SimulatedRepository, fields: [String: Any]) async throws -> SimResponse {
        guard let content = fields["content"] as? String else { return Self.invalidRequest("\"content\" wasn't supplied.") }
        guard let encoding = (fields["encoding"] ?? "utf-8") as? String else { return .validationFailed("encoding must be a string", field: "encoding") }
        let bytes: [UInt8]
        switch encoding.lowercased() {
        case "utf-8", "utf8":
            bytes = Array(content.utf8)
        case "base64":
            guard let data = Data(base64Encoded: content.filter { !$0.isWhitespace }) else {
                return .validationFailed("content is not valid Base64", field: "content")
            }
            bytes = [UInt8](data)
        default:
            return .validationFailed("encoding \(encoding) is not supported; use utf-8 or base64", field: "encoding")
        }
        let sha = try await gitText(repo, ["hash-object", "-w", "--stdin"], stdin: bytes)
        let url = "\(base)/repos/\(repo.fullName)/git/blobs/\(sha)"
        return .json(201, ["url": url, "sha": sha], headers: [("Location", url)])
    }

    // MARK: Trees

    private struct TreeChange {
        var path: String
        var mode: String
        var type: String
        /// nil with `content` nil: delete the path.
        var sha: String?
        var content: String?
    }

    private func parseTreeChange(_ value: Any, index: Int) throws -> TreeChange {
        let invalid = { (detail: String) in SimResponseError(response: .validationFailed("tree[\(index)]: \(detail)", field: "tree")) }
        guard let entry = value as? [String: Any] else { throw invalid("must be an object") }
        guard let path = entry["path"] as? String else { throw invalid("path is required") }
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.isEmpty, !path.hasPrefix("/"), !path.contains("\0"),
              components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && $0.lowercased() != ".git" }) else {
            throw invalid("path \(path) is invalid")
        }
        let kinds = ["100644": "blob", "100755": "blob", "120000": "blob", "040000": "tree", "160000": "commit"]
        guard let mode = entry["mode"] as? String, let kind = kinds[mode] else {
            throw invalid("mode must be one of 100644, 100755, 040000, 160000, 120000")
        }
        guard let type = entry["type"] as? String, ["blob", "tree", "commit"].contains(type) else { throw invalid("type must be blob, tree or commit") }
        guard type == kind else { throw invalid("mode \(mode) needs type \(kind), not \(type)") }
        let content = entry["content"]
        if let content, !(content is String) { throw invalid("content must be a string") }
        switch entry["sha"] {
        case nil:
            guard let content = content as? String else { throw invalid("tree.sha or tree.content is required") }
            guard type == "blob" else { throw invalid("content makes a blob; type \(type) needs a sha") }
            return TreeChange(path: path, mode: mode, type: type, content: content)
        case is NSNull:
            guard content == nil else { throw invalid("use either tree.sha or content, not both") }
            return TreeChange(path: path, mode: mode, type: type)
        case let sha as String:
            guard content == nil else { throw invalid("use either tree.sha or content, not both") }
            guard Self.isObjectName(sha) else { throw invalid("sha \(sha) is not a SHA") }
            return TreeChange(path: path, mode: mode, type: type, sha: sha.lowercased())
        default:
            throw invalid("sha must be a string or null")
        }
    }

    private func createTree(repo: SimulatedRepository, fields: [String: Any]) async throws -> SimResponse {
        guard let entries = fields["tree"] as? [Any] else { return Self.invalidRequest("\"tree\" wasn't supplied.") }
        let changes = try entries.enumerated().map { try parseTreeChange($1, index: $0) }
        var wanted = changes.filter { $0.type != "commit" }.compactMap(\.sha)
        let baseTree = fields["base_tree"]
        if let baseTree {
            guard let baseTree = baseTree as? String, Self.isObjectName(baseTree) else { return .validationFailed("base_tree must be a tree SHA", field: "base_tree") }
            wanted.append(baseTree.lowercased())
        }
        let types = try await objectTypes(repo, wanted)
        if let baseTree = baseTree as? String, types[baseTree.lowercased()] != "tree" {
            return .validationFailed("base_tree \(baseTree) is not a valid tree", field: "base_tree")
        }
        for change in changes where change.type != "commit" {
            if let sha = change.sha, types[sha] != change.type {
                return .validationFailed("tree.sha \(sha) is not a valid \(change.type)", field: "tree")
            }
        }

        // A throwaway index in a temporary folder (with an empty work tree, which some plumbing insists on).
        let fileManager = FileManager.default
        let work = fileManager.temporaryDirectory.appendingPathComponent("ghsim-tree-\(UUID().uuidString)").path
        try fileManager.createDirectory(atPath: "\(work)/worktree", withIntermediateDirectories: true)
        defer { try? fileManager.removeItem(atPath: work) }
        let index = ["GIT_INDEX_FILE": "\(work)/index"]
        let worktree = ["--work-tree", "\(work)/worktree"]
        @discardableResult func indexGit(_ arguments: [String], stdin: [UInt8]? = nil) async throws -> String {
            try await gitText(repo, worktree + arguments, environment: index, stdin: stdin, failure: 422)
        }
        try await indexGit(["read-tree"] + ((baseTree as? String).map { [$0] } ?? ["--empty"]))
        for change in changes {
            if change.sha == nil && change.content == nil || change.type == "tree" {
                // Deleting, or replacing a whole folder: drop everything at or under the path first.
                let listed = try await gitRun(repo, worktree + ["ls-files", "-z", "--cached", "--", ":(literal)\(change.path)"], environment: index)
                if !listed.stdout.isEmpty { try await indexGit(["update-index", "--force-remove", "-z", "--stdin"], stdin: listed.stdout) }
            }
            if change.type == "tree", let sha = change.sha {
                try await indexGit(["read-tree", "--prefix=\(change.path)/", sha])
            } else if change.sha != nil || change.content != nil {
                let sha: String
                if let content = change.content {
                    sha = try await gitText(repo, ["hash-object", "-w", "--stdin"], stdin: Array(content.utf8))
                } else {
                    sha = change.sha!
                }
                try await indexGit(["update-index", "--add", "--replace", "--cacheinfo", change.mode, sha, change.path])
            }
        }
        let tree = try await indexGit(["write-tree"])
        let url = "\(base)/repos/\(repo.fullName)/git/trees/\(tree)"
        return .json(201, ["sha": tree, "url": url, "truncated": false, "tree": try await treeEntries(repo, tree)], headers: [("Location", url)])
    }

    /// The top-level entries of a tree, as GitHub lists them.
    private func treeEntries(_ repo: SimulatedRepository, _ tree: String) async throws -> [[String: Any]] {
        let listing = try await gitRun(repo, ["ls-tree", "-z", "--long", tree])
        return listing.stdout.split(separator: 0).compactMap { record -> [String: Any]? in
            let line = String(decoding: record, as: UTF8.self)
            guard let tab = line.firstIndex(of: "\t") else { return nil }
            let info = line[..<tab].split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard info.count == 4 else { return nil }
            var entry: [String: Any] = ["path": String(line[line.index(after: tab)...]), "mode": info[0], "type": info[1], "sha": info[2]]
            if info[1] == "blob", let size = Int(info[3]) { entry["size"] = size }
            if info[1] != "commit" { entry["url"] = "\(base)/repos/\(repo.fullName)/git/\(info[1])s/\(info[2])" }
            return entry
        }
    }

    // MARK: Commits

    private struct Identity {
        var name: String
        var email: String
        var date: Date
        /// `<epoch seconds> <±hhmm>`, as git takes it.
        var gitDate: String
    }

    /// Reads an `author` or `committer` object; a missing name or email is `fallback`'s (none: required).
    private func parseIdentity(_ value: Any?, field: String, fallback: Identity?, now: Identity) throws -> Identity? {
        guard let value else { return nil }
        let invalid = { (detail: String) in SimResponseError(response: .validationFailed("\(field): \(detail)", field: field)) }
        guard let object = value as? [String: Any] else { throw invalid("must be an object") }
        let name = object["name"] != nil ? object["name"] as? String : fallback?.name
        let email = object["email"] != nil ? object["email"] as? String : fallback?.email
        guard let name, !name.trimmingCharacters(in: .whitespaces).isEmpty, let email else { throw invalid("name and email are required") }
        guard let dateText = object["date"] else { return Identity(name: name, email: email, date: now.date, gitDate: now.gitDate) }
        guard let dateText = dateText as? String, let (date, gitDate) = Self.parseDate(dateText) else { throw invalid("date is not an ISO 8601 timestamp") }
        return Identity(name: name, email: email, date: date, gitDate: gitDate)
    }

    private func createCommit(repo: SimulatedRepository, fields: [String: Any]) async throws -> SimResponse {
        guard let message = fields["message"] as? String else { return Self.invalidRequest("\"message\" wasn't supplied.") }
        guard let tree = fields["tree"] as? String else { return Self.invalidRequest("\"tree\" wasn't supplied.") }
        guard let parents = (fields["parents"] ?? [String]()) as? [String] else { return .validationFailed("parents must be an array of SHAs", field: "parents") }
        let signature = fields["signature"]
        if let signature, !(signature is String) { return .validationFailed("signature must be a string", field: "signature") }
        guard let app = store.withState({ state in state.installations[repo.installationID].flatMap { state.apps[$0.appID] } }) else { return .notFound }

        let now = configuration.clock()
        let bot = Identity(name: app.botLogin, email: app.botEmail, date: now, gitDate: "\(Int64(now.timeIntervalSince1970)) +0000")
        let author = try parseIdentity(fields["author"], field: "author", fallback: nil, now: bot) ?? bot
        let givenCommitter = try parseIdentity(fields["committer"], field: "committer", fallback: author, now: bot)
        let committer = givenCommitter ?? bot

        let types = try await objectTypes(repo, ([tree] + parents).filter(Self.isObjectName).map { $0.lowercased() })
        guard Self.isObjectName(tree), types[tree.lowercased()] == "tree" else { return .validationFailed("Tree SHA does not exist", field: "tree") }
        for parent in parents where !Self.isObjectName(parent) || types[parent.lowercased()] != "commit" {
            return .validationFailed("Parent SHA does not exist or is not a commit object", field: "parents")
        }

        let identity = [
            "GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email, "GIT_AUTHOR_DATE": author.gitDate,
            "GIT_COMMITTER_NAME": committer.name, "GIT_COMMITTER_EMAIL": committer.email, "GIT_COMMITTER_DATE": committer.gitDate,
        ]
        let unsigned = try await gitText(repo, ["commit-tree", tree.lowercased()] + parents.flatMap { ["-p", $0.lowercased()] },
                                         environment: identity, stdin: Array(message.utf8), failure: 422)
        // GitHub signs the commits its bots make through the API (no committer of their own, no signature given).
        let signedByGitHub = signature == nil && (givenCommitter == nil || (committer.name == bot.name && committer.email == bot.email))
        var sha = unsigned
        var verification = SimulatedCommitVerification(verified: false, reason: "unsigned", signature: nil, payload: nil)
        let given = signature as? String
        if given != nil || signedByGitHub {
            // The signature goes into the commit's `gpgsig` header, over the commit as written without it.
            let payload = try await gitRun(repo, ["cat-file", "commit", unsigned]).stdout
            let text = given ?? Self.simulatedSignature(payload)
            sha = try await gitText(repo, ["hash-object", "-t", "commit", "-w", "--stdin"], stdin: Self.insertingSignature(text, into: payload), failure: 422)
            verification = SimulatedCommitVerification(verified: signedByGitHub, reason: signedByGitHub ? "valid" : "unknown_key",
                                                       signature: text, payload: String(decoding: payload, as: UTF8.self))
        }
        store.withState { $0.recordVerification(verification, sha: sha, repositoryID: repo.id) }
        let url = "\(base)/repos/\(repo.fullName)/git/commits/\(sha)"
        let person = { (identity: Identity) -> [String: Any] in ["name": identity.name, "email": identity.email, "date": iso8601.string(from: identity.date)] }
        return .json(201, [
            "sha": sha, "node_id": "C_\(sha)", "url": url, "html_url": "\(base)/\(repo.fullName)/commit/\(sha)",
            "author": person(author), "committer": person(committer), "message": message,
            "tree": ["sha": tree.lowercased(), "url": "\(base)/repos/\(repo.fullName)/git/trees/\(tree.lowercased())"],
            "parents": parents.map { parent -> [String: Any] in
                ["sha": parent.lowercased(), "url": "\(base)/repos/\(repo.fullName)/git/commits/\(parent.lowercased())",
                 "html_url": "\(base)/\(repo.fullName)/commit/\(parent.lowercased())"]
            },
            "verification": verificationJSON(verification),
        ], headers: [("Location", url)])
    }

    func verificationJSON(_ verification: SimulatedCommitVerification) -> [String: Any] {
        ["verified": verification.verified, "reason": verification.reason,
         "signature": nullable(verification.signature), "payload": nullable(verification.payload)]
    }

    // MARK: References

    private func createRef(repo: SimulatedRepository, fields: [String: Any]) async throws -> SimResponse {
        guard let ref = fields["ref"] as? String else { return Self.invalidRequest("\"ref\" wasn't supplied.") }
        guard let sha = (fields["sha"] as? String)?.lowercased() else { return Self.invalidRequest("\"sha\" wasn't supplied.") }
        guard ref.hasPrefix("refs/"), ref.filter({ $0 == "/" }).count >= 2,
              try await gitRun(repo, ["check-ref-format", ref]).status == 0 else { return .message(422, "Reference name is invalid") }
        let type = try await objectType(repo, sha, forRef: ref)
        if try await gitRun(repo, ["show-ref", "--verify", "--quiet", ref]).status == 0 { return .message(422, "Reference already exists") }
        if let refusal = try await signedCommitsRefusal(repo: repo, ref: ref, old: nil, new: sha) { return refusal }
        guard try await gitRun(repo, ["update-ref", ref, sha, String(repeating: "0", count: 40)]).status == 0 else {
            return .message(422, "Reference already exists")
        }
        await refreshPullRequestHeads(repo)
        let url = "\(base)/repos/\(repo.fullName)/git/\(ref)"
        return .json(201, refJSON(repo, ref: ref, sha: sha, type: type), headers: [("Location", url)])
    }

    private func updateRef(repo: SimulatedRepository, segments: [String], fields: [String: Any]) async throws -> SimResponse {
        // `{ref}` is `heads/<branch>`, its slashes sent as they are or escaped (`heads%2Fmain`, as octokit sends
        // it): GitHub takes both, and so do the segments here (already percent-decoded).
        let ref = "refs/" + segments.joined(separator: "/")
        guard let sha = (fields["sha"] as? String)?.lowercased() else { return Self.invalidRequest("\"sha\" wasn't supplied.") }
        guard let force = (fields["force"] ?? false) as? Bool else { return .validationFailed("force must be a boolean", field: "force") }
        let current = try await gitRun(repo, ["show-ref", "--verify", "--hash", ref])
        guard current.status == 0, !current.stdoutText.isEmpty else { return .message(422, "Reference does not exist") }
        let old = current.stdoutText
        let type = try await objectType(repo, sha, forRef: ref)
        if !force && old != sha {
            let ancestry = try await gitRun(repo, ["merge-base", "--is-ancestor", old, sha])
            guard ancestry.status == 0 else { return .message(422, "Update is not a fast forward") }
        }
        if let refusal = try await signedCommitsRefusal(repo: repo, ref: ref, old: old, new: sha) { return refusal }
        // Compare-and-swap: a concurrent update in between fails rather than being overwritten.
        guard try await gitRun(repo, ["update-ref", ref, sha, old]).status == 0 else { return .message(422, "Reference cannot be updated") }
        await refreshPullRequestHeads(repo)
        return .json(200, refJSON(repo, ref: ref, sha: sha, type: type))
    }

    /// The type of the object a reference is to point at; 422 when it does not exist or a branch would not point at a commit.
    private func objectType(_ repo: SimulatedRepository, _ sha: String, forRef ref: String) async throws -> String {
        guard Self.isObjectName(sha), let type = try await objectTypes(repo, [sha])[sha] else {
            throw SimResponseError(response: .message(422, "Object does not exist"))
        }
        guard type == "commit" || !ref.hasPrefix("refs/heads/") else { throw SimResponseError(response: .message(422, "Object is not a commit")) }
        return type
    }

    private func refJSON(_ repo: SimulatedRepository, ref: String, sha: String, type: String) -> [String: Any] {
        [
            "ref": ref, "node_id": "REF_\(Data(ref.utf8).base64EncodedString())", "url": "\(base)/repos/\(repo.fullName)/git/\(ref)",
            "object": ["type": type, "sha": sha, "url": "\(base)/repos/\(repo.fullName)/git/\(type)s/\(sha)"],
        ]
    }

    // MARK: git

    /// Runs git on the repository's bare directory and returns its result, whatever the exit status.
    func gitRun(_ repo: SimulatedRepository, _ arguments: [String], environment: [String: String] = [:], stdin: [UInt8]? = nil) async throws -> ProcessResult {
        var merged = sanitizedGitEnvironment()
        merged["GIT_TERMINAL_PROMPT"] = "0"
        for (name, value) in environment { merged[name] = value }
        return try await runProcess(["git", "--git-dir", repo.gitDirectory] + arguments, environment: merged, stdin: stdin)
    }

    /// Runs git and returns its trimmed output; a failure answers `failure` (422 for what the request asked, 500 otherwise).
    @discardableResult
    func gitText(_ repo: SimulatedRepository, _ arguments: [String], environment: [String: String] = [:], stdin: [UInt8]? = nil,
                 failure: Int = 500) async throws -> String {
        let result = try await gitRun(repo, arguments, environment: environment, stdin: stdin)
        guard result.status == 0 else {
            let detail = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            throw SimResponseError(response: failure == 422 ? .validationFailed(detail) : .message(failure, "git \(arguments.first ?? "") failed: \(detail)"))
        }
        return result.stdoutText
    }

    /// The types of the objects named (`blob`, `tree`, `commit`, `tag`); missing ones are left out.
    func objectTypes(_ repo: SimulatedRepository, _ shas: [String]) async throws -> [String: String] {
        guard !shas.isEmpty else { return [:] }
        let output = try await gitText(repo, ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
                                       stdin: Array(shas.map { $0 + "\n" }.joined().utf8))
        var types: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[1] != "missing" { types[String(parts[0])] = String(parts[1]) }
        }
        return types
    }

    static func isObjectName(_ text: String) -> Bool { text.count == 40 && text.allSatisfy(\.isHexDigit) }

    static func invalidRequest(_ detail: String) -> SimResponse { .message(422, "Invalid request.\n\n\(detail)") }

    /// Parses an ISO 8601 time (`2008-07-09T16:13:30+12:00`, `…Z`) into the date and git's `<seconds> <±hhmm>`.
    static func parseDate(_ text: String) -> (Date, String)? {
        let formatter = ISO8601DateFormatter()
        var date = formatter.date(from: text)
        if date == nil {
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            date = formatter.date(from: text)
        }
        guard let date else { return nil }
        var offset = "+0000"
        let zone = text.suffix(6)
        if !text.uppercased().hasSuffix("Z"), zone.count == 6, zone.first == "+" || zone.first == "-", zone.dropFirst(3).first == ":" {
            offset = String(zone.prefix(3) + zone.suffix(2))
        }
        return (date, "\(Int64(date.timeIntervalSince1970.rounded(.down))) \(offset)")
    }
}
