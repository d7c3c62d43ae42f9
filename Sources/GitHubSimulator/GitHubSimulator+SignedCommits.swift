import Foundation
import OpenSSLCrypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: Branch protection "Require signed commits"

extension GitHubSimulator {
    /// Turns on the branch protection rule "Require signed commits" for the branches matching `branches`
    /// (`fnmatch` patterns such as `main` or `release/*`; nil: every branch; empty: the rule is off).
    ///
    /// Enforced as GitHub enforces it, on both ways in: a `pre-receive` hook installed in the bare repository
    /// refuses a push (`git push` over smart HTTP, and the admin helpers' pushes) that puts a commit without a
    /// verified signature on such a branch, printing GitHub's `GH006` lines; and the Git references API answers
    /// 422. Verified commits are those made through `POST /repos/{o}/{r}/git/commits` by the App's bot (see
    /// ``commitVerification(repositoryID:sha:)``) and those marked with ``markVerified(repositoryID:sha:)``.
    public func requireSignedCommits(repositoryID: Int64, branches: [String]? = nil) async throws {
        guard let repo = store.withState({ $0.repositories[repositoryID] }) else { throw SimulatorError("no repository \(repositoryID)") }
        let patterns = branches ?? ["*"]
        let fileManager = FileManager.default
        let directory = SignedCommitsFiles.directory(repo)
        try fileManager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(patterns.map { $0 + "\n" }.joined().utf8).write(to: URL(fileURLWithPath: SignedCommitsFiles.protectedBranches(repo)), options: .atomic)
        store.withState { state in
            state.signedCommitBranches[repositoryID] = patterns.isEmpty ? nil : patterns
            state.writeVerifiedCommits(repositoryID)
        }
        let hooks = "\(repo.gitDirectory)/hooks"
        try fileManager.createDirectory(atPath: hooks, withIntermediateDirectories: true)
        try Data(SignedCommitsFiles.preReceiveHook(repo).utf8).write(to: URL(fileURLWithPath: "\(hooks)/pre-receive"), options: .atomic)
        try fileManager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: "\(hooks)/pre-receive")
        // The hooks folder of the bare repository, named outright so no inherited setting can move it elsewhere.
        try await git(["--git-dir", repo.gitDirectory, "config", "core.hooksPath", hooks])
    }

    /// The branch patterns that require signed commits in a repository (empty: none).
    public func signedCommitBranches(repositoryID: Int64) -> [String] {
        store.withState { $0.signedCommitBranches[repositoryID] ?? [] }
    }

    /// Whether updates of `branch` must carry only verified commits.
    public func requiresSignedCommits(repositoryID: Int64, branch: String) -> Bool {
        signedCommitBranches(repositoryID: repositoryID).contains { branchMatches(branch, pattern: $0) }
    }

    /// What GitHub says about the signature of a commit made through the Git commits API (`verification`), or
    /// nil for a commit that did not come through it (pushed or seeded commits, which are unsigned).
    public func commitVerification(repositoryID: Int64, sha: String) -> SimulatedCommitVerification? {
        store.withState { $0.commitVerifications[repositoryID]?[sha.lowercased()] }
    }

    /// Whether GitHub considers `sha` a verified commit of the repository.
    public func isVerified(repositoryID: Int64, sha: String) -> Bool {
        commitVerification(repositoryID: repositoryID, sha: sha)?.verified ?? false
    }

    /// Whether GitHub considers `sha` a verified commit in any repository.
    public func isVerified(sha: String) -> Bool {
        store.withState { state in state.commitVerifications.values.contains { $0[sha.lowercased()]?.verified ?? false } }
    }

    /// Marks a commit as verified, as if someone GitHub knows the key of had signed it (to seed a protected
    /// branch's history); ``addCommit(repositoryID:branch:files:message:verified:)`` does it before pushing.
    public func markVerified(repositoryID: Int64, sha: String) {
        store.withState { state in
            state.recordVerification(SimulatedCommitVerification(verified: true, reason: "valid", signature: nil, payload: nil),
                                     sha: sha.lowercased(), repositoryID: repositoryID)
        }
    }

    /// The user id of an App's bot (`<slug>[bot]`), which its commits' email carries: `<id>+<slug>[bot]@users.noreply.github.com`.
    public func botUserID(appID: Int64) -> Int64? {
        store.withState { $0.apps[appID]?.botUserID }
    }
}

