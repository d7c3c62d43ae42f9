import Foundation
import GitHub
import GitHubSimulator
import Testing
import TestSupport

/// The simulator's Git database API (blobs, trees, commits, references), `GET /users/{username}` and the
/// branch protection rule "Require signed commits", driven over plain HTTP (curl) as GitHub would be.
@Suite(.timeLimit(.minutes(3))) struct GitDataSimulatorTests {
    /// A REST caller with the headers GitHub wants; `conforming: false` marks requests made wrong on purpose,
    /// which the OpenAPI check then leaves out (it checks only `User-Agent: asynccode/…`).
    struct REST {
        let sim: GitHubSimulator
        let token: String?

        func call(_ method: String, _ path: String, _ body: Any? = nil, authorization: String? = nil,
                  conforming: Bool = true) async throws -> (status: Int, json: [String: Any]) {
            var arguments = ["curl", "-s", "-g", "-X", method, "-w", "\n%{http_code}",
                             "-H", "Accept: application/vnd.github+json", "-H", "X-GitHub-Api-Version: 2022-11-28",
                             "-H", "User-Agent: \(conforming ? "asynccode/test" : "hand-made-test")"]
            if let header = authorization ?? token.map({ "Bearer \($0)" }) { arguments += ["-H", "Authorization: \(header)"] }
            if let body {
                let data = try JSONSerialization.data(withJSONObject: body)
                arguments += ["-H", "Content-Type: application/json", "--data-binary", String(decoding: data, as: UTF8.self)]
            }
            let result = try await run(arguments + [sim.apiURL + path])
            try #require(result.status == 0, "curl failed: \(result.output)")
            var lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
            let status = Int(lines.removeLast()) ?? 0
            let text = lines.joined(separator: "\n")
            let json = text.isEmpty ? [:] : (try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:])
            return (status, json)
        }

        /// Calls and requires `status`; returns the JSON.
        func expect(_ status: Int, _ method: String, _ path: String, _ body: Any? = nil, conforming: Bool = true,
                    sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String: Any] {
            let answer = try await call(method, path, body, conforming: conforming)
            try #require(answer.status == status, "\(method) \(path): \(answer.status) \(answer.json)", sourceLocation: sourceLocation)
            return answer.json
        }
    }

    static func rest(_ f: Fixture) async throws -> REST {
        REST(sim: f.sim, token: try await f.client.tokens.token(installationID: f.installationID, repositoryID: f.repository.id).token)
    }

    /// `PATCH …/git/refs/{ref}` for a branch, `{ref}` escaped as one path segment (`heads%2Fmain`), as the client
    /// and octokit send it.
    static func refPath(_ repo: String, _ branch: String) -> String {
        "\(repo)/git/refs/heads%2F" + branch.replacingOccurrences(of: "/", with: "%2F")
    }

    /// The SHA git gives `bytes` as a blob (hashed by a local git, not the simulator).
    static func blobSHA(_ bytes: [UInt8]) async throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("blob-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return try await run(["git", "hash-object", file]).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func blobsTreesAndACommitMoveABranch() async throws {
        try await withFixture { f in
            let api = try await Self.rest(f)
            let repo = "/repos/\(f.repository.fullName)"
            let id = f.repository.id
            let head = try await f.sim.addCommit(repositoryID: id, branch: "main", files: ["scripts/run.sh": "echo hi\n", "old.txt": "bye\n"])
            let baseTree = try await f.sim.gitOutput(repositoryID: id, ["rev-parse", "main^{tree}"])
            let script = try await f.sim.gitOutput(repositoryID: id, ["rev-parse", "main:scripts/run.sh"])

            // Blobs: UTF-8 text, and binary bytes (NULs included) in Base64; git stores the exact bytes.
            let text = "# New\n\nünïcode ✓\n"
            let textBlob = try await api.expect(201, "POST", "\(repo)/git/blobs", ["content": text, "encoding": "utf-8"])
            let textSHA = try #require(textBlob["sha"] as? String)
            #expect(textSHA == (try await Self.blobSHA(Array(text.utf8))))
            #expect(textBlob["url"] as? String == "\(f.sim.apiURL)\(repo)/git/blobs/\(textSHA)")
            let binary: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0, 0, 0, 0x0D, 0xFF, 0, 0x0A, 0x1A, 0]
            let binaryBlob = try await api.expect(201, "POST", "\(repo)/git/blobs", ["content": Data(binary).base64EncodedString(), "encoding": "base64"])
            let binarySHA = try #require(binaryBlob["sha"] as? String)
            #expect(binarySHA == (try await Self.blobSHA(binary)))
            #expect(try await f.sim.gitOutput(repositoryID: id, ["cat-file", "-s", binarySHA]) == String(binary.count))

            // A tree on the branch's: two files added (one by sha, one inline), one deleted, one made executable.
            let tree = try await api.expect(201, "POST", "\(repo)/git/trees", [
                "base_tree": baseTree,
                "tree": [
                    ["path": "docs/new.md", "mode": "100644", "type": "blob", "sha": textSHA],
                    ["path": "assets/logo.bin", "mode": "100644", "type": "blob", "sha": binarySHA],
                    ["path": "inline.txt", "mode": "100644", "type": "blob", "content": "written inline\n"],
                    ["path": "old.txt", "mode": "100644", "type": "blob", "sha": NSNull()],
                    ["path": "scripts/run.sh", "mode": "100755", "type": "blob", "sha": script],
                ] as [Any],
            ])
            let treeSHA = try #require(tree["sha"] as? String)
            #expect(tree["truncated"] as? Bool == false)
            let entries = try #require(tree["tree"] as? [[String: Any]])
            #expect(Set(entries.compactMap { $0["path"] as? String }) == [".asynccode.yml", "README.md", "assets", "docs", "inline.txt", "scripts"])
            let inline = try #require(entries.first { $0["path"] as? String == "inline.txt" })
            #expect(inline["mode"] as? String == "100644" && inline["type"] as? String == "blob" && inline["size"] as? Int == 15)
            #expect(entries.first { $0["path"] as? String == "docs" }?["mode"] as? String == "040000")

            // The commit, made by the App's bot and signed by GitHub; then the branch fast-forwards to it.
            let commit = try await api.expect(201, "POST", "\(repo)/git/commits", ["message": "Add docs\n\nand more", "tree": treeSHA, "parents": [head]])
            let sha = try #require(commit["sha"] as? String)
            let bot = f.app.botLogin
            #expect((commit["author"] as? [String: Any])?["name"] as? String == bot)
            #expect((commit["committer"] as? [String: Any])?["email"] as? String == "\(f.app.botUserID)+\(bot)@users.noreply.github.com")
            #expect((commit["tree"] as? [String: Any])?["sha"] as? String == treeSHA)
            #expect((commit["parents"] as? [[String: Any]])?.compactMap { $0["sha"] as? String } == [head])
            #expect(commit["message"] as? String == "Add docs\n\nand more")
            let verification = try #require(commit["verification"] as? [String: Any])
            #expect(verification["verified"] as? Bool == true && verification["reason"] as? String == "valid")
            #expect(f.sim.isVerified(sha: sha) && f.sim.isVerified(repositoryID: id, sha: sha))
            let object = try await f.sim.gitOutput(repositoryID: id, ["cat-file", "commit", sha])
            #expect(object.contains("\ngpgsig -----BEGIN PGP SIGNATURE-----\n"))
            #expect((verification["payload"] as? String).map { $0.hasPrefix("tree \(treeSHA)\nparent \(head)\n") && !$0.contains("gpgsig") } == true)
            #expect(try await f.sim.gitOutput(repositoryID: id, ["log", "-1", "--format=%s", sha]) == "Add docs")

            let moved = try await api.expect(200, "PATCH", Self.refPath(repo, "main"), ["sha": sha])
            #expect(moved["ref"] as? String == "refs/heads/main")
            #expect((moved["object"] as? [String: Any])?["sha"] as? String == sha)
            #expect(await f.sim.branchHead(repositoryID: id, branch: "main") == sha)

            // What the branch now holds, as git lists it.
            let listing = try await f.sim.gitOutput(repositoryID: id, ["ls-tree", "-r", "main"])
            #expect(listing.contains("100755 blob \(script)\tscripts/run.sh"))
            #expect(listing.contains("100644 blob \(binarySHA)\tassets/logo.bin"))
            #expect(!listing.contains("old.txt"))
            #expect(try await f.sim.gitOutput(repositoryID: id, ["show", "main:docs/new.md"]) == text.trimmingCharacters(in: .newlines))
            #expect(try await f.sim.gitOutput(repositoryID: id, ["show", "main:inline.txt"]) == "written inline")
            #expect(try await f.sim.gitOutput(repositoryID: id, ["show", "main:README.md"]) == "# Widgets")
            f.expectConformance()
        }
    }

    @Test func referencesAreCreatedAndMovedAsOnGitHub() async throws {
        try await withFixture { f in
            let api = try await Self.rest(f)
            let repo = "/repos/\(f.repository.fullName)"
            let id = f.repository.id
            let head = try #require(await f.sim.branchHead(repositoryID: id, branch: "main"))
            let tree = try await f.sim.gitOutput(repositoryID: id, ["rev-parse", "main^{tree}"])

            // A new branch; the same name again is refused.
            let created = try await api.expect(201, "POST", "\(repo)/git/refs", ["ref": "refs/heads/feature/x", "sha": head])
            #expect(created["url"] as? String == "\(f.sim.apiURL)\(repo)/git/refs/heads/feature/x")
            #expect(await f.sim.branchHead(repositoryID: id, branch: "feature/x") == head)
            let again = try await api.call("POST", "\(repo)/git/refs", ["ref": "refs/heads/main", "sha": head])
            #expect(again.status == 422 && again.json["message"] as? String == "Reference already exists")

            // A pull request from the branch follows it when the reference moves.
            let pull = try await f.sim.openPullRequest(repositoryID: id, title: "X", head: "feature/x")
            let ahead = try await api.expect(201, "POST", "\(repo)/git/commits", ["message": "Ahead", "tree": tree, "parents": [head]])
            let aheadSHA = try #require(ahead["sha"] as? String)
            _ = try await api.expect(200, "PATCH", Self.refPath(repo, "feature/x"), ["sha": aheadSHA])
            #expect(f.sim.pullRequests(repositoryID: id).first { $0.number == pull.number }?.headSHA == aheadSHA)

            // Not a fast-forward (a sibling of the head): refused, unless forced.
            let sibling = try await api.expect(201, "POST", "\(repo)/git/commits", ["message": "Sibling", "tree": tree, "parents": [head]])
            let siblingSHA = try #require(sibling["sha"] as? String)
            let refused = try await api.call("PATCH", Self.refPath(repo, "feature/x"), ["sha": siblingSHA])
            #expect(refused.status == 422 && refused.json["message"] as? String == "Update is not a fast forward")
            #expect(await f.sim.branchHead(repositoryID: id, branch: "feature/x") == aheadSHA)
            _ = try await api.expect(200, "PATCH", Self.refPath(repo, "feature/x"), ["sha": siblingSHA, "force": true])
            #expect(await f.sim.branchHead(repositoryID: id, branch: "feature/x") == siblingSHA)

            // `{ref}` with its slashes as they are works too (the local OpenAPI check spans only `{path}`, hence
            // `conforming: false`); no such reference is a 422.
            let plain = try await api.call("PATCH", "\(repo)/git/refs/heads/feature/x", ["sha": siblingSHA], conforming: false)
            #expect(plain.status == 200 && plain.json["ref"] as? String == "refs/heads/feature/x")
            let missing = try await api.call("PATCH", Self.refPath(repo, "nope"), ["sha": head])
            #expect(missing.status == 422 && missing.json["message"] as? String == "Reference does not exist")
            #expect(try await api.call("POST", "\(repo)/git/refs", ["ref": "refs/heads/y", "sha": String(repeating: "a", count: 40)]).status == 422)
            #expect(try await api.call("POST", "\(repo)/git/refs", ["ref": "heads/y", "sha": head]).status == 422)

            // Trees, commits and blobs GitHub would refuse.
            let zeros = String(repeating: "0", count: 40)
            for entry: [String: Any] in [
                ["path": "../evil", "mode": "100644", "type": "blob", "content": "x"],
                ["path": "/abs", "mode": "100644", "type": "blob", "content": "x"],
                ["path": "a//b", "mode": "100644", "type": "blob", "content": "x"],
                ["path": "ok.txt", "mode": "100644", "type": "blob", "sha": zeros],
                ["path": "ok.txt", "mode": "100644", "type": "tree", "content": "x"],
                ["path": "ok.txt", "mode": "100644", "type": "blob", "sha": head, "content": "x"],
            ] {
                #expect(try await api.call("POST", "\(repo)/git/trees", ["tree": [entry]]).status == 422, "\(entry)")
            }
            let badMode = try await api.call("POST", "\(repo)/git/trees", ["tree": [["path": "x", "mode": "100600", "type": "blob", "content": "x"]]], conforming: false)
            #expect(badMode.status == 422)
            #expect(try await api.call("POST", "\(repo)/git/trees", ["base_tree": zeros, "tree": [] as [Any]]).status == 422)
            #expect(try await api.call("POST", "\(repo)/git/commits", ["message": "m", "tree": zeros, "parents": [head]]).status == 422)
            #expect(try await api.call("POST", "\(repo)/git/commits", ["message": "m", "tree": tree, "parents": [zeros]]).status == 422)
            #expect(try await api.call("POST", "\(repo)/git/commits", ["message": "m", "tree": head]).status == 422, "a commit is not a tree")
            #expect(try await api.call("POST", "\(repo)/git/blobs", ["content": "x", "encoding": "latin-1"]).status == 422)
            #expect(try await api.call("POST", "\(repo)/git/blobs", ["encoding": "utf-8"], conforming: false).status == 422)

            // A token without `contents: write` may not write.
            let reader = try await f.client.tokens.token(installationID: f.installationID, repositoryID: id, permissions: ["contents": "read"]).token
            let denied = try await REST(sim: f.sim, token: reader).call("POST", "\(repo)/git/blobs", ["content": "x"], conforming: false)
            #expect(denied.status == 403)
            f.expectConformance()
        }
    }

    @Test func botsAreUsersAndOnlyTheBotsOwnCommitsAreVerified() async throws {
        try await withFixture { f in
            let api = try await Self.rest(f)
            let repo = "/repos/\(f.repository.fullName)"
            let botPath = "/users/\(f.app.slug)%5Bbot%5D"

            // The bot, without credentials, with the installation token and with an App JWT.
            let anonymous = REST(sim: f.sim, token: nil)
            let bot = try await anonymous.expect(200, "GET", botPath)
            #expect(bot["login"] as? String == f.app.botLogin && bot["type"] as? String == "Bot")
            #expect((bot["id"] as? NSNumber)?.int64Value == f.app.botUserID)
            #expect(f.sim.botUserID(appID: f.app.id) == f.app.botUserID)
            _ = try await api.expect(200, "GET", botPath)
            let jwt = try AppJWTSigner(issuer: String(f.app.id), privateKeyPEM: f.app.privateKeyPEM).makeJWT(now: f.clock.now())
            #expect(try await anonymous.call("GET", botPath, authorization: "Bearer \(jwt)").status == 200)
            #expect(try await anonymous.call("GET", botPath, authorization: "Bearer ghs_bogus").status == 401)
            let owner = try await anonymous.expect(200, "GET", "/users/ACME")
            #expect(owner["login"] as? String == "acme" && owner["type"] as? String == "User")
            #expect(try await anonymous.call("GET", "/users/nobody-we-know").status == 404)

            let head = try #require(await f.sim.branchHead(repositoryID: f.repository.id, branch: "main"))
            let tree = try await f.sim.gitOutput(repositoryID: f.repository.id, ["rev-parse", "main^{tree}"])
            func commit(_ extra: [String: Any]) async throws -> (sha: String, verification: [String: Any], body: [String: Any]) {
                let body = try await api.expect(201, "POST", "\(repo)/git/commits",
                                                extra.merging(["message": "m", "tree": tree, "parents": [head]]) { a, _ in a })
                return (try #require(body["sha"] as? String), try #require(body["verification"] as? [String: Any]), body)
            }
            // Someone else as committer: unsigned.
            let alice = ["name": "Alice", "email": "alice@example.com"]
            let custom = try await commit(["committer": alice])
            #expect(custom.verification["verified"] as? Bool == false && custom.verification["reason"] as? String == "unsigned")
            #expect(custom.verification["signature"] is NSNull)
            #expect(!f.sim.isVerified(sha: custom.sha))
            #expect(f.sim.commitVerification(repositoryID: f.repository.id, sha: custom.sha)?.reason == "unsigned")
            #expect(!(try await f.sim.gitOutput(repositoryID: f.repository.id, ["cat-file", "commit", custom.sha])).contains("gpgsig"))
            // Another author, the bot committing: signed. With a date and offset, kept as given.
            let dated = try await commit(["author": alice.merging(["date": "2008-07-09T16:13:30+12:00"]) { a, _ in a }])
            #expect(dated.verification["verified"] as? Bool == true)
            #expect((dated.body["author"] as? [String: Any])?["date"] as? String == "2008-07-09T04:13:30Z")
            #expect((dated.body["committer"] as? [String: Any])?["name"] as? String == f.app.botLogin)
            let object = try await f.sim.gitOutput(repositoryID: f.repository.id, ["cat-file", "commit", dated.sha])
            #expect(object.contains("author Alice <alice@example.com> 1215576810 +1200"))
            // The bot named as committer: signed too.
            let named = try await commit(["committer": ["name": f.app.botLogin, "email": f.app.botEmail]])
            #expect(named.verification["verified"] as? Bool == true)
            // A signature of the caller's own: in the commit, but not one GitHub can check.
            let armored = "-----BEGIN PGP SIGNATURE-----\n\nwsBcBAABCAAQBQJfake\n=abcd\n-----END PGP SIGNATURE-----\n"
            let signed = try await commit(["signature": armored])
            #expect(signed.verification["verified"] as? Bool == false && signed.verification["signature"] as? String == armored)
            #expect(try await f.sim.gitOutput(repositoryID: f.repository.id, ["cat-file", "commit", signed.sha]).contains("gpgsig -----BEGIN PGP SIGNATURE-----\n \n wsBcBAABCAAQBQJfake"))
            f.expectConformance()
        }
    }

    @Test func requiredSignedCommitsRefuseUnverifiedPushesAndReferenceUpdates() async throws {
        try await withFixture { f in
            let api = try await Self.rest(f)
            let repo = "/repos/\(f.repository.fullName)"
            let id = f.repository.id
            try await f.sim.requireSignedCommits(repositoryID: id, branches: ["main"])
            #expect(f.sim.requiresSignedCommits(repositoryID: id, branch: "main") && !f.sim.requiresSignedCommits(repositoryID: id, branch: "topic"))
            let head = try #require(await f.sim.branchHead(repositoryID: id, branch: "main"))

            // A commit made in a clone and pushed over smart HTTP: refused on main with GitHub's words, taken elsewhere.
            let directory = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var environment = ProcessInfo.processInfo.environment
            for (name, value) in ["GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "asynccode", "GIT_AUTHOR_EMAIL": "bot@example.com",
                                  "GIT_COMMITTER_NAME": "asynccode", "GIT_COMMITTER_EMAIL": "bot@example.com"] { environment[name] = value }
            let auth = GitSmartHTTPTests.authHeader(try #require(api.token))
            let work = "\(directory)/work"
            func git(_ arguments: [String]) async throws -> (status: Int32, output: String) {
                try await run(["git", "-c", auth] + arguments, currentDirectory: work, environment: environment)
            }
            try #require(try await run(["git", "-c", auth, "clone", "-q", f.repository.cloneURL, work], environment: environment).status == 0)
            try Data("local\n".utf8).write(to: URL(fileURLWithPath: "\(work)/local.txt"))
            _ = try await git(["add", "-A"])
            _ = try await git(["commit", "-q", "-m", "Local"])
            let local = try await git(["rev-parse", "HEAD"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
            let push = try await git(["push", "origin", "HEAD:main"])
            #expect(push.status != 0)
            #expect(push.output.contains("GH006: Protected branch update failed for refs/heads/main."), "\(push.output)")
            #expect(push.output.contains("Commits must have verified signatures."))
            #expect(await f.sim.branchHead(repositoryID: id, branch: "main") == head)
            #expect(try await git(["push", "-q", "origin", "HEAD:refs/heads/topic"]).status == 0)

            // The same commit through the references API: 422 with the same words.
            let refused = try await api.call("PATCH", Self.refPath(repo, "main"), ["sha": local])
            #expect(refused.status == 422)
            #expect((refused.json["message"] as? String)?.contains("Commits must have verified signatures.") == true, "\(refused.json)")
            #expect(await f.sim.branchHead(repositoryID: id, branch: "main") == head)

            // A commit the App made through the API is verified: the reference update and a push of it are taken.
            let tree = try await f.sim.gitOutput(repositoryID: id, ["rev-parse", "topic^{tree}"])
            let made = try await api.expect(201, "POST", "\(repo)/git/commits", ["message": "Verified", "tree": tree, "parents": [head]])
            let verified = try #require(made["sha"] as? String)
            _ = try await api.expect(200, "PATCH", Self.refPath(repo, "main"), ["sha": verified])
            #expect(await f.sim.branchHead(repositoryID: id, branch: "main") == verified)
            let next = try await api.expect(201, "POST", "\(repo)/git/commits", ["message": "Next", "tree": tree, "parents": [verified]])
            let nextSHA = try #require(next["sha"] as? String)
            _ = try await api.expect(201, "POST", "\(repo)/git/refs", ["ref": "refs/heads/staging", "sha": nextSHA])
            #expect(try await git(["fetch", "-q", "origin", "staging"]).status == 0)
            let pushVerified = try await git(["push", "origin", "\(nextSHA):refs/heads/main"])
            #expect(pushVerified.status == 0, "\(pushVerified.output)")
            #expect(await f.sim.branchHead(repositoryID: id, branch: "main") == nextSHA)

            // Every branch protected: a new branch may not bring an unverified commit, whichever way it comes.
            try await f.sim.requireSignedCommits(repositoryID: id)
            try Data("more\n".utf8).write(to: URL(fileURLWithPath: "\(work)/more.txt"))
            _ = try await git(["add", "-A"])
            _ = try await git(["commit", "-q", "-m", "More"])
            let newBranch = try await git(["push", "origin", "HEAD:refs/heads/brand-new"])
            #expect(newBranch.status != 0 && newBranch.output.contains("GH006"), "\(newBranch.output)")
            let unsigned = try await api.expect(201, "POST", "\(repo)/git/commits",
                                                ["message": "Unsigned", "tree": tree, "parents": [nextSHA], "committer": ["name": "A", "email": "a@example.com"]])
            let unsignedSHA = try #require(unsigned["sha"] as? String)
            #expect(try await api.call("POST", "\(repo)/git/refs", ["ref": "refs/heads/other", "sha": unsignedSHA]).status == 422)

            // The admin helpers push too: an unverified commit is refused, one counted as signed is taken.
            await #expect(throws: (any Error).self) { try await f.sim.addCommit(repositoryID: id, branch: "main", files: ["x": "x\n"]) }
            let seeded = try await f.sim.addCommit(repositoryID: id, branch: "main", files: ["y": "y\n"], verified: true)
            #expect(await f.sim.branchHead(repositoryID: id, branch: "main") == seeded)

            // Off again: anything goes.
            try await f.sim.requireSignedCommits(repositoryID: id, branches: [])
            #expect(try await git(["push", "-q", "origin", "HEAD:refs/heads/brand-new"]).status == 0)
            f.expectConformance()
        }
    }
}
