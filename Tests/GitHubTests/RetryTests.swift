import Foundation
import GitHub
import GitHubSimulator
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2))) struct RetryTests {
    @Test func serverErrorsOnReadsAreRetriedWithBackoff() async throws {
        var policy = RetryPolicy()
        policy.maxAttempts = 4
        policy.baseDelay = .seconds(1)
        try await withFixture(retryPolicy: policy) { f in
            let number = f.sim.createIssue(repositoryID: f.repository.id, title: "x")
            f.sim.injectFailure(.status(502), method: "GET", path: "/repos/acme/widgets/issues/*", times: 2)
            let issue = try await f.client.getIssue(in: f.repo, number: number)
            #expect(issue.number == number)
            let gets = f.sim.requests.filter { $0.method == "GET" && $0.path.hasSuffix("/issues/\(number)") }
            #expect(gets.map(\.status) == [502, 502, 200])
            let sleeps = f.clock.sleeps.map(\.totalSeconds)
            #expect(sleeps.count == 2)
            // Equal jitter: retry n waits between base·2^(n−1)/2 and base·2^(n−1).
            #expect(sleeps.count == 2 && (0.5...1.0).contains(sleeps[0]) && (1.0...2.0).contains(sleeps[1]), "\(sleeps)")
        }
    }

    @Test func retriesAreBounded() async throws {
        var policy = RetryPolicy()
        policy.maxAttempts = 3
        try await withFixture(retryPolicy: policy) { f in
            f.sim.injectFailure(.status(503), path: "/repos/acme/widgets", times: 10)
            let error = await #expect(throws: GitHubError.self) { try await f.client.getRepository(f.repo) }
            #expect(error?.status == 503)
            #expect(error?.code == .httpStatus)
            #expect(f.sim.requests.filter { $0.path == "/repos/acme/widgets" }.count == 3)
            #expect(f.clock.sleeps.count == 2)
        }
    }

    @Test func createCommentIsNotRetriedOn5xx() async throws {
        try await withFixture { f in
            let number = f.sim.createIssue(repositoryID: f.repository.id, title: "x")
            f.sim.injectFailure(.status(500), method: "POST", path: "/repos/*/*/issues/*/comments", times: 1)
            let error = await #expect(throws: GitHubError.self) {
                try await f.client.createIssueComment(in: f.repo, issueNumber: number, body: "hello")
            }
            #expect(error?.status == 500)
            #expect(f.sim.requests.filter { $0.method == "POST" && $0.path.hasSuffix("/comments") }.count == 1)
            #expect(f.clock.sleeps.isEmpty)
        }
    }

    @Test func secondaryRateLimitWaitsForRetryAfterEvenForPosts() async throws {
        try await withFixture { f in
            let number = f.sim.createIssue(repositoryID: f.repository.id, title: "x")
            f.sim.injectFailure(.secondaryRateLimit(retryAfter: 7), method: "POST", path: "/repos/*/*/issues/*/comments")
            let comment = try await f.client.createIssueComment(in: f.repo, issueNumber: number, body: "hello")
            #expect(f.clock.sleeps == [.seconds(7)])
            #expect(f.sim.comments(repositoryID: f.repository.id, issueNumber: number).map(\.id) == [comment.id])
        }
    }

    @Test func secondaryRateLimitWithoutRetryAfterWaitsAMinuteThenBacksOff() async throws {
        var policy = RetryPolicy()
        policy.baseDelay = .seconds(10)
        try await withFixture(retryPolicy: policy) { f in
            f.sim.injectFailure(.secondaryRateLimit(retryAfter: nil), path: "/repos/acme/widgets", times: 2)
            _ = try await f.client.getRepository(f.repo)
            let sleeps = f.clock.sleeps.map(\.totalSeconds)
            #expect(sleeps.count == 2)
            #expect(sleeps.first == 60)
            // Second hit: the minute plus a backoff of 5…10 s.
            #expect(sleeps.count == 2 && (65...70).contains(sleeps[1]), "\(sleeps)")
        }
    }

    @Test func primaryRateLimitWaitsUntilReset() async throws {
        try await withFixture { f in
            let reset = Int(f.clock.now().timeIntervalSince1970) + 120
            f.sim.injectFailure(.primaryRateLimit(resetAt: reset), path: "/repos/acme/widgets")
            _ = try await f.client.getRepository(f.repo)
            let sleeps = f.clock.sleeps.map(\.totalSeconds)
            #expect(sleeps.count == 1)
            #expect(sleeps.count == 1 && abs(sleeps[0] - 120) < 1.001, "\(sleeps)")
        }
    }

    @Test func tooManyRequestsWaitsForRetryAfter() async throws {
        try await withFixture { f in
            f.sim.injectFailure(.tooManyRequests(retryAfter: 3), path: "/repos/acme/widgets")
            _ = try await f.client.getRepository(f.repo)
            #expect(f.clock.sleeps == [.seconds(3)])
        }
    }

    @Test func rateLimitBeyondTheLongestWaitFailsWithRetryAfter() async throws {
        try await withFixture { f in
            let reset = Int(f.clock.now().timeIntervalSince1970) + 3600
            f.sim.injectFailure(.primaryRateLimit(resetAt: reset), path: "/repos/acme/widgets")
            let error = await #expect(throws: GitHubError.self) { try await f.client.getRepository(f.repo) }
            #expect(error?.code == .rateLimited)
            #expect(error?.status == 403)
            #expect((error?.retryAfter?.totalSeconds ?? 0) > 3500)
            #expect(f.clock.sleeps.isEmpty)
        }
    }

    @Test func plainForbiddenIsNotARateLimit() async throws {
        try await withFixture { f in
            f.sim.injectFailure(.status(403), path: "/repos/acme/widgets")
            let error = await #expect(throws: GitHubError.self) { try await f.client.getRepository(f.repo) }
            #expect(error?.status == 403)
            #expect(f.clock.sleeps.isEmpty)
        }
    }

    @Test func connectionErrorsAreRetriedThenReported() async throws {
        var policy = RetryPolicy()
        policy.maxAttempts = 3
        let key = try await withGitHubSimulator { sim in try sim.createApp() }
        // The simulator is gone: nothing listens on its port any more.
        let clock = ManualClock()
        var configuration = GitHubClient.Configuration(apiURL: "http://127.0.0.1:9", retryPolicy: policy)
        configuration.connectTimeout = .milliseconds(300)
        let client = try GitHubClient(configuration: configuration,
                                      signer: AppJWTSigner(issuer: String(key.id), privateKeyPEM: key.privateKeyPEM), clock: clock)
        let error = await #expect(throws: GitHubError.self) { try await client.getApp() }
        #expect(error?.code == .transport)
        #expect(clock.sleeps.count == 2)
        try await client.shutdown()
    }

    @Test func mutatingCallsToOneInstallationAreSentOneAtATime() async throws {
        var configuration = GitHubSimulator.Configuration()
        configuration.latency = .milliseconds(20)
        try await withFixture(simulator: configuration) { f in
            let number = f.sim.createIssue(repositoryID: f.repository.id, title: "x")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<8 {
                    group.addTask { _ = try await f.client.createIssueComment(in: f.repo, issueNumber: number, body: "c\(index)") }
                    group.addTask { _ = try await f.client.getIssue(in: f.repo, number: number) }
                }
                try await group.waitForAll()
            }
            #expect(f.sim.comments(repositoryID: f.repository.id, issueNumber: number).count == 8)
            #expect(f.sim.maxConcurrentMutations(installationID: f.installationID) == 1)

            // Control: the same POSTs sent concurrently without the client do overlap in the simulator.
            let other = f.sim.createInstallation(appID: f.app.id, account: "other")
            let repository = try await f.sim.createRepository(owner: "other", name: "repo", installationID: other)
            let issue = f.sim.createIssue(repositoryID: repository.id, title: "x")
            let token = try await f.client.createInstallationToken(installationID: other, repositoryIDs: [repository.id],
                                                                   permissions: ["issues": "write"]).token
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        try await run(["curl", "-s", "-o", "/dev/null", "-X", "POST", "-H", "Authorization: Bearer \(token)",
                                       "-d", #"{"body":"raw"}"#, "\(f.sim.apiURL)/repos/other/repo/issues/\(issue)/comments"])
                    }
                }
                try await group.waitForAll()
            }
            #expect(f.sim.comments(repositoryID: repository.id, issueNumber: issue).count == 6)
            #expect(f.sim.maxConcurrentMutations(installationID: other) > 1)
        }
    }

    @Test func errorsAndLogsNeverContainTokens() async throws {
        try await withFixture { f in
            let number = f.sim.createIssue(repositoryID: f.repository.id, title: "x")
            f.sim.injectFailure(.status(502), path: "/repos/acme/widgets/issues/**", times: 1)
            f.sim.injectFailure(.secondaryRateLimit(retryAfter: 1), path: "/repos/acme/widgets/issues/**", times: 1)
            _ = try await f.client.getIssue(in: f.repo, number: number)
            let error = await #expect(throws: GitHubError.self) { try await f.client.getIssue(in: f.repo, number: 9999) }
            let token = try #require(f.sim.issuedTokens.first?.token)
            #expect(error.map { !"\($0)".contains(token) } == true)
            #expect(!f.logs.lines.isEmpty)
            #expect(f.logs.lines.contains { $0.contains("github.route=GET /repos/{owner}/{repo}/issues/{issue_number}") })
            #expect(f.logs.lines.contains { $0.contains("github.installation=\(f.installationID)") })
            // Redaction of anything token-like that might reach a message.
            let redacted = GitHubError(.httpStatus, status: 401, message: "bad token \(token) and Bearer abcdefghijklmnopqrstuvwxyz")
            #expect(!redacted.description.contains(token))
            #expect(!redacted.description.contains("abcdefghijklmnopqrstuvwxyz"))
            let cached = try await f.client.tokens.token(installationID: f.installationID, repositoryID: f.repository.id)
            #expect(!"\(cached)".contains(token))
            #expect(!String(reflecting: cached).contains(token))
        }
    }
}
