import Foundation
import GitHub
import GitHubSimulator
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2))) struct TokenTests {
    @Test func fiftyConcurrentCallersShareOneMint() async throws {
        try await withFixture { f in
            let tokens = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<50 {
                    group.addTask { try await f.client.tokens.token(installationID: f.installationID, repositoryID: f.repository.id).token }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(tokens.count == 50)
            #expect(Set(tokens).count == 1)
            let mints = f.sim.requests.filter { $0.method == "POST" && $0.path.hasSuffix("/access_tokens") }
            #expect(mints.count == 1)
            #expect(await f.client.tokens.mintCount == 1)

            // The token is narrowed to the one repository and the task permissions.
            let issued = try #require(f.sim.issuedTokens.first)
            #expect(issued.repositoryIDs == [f.repository.id])
            #expect(issued.permissions == ["contents": "write", "issues": "write", "pull_requests": "write", "metadata": "read"])
            let body = try #require(mints.first?.jsonBody as? [String: Any])
            #expect((body["repository_ids"] as? [NSNumber])?.map(\.int64Value) == [f.repository.id])
        }
    }

    @Test func tokenIsRefreshedFiveMinutesBeforeExpiry() async throws {
        try await withFixture { f in
            let first = try await f.client.tokens.token(installationID: f.installationID, repositoryID: f.repository.id)
            // The simulator's tokens live an hour; 54 minutes later the cached one is still used.
            f.clock.advance(by: first.expiresAt.timeIntervalSince(f.clock.now()) - 6 * 60)
            let cached = try await f.client.tokens.token(installationID: f.installationID, repositoryID: f.repository.id)
            #expect(cached.token == first.token)
            #expect(await f.client.tokens.mintCount == 1)
            // Inside the 5-minute margin a new token is minted.
            f.clock.advance(by: 2 * 60)
            let refreshed = try await f.client.tokens.token(installationID: f.installationID, repositoryID: f.repository.id)
            #expect(refreshed.token != first.token)
            #expect(await f.client.tokens.mintCount == 2)
        }
    }

    @Test func tokensAreCachedPerRepository() async throws {
        try await withFixture { f in
            let other = try await f.sim.createRepository(owner: "acme", name: "gadgets", installationID: f.installationID)
            let a = try await f.client.tokens.token(installationID: f.installationID, repositoryID: f.repository.id)
            let b = try await f.client.tokens.token(installationID: f.installationID, repositoryID: other.id)
            #expect(a.token != b.token)
            // A token for one repository cannot read the other (GitHub answers 404).
            let crossed = try await run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer \(a.token)",
                                   "\(f.sim.apiURL)/repos/acme/gadgets"])
            #expect(crossed.output == "404")
            let otherRef = RepositoryRef(owner: "acme", name: "gadgets", id: other.id, installationID: f.installationID)
            #expect(try await f.client.getRepository(otherRef).id == other.id)
        }
    }

    /// `checks` and `actions` calls use tokens of their own (issue 19): the task token never asks for them, a
    /// refusal of them is theirs alone, and a task's end revokes them all.
    @Test func checkCallsUseTokensOfTheirOwnAndAllAreRevoked() async throws {
        try await withFixture { f in
            let head = try #require(await f.sim.branchHead(repositoryID: f.repository.id, branch: "main"))
            _ = try await f.client.getRepository(f.repo)
            let created: CheckRun = try await f.client.createCheckRun(
                in: f.repo, NewCheckRun(name: "asynccode", headSHA: head, conclusion: .success, title: "1 check pass", summary: "ok"))
            #expect(created.name == "asynccode" && created.conclusion == "success")
            let listed = try await f.client.listCheckRuns(in: f.repo, ref: head)
            #expect(listed.map(\.id) == [created.id])
            let permissions = Set(f.sim.issuedTokens.map(\.permissions))
            #expect(permissions == [
                ["contents": "write", "issues": "write", "pull_requests": "write", "metadata": "read"],
                ["checks": "write", "metadata": "read"], ["checks": "read", "metadata": "read"],
            ])
            try await f.client.revokeInstallationToken(installationID: f.installationID, repositoryID: f.repository.id)
            #expect(f.sim.issuedTokens.allSatisfy { $0.revoked })
            // An installation without `checks`: the check run is refused (422 at the mint), the task token still works.
            f.sim.setInstallationPermissions(["contents": "write", "issues": "write", "pull_requests": "write", "metadata": "read"],
                                             installationID: f.installationID)
            await #expect(throws: GitHubError.self) {
                _ = try await f.client.createCheckRun(
                    in: f.repo, NewCheckRun(name: "asynccode", headSHA: head, conclusion: .success, title: "t", summary: "s")) as CheckRun
            }
            let repository = try await f.client.getRepository(f.repo)
            #expect(repository.id == f.repository.id)
        }
    }

    @Test func revokedTokenIsDeadAndRemovedFromCache() async throws {
        try await withFixture { f in
            let token = try await f.client.tokens.token(installationID: f.installationID, repositoryID: f.repository.id)
            _ = try await f.client.getRepository(f.repo)
            try await f.client.revokeInstallationToken(installationID: f.installationID, repositoryID: f.repository.id)
            #expect(f.sim.issuedTokens.first { $0.token == token.token }?.revoked == true)
            let revoke = try #require(f.sim.requests.last { $0.method == "DELETE" })
            #expect(revoke.path == "/installation/token")
            #expect(revoke.status == 204)
            // The next call mints a fresh token.
            _ = try await f.client.getRepository(f.repo)
            #expect(await f.client.tokens.mintCount == 2)
            // The revoked token itself is refused.
            let status = try await run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer \(token.token)",
                                  "\(f.sim.apiURL)/repos/acme/widgets"])
            #expect(status.output == "401")
        }
    }

    @Test func repositoryCallsWithoutLiveTokenAre401() async throws {
        try await withFixture { f in
            let none = try await run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "\(f.sim.apiURL)/repos/acme/widgets/issues/1"])
            #expect(none.output == "401")
            let bogus = try await run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: token ghs_bogus",
                                 "\(f.sim.apiURL)/repos/acme/widgets"])
            #expect(bogus.output == "401")
            let jwtless = try await run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                   "\(f.sim.apiURL)/app/installations/\(f.installationID)/access_tokens"])
            #expect(jwtless.output == "401")
            // An expired token is refused too; the client then mints a new one by itself.
            _ = try await f.client.getRepository(f.repo)
            f.sim.expireAllTokens()
            _ = try await f.client.getRepository(f.repo)
            #expect(await f.client.tokens.mintCount == 2)
        }
    }
}