extension SimulatorAPI {
    /// The 422 GitHub answers when moving `ref` from `old` (nil: a new reference) to `new` would put a commit
    /// without a verified signature on a branch that requires them; nil when the update may go ahead.
    func signedCommitsRefusal(repo: SimulatedRepository, ref: String, old: String?, new: String) async throws -> SimResponse? {
        guard ref.hasPrefix("refs/heads/") else { return nil }
        let branch = String(ref.dropFirst("refs/heads/".count))
        let patterns = store.withState { $0.signedCommitBranches[repo.id] ?? [] }
        guard patterns.contains(where: { branchMatches(branch, pattern: $0) }) else { return nil }
        // The commits the update brings onto the branch: since the old head, or (a new branch) all not on any ref yet.
        let range = old.map { ["rev-list", "\($0)..\(new)"] } ?? ["rev-list", new, "--not", "--all"]
        let commits = try await gitText(repo, range).split(separator: "\n").map(String.init)
        let verified = store.withState { state in Set((state.commitVerifications[repo.id] ?? [:]).filter { $0.value.verified }.keys) }
        guard commits.contains(where: { !verified.contains($0) }) else { return nil }
        return .message(422, "Protected branch update failed for \(ref). Commits must have verified signatures.", errors: [
            ["resource": "Reference", "field": "sha", "code": "custom", "message": "Commits must have verified signatures."],
        ])
    }

    /// The armored signature the simulator puts on its bots' API commits (not a real PGP signature: a digest of
    /// the payload, so it differs per commit as a real one would).
    static func simulatedSignature(_ payload: [UInt8]) -> String {
        let digest = SHA256Digest.hash(Array("github-simulator web-flow\n".utf8) + payload)
        return "-----BEGIN PGP SIGNATURE-----\nComment: GitHub simulator (simulated signature)\n\n"
            + Data(digest).base64EncodedString() + "\n-----END PGP SIGNATURE-----\n"
    }

    /// The commit object `payload` with `signature` in a `gpgsig` header after its other headers, as git writes it.
    static func insertingSignature(_ signature: String, into payload: [UInt8]) -> [UInt8] {
        var lines = signature.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while lines.last == "" { lines.removeLast() }
        let header = Array(("\ngpgsig " + lines.joined(separator: "\n ")).utf8)
        // Headers end at the first empty line.
        var end = payload.count
        for index in payload.indices.dropLast() where payload[index] == 10 && payload[index + 1] == 10 {
            end = index
            break
        }
        return Array(payload[..<end]) + header + Array(payload[end...])
    }
}

/// `fnmatch` as the `case` statement of the hook matches (`*` also matches `/`).
func branchMatches(_ branch: String, pattern: String) -> Bool {
    fnmatch(pattern, branch, 0) == 0
}

extension SimulatorStore.State {
    /// Records what GitHub says about a commit's signature; verified ones also go to the file the hook reads.
    mutating func recordVerification(_ verification: SimulatedCommitVerification, sha: String, repositoryID: Int64) {
        commitVerifications[repositoryID, default: [:]][sha] = verification
        if verification.verified { writeVerifiedCommits(repositoryID) }
    }

    /// Writes the repository's verified SHAs, one a line, for its `pre-receive` hook (under the store's lock, so
    /// writers never interleave).
    func writeVerifiedCommits(_ repositoryID: Int64) {
        guard let repo = repositories[repositoryID] else { return }
        let shas = (commitVerifications[repositoryID] ?? [:]).filter { $0.value.verified }.keys.sorted()
        try? FileManager.default.createDirectory(atPath: SignedCommitsFiles.directory(repo), withIntermediateDirectories: true)
        try? Data(shas.map { $0 + "\n" }.joined().utf8).write(to: URL(fileURLWithPath: SignedCommitsFiles.verifiedCommits(repo)), options: .atomic)
    }
}

/// Where the rule lives in a bare repository, and the hook that enforces it on pushes.
enum SignedCommitsFiles {
    static func directory(_ repo: SimulatedRepository) -> String { "\(repo.gitDirectory)/simulator" }
    static func protectedBranches(_ repo: SimulatedRepository) -> String { "\(directory(repo))/protected-branches" }
    static func verifiedCommits(_ repo: SimulatedRepository) -> String { "\(directory(repo))/verified-commits" }

    static func preReceiveHook(_ repo: SimulatedRepository) -> String {
        let quote = { (text: String) in "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        return #"""
        #!/bin/sh
        # Installed by the GitHub simulator: branch protection "Require signed commits".
        # stdin: one "<old> <new> <ref>" line per updated reference.
        protected=\#(quote(protectedBranches(repo)))
        verified=\#(quote(verifiedCommits(repo)))
        zero=0000000000000000000000000000000000000000
        status=0
        while read -r old new ref; do
          case "$ref" in refs/heads/*) branch=${ref#refs/heads/} ;; *) continue ;; esac
          [ "$new" = "$zero" ] && continue
          matched=
          while IFS= read -r pattern || [ -n "$pattern" ]; do
            [ -n "$pattern" ] || continue
            case "$branch" in $pattern) matched=1 ;; esac
          done < "$protected"
          [ -n "$matched" ] || continue
          if [ "$old" = "$zero" ]; then
            commits=$(git rev-list "$new" --not --all) || exit 1
          else
            commits=$(git rev-list "$old..$new") || exit 1
          fi
          [ -n "$commits" ] || continue
          touch "$verified"
          if printf '%s\n' "$commits" | grep -qvxF -f "$verified"; then
            echo "error: GH006: Protected branch update failed for $ref." >&2
            echo "error: Commits must have verified signatures." >&2
            status=1
          fi
        done
        exit $status

        """#
    }
}
