import Foundation
import GitHub
import GitHubSimulator
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2))) struct GitSmartHTTPTests {
    static func authHeader(_ token: String) -> String {
        "http.extraHeader=Authorization: Basic " + Data("x-access-token:\(token)".utf8).base64EncodedString()
    }

    @Test func cloneAndPushWithInstallationToken() async throws {
        try await withFixture { f in
            let directory = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let token = try await f.client.tokens.token(installationID: f.installationID, repositoryID: f.repository.id).token
            var environment = ProcessInfo.processInfo.environment
            environment["GIT_TERMINAL_PROMPT"] = "0"
            environment["GIT_AUTHOR_NAME"] = "asynccode"
            environment["GIT_AUTHOR_EMAIL"] = "bot@example.com"
            environment["GIT_COMMITTER_NAME"] = "asynccode"
            environment["GIT_COMMITTER_EMAIL"] = "bot@example.com"

            // Without credentials the clone is refused.
            let anonymous = try await run(["git", "clone", "-q", f.repository.cloneURL, "\(directory)/anon"], environment: environment)
            #expect(anonymous.status != 0)
            // With a bogus token too.
            let bogus = try await run(["git", "-c", Self.authHeader("ghs_bogus"), "clone", "-q", f.repository.cloneURL, "\(directory)/bogus"], environment: environment)
            #expect(bogus.status != 0)

            let clone = try await run(["git", "-c", Self.authHeader(token), "clone", "-q", f.repository.cloneURL, "\(directory)/work"], environment: environment)
            if clone.status != 0 {
                let basic = Data("x-access-token:\(token)".utf8).base64EncodedString()
                let debug = try await run(["curl", "-s", "-i", "-H", "Authorization: Basic \(basic)", "\(f.repository.cloneURL)/info/refs?service=git-upload-pack"])
                Issue.record("clone failed: \(clone.output)\ncurl: \(debug.output.prefix(800))\nrequests: \(f.sim.requests.filter(\.isGit).map { "\($0.method) \($0.path) \($0.status)" })")
            }
            try #require(clone.status == 0, "\(clone.output)")
            #expect(FileManager.default.fileExists(atPath: "\(directory)/work/.asynccode.yml"))

            // A large, compressible file makes git gzip the request body.
            let big = String(repeating: "line of generated text\n", count: 80_000)
            try Data(big.utf8).write(to: URL(fileURLWithPath: "\(directory)/work/big.txt"))
            try await run(["git", "checkout", "-q", "-b", "asynccode/issue-7"], currentDirectory: "\(directory)/work", environment: environment)
            try await run(["git", "add", "-A"], currentDirectory: "\(directory)/work", environment: environment)
            let commit = try await run(["git", "commit", "-q", "-m", "Change"], currentDirectory: "\(directory)/work", environment: environment)
            try #require(commit.status == 0, "\(commit.output)")
            let push = try await run(["git", "-c", Self.authHeader(token), "push", "-q", "origin", "asynccode/issue-7"],
                                     currentDirectory: "\(directory)/work", environment: environment)
            try #require(push.status == 0, "\(push.output)")
            let local = try await run(["git", "rev-parse", "HEAD"], currentDirectory: "\(directory)/work")
            #expect(await f.sim.branchHead(repositoryID: f.repository.id, branch: "asynccode/issue-7") == local.output.trimmingCharacters(in: .whitespacesAndNewlines))

            // Fetch works, and the pushed branch can become a PR.
            let fetch = try await run(["git", "-c", Self.authHeader(token), "fetch", "-q", "origin"], currentDirectory: "\(directory)/work", environment: environment)
            #expect(fetch.status == 0)
            let pull = try await f.client.createPullRequest(in: f.repo, title: "Issue 7", head: "asynccode/issue-7", base: "main")
            #expect(pull.head.sha == local.output.trimmingCharacters(in: .whitespacesAndNewlines))

            // Once revoked, the token no longer pushes.
            try await f.client.revokeInstallationToken(installationID: f.installationID, repositoryID: f.repository.id)
            let denied = try await run(["git", "-c", Self.authHeader(token), "fetch", "-q", "origin"], currentDirectory: "\(directory)/work", environment: environment)
            #expect(denied.status != 0)
            let gitRequests = f.sim.requests.filter(\.isGit)
            #expect(gitRequests.contains { $0.path.hasSuffix("/git-receive-pack") && $0.status == 200 })
            #expect(gitRequests.contains { $0.status == 401 })
        }
    }
}
