import Foundation
import GitHub
import GitHubSimulator
import Testing

@Suite(.timeLimit(.minutes(2))) struct EndpointTests {
    @Test func appEndpoints() async throws {
        try await withFixture { f in
            let app = try await f.client.getApp()
            #expect(app.id == f.app.id)
            #expect(app.slug == "asynccode-test")

            let first = f.sim.addWebhookDelivery(event: "issue_comment", action: "created", statusCode: 500, installationID: f.installationID, repositoryID: f.repository.id)
            let second = f.sim.addWebhookDelivery(event: "ping")
            let (deliveries, next) = try await f.client.listWebhookDeliveries(perPage: 10)
            #expect(deliveries.map(\.id) == [second, first])
            #expect(next == nil)
            let firstPage = try await f.client.listWebhookDeliveries(perPage: 1)
            #expect(firstPage.deliveries.map(\.id) == [second])
            let cursor = try #require(firstPage.nextCursor)
            let (secondPage, end) = try await f.client.listWebhookDeliveries(perPage: 1, cursor: cursor)
            #expect(secondPage.map(\.id) == [first])
            #expect(end == nil)
            #expect(deliveries.last?.statusCode == 500)
            #expect(deliveries.last?.action == "created")
            #expect(deliveries.first?.action == nil)

            try await f.client.redeliverWebhookDelivery(id: first)
            #expect(f.sim.redeliveryRequests == [first])
            let missing = await #expect(throws: GitHubError.self) { try await f.client.redeliverWebhookDelivery(id: 999_999) }
            #expect(missing?.status == 404)
        }
    }

    @Test func repositoryPermissionsAndIssues() async throws {
        try await withFixture { f in
            let repository = try await f.client.getRepository(f.repo)
            #expect(repository.id == f.repository.id)
            #expect(repository.fullName == "acme/widgets")
            #expect(repository.defaultBranch == "main")
            #expect(repository.cloneUrl == f.repository.cloneURL)

            f.sim.setCollaborator("alice", role: "maintain", onRepositoryID: f.repository.id)
            f.sim.setCollaborator("bob", role: "triage", onRepositoryID: f.repository.id)
            let alice = try await f.client.getCollaboratorPermission(in: f.repo, username: "alice")
            #expect(alice.permission == "write")
            #expect(alice.roleName == "maintain")
            #expect(alice.canWrite)
            let bob = try await f.client.getCollaboratorPermission(in: f.repo, username: "bob")
            #expect(bob.permission == "read")
            #expect(!bob.canWrite)
            #expect(try await f.client.getCollaboratorPermission(in: f.repo, username: "acme").permission == "admin")

            let number = f.sim.createIssue(repositoryID: f.repository.id, title: "Add a flag", body: "Please", author: "alice", labels: ["bug"])
            let issue = try await f.client.getIssue(in: f.repo, number: number)
            #expect(issue.title == "Add a flag")
            #expect(issue.user?.login == "alice")
            #expect(issue.labels.map(\.name) == ["bug"])
            #expect(issue.pullRequest == nil)

            let missing = await #expect(throws: GitHubError.self) { try await f.client.getIssue(in: f.repo, number: 404) }
            #expect(missing?.status == 404)
            #expect(missing?.message == "Not Found")
            #expect(missing?.route == "GET /repos/acme/widgets/issues/404")
        }
    }

    @Test func commentsReactionsAndLabels() async throws {
        try await withFixture { f in
            let number = f.sim.createIssue(repositoryID: f.repository.id, title: "Issue")
            let command = f.sim.addComment(repositoryID: f.repository.id, issueNumber: number, body: "/asynccode fix it", author: "alice")

            let created = try await f.client.createIssueComment(in: f.repo, issueNumber: number, body: "Working on it…")
            #expect(created.user?.login == "asynccode-test[bot]")
            let updated = try await f.client.updateIssueComment(in: f.repo, commentID: created.id, body: "Done ✅")
            #expect(updated.body == "Done ✅")
            let fetched = try await f.client.getIssueComment(in: f.repo, commentID: created.id)
            #expect(fetched.body == "Done ✅")
            #expect(f.sim.comment(id: created.id)?.history == ["Working on it…", "Done ✅"])

            let listed = try await f.client.listIssueComments(in: f.repo, issueNumber: number)
            #expect(listed.map(\.id) == [command.id, created.id])
            let page2 = try await f.client.listIssueComments(in: f.repo, issueNumber: number, perPage: 1, page: 2)
            #expect(page2.map(\.id) == [created.id])
            for index in 0..<120 { f.sim.addComment(repositoryID: f.repository.id, issueNumber: number, body: "c\(index)") }
            let all = try await f.client.listAllIssueComments(in: f.repo, issueNumber: number)
            #expect(all.count == 122)
            let since = try await f.client.listIssueComments(in: f.repo, issueNumber: number, since: Date().addingTimeInterval(3600))
            #expect(since.isEmpty)

            let eyes = try await f.client.addReaction(.eyes, toCommentID: command.id, in: f.repo)
            #expect(eyes.content == .eyes)
            let again = try await f.client.addReaction(.eyes, toCommentID: command.id, in: f.repo)
            #expect(again.id == eyes.id)
            let rocket = try await f.client.addReaction(.plusOne, toIssue: number, in: f.repo)
            #expect(rocket.content == .plusOne)
            #expect(f.sim.reactions.map(\.content) == ["eyes", "+1"])
            #expect(f.sim.reactions.first?.subject == .comment(id: command.id))
            #expect(f.sim.reactions.last?.subject == .issue(repositoryID: f.repository.id, number: number))

            let labels = try await f.client.addLabels(["asynccode: running", "bot"], toIssue: number, in: f.repo)
            #expect(labels.map(\.name) == ["asynccode: running", "bot"])
            try await f.client.removeLabel("asynccode: running", fromIssue: number, in: f.repo)
            #expect(f.sim.labels(repositoryID: f.repository.id, issueNumber: number) == ["bot"])
            try await f.client.removeLabel("not-there", fromIssue: number, in: f.repo)  // no error
        }
    }

    @Test func pullRequestsReviewsAndContents() async throws {
        try await withFixture { f in
            f.sim.setCollaborator("alice", role: "write", onRepositoryID: f.repository.id)
            let sha = try await f.sim.createBranch(repositoryID: f.repository.id, name: "asynccode/issue-1", files: ["src/a.swift": "let a = 1\n"])

            #expect(try await f.client.listPullRequests(in: f.repo, head: "acme:asynccode/issue-1").isEmpty)
            let pull = try await f.client.createPullRequest(in: f.repo, title: "Fix #1", head: "asynccode/issue-1", base: "main", body: "Closes #1", draft: true)
            #expect(pull.head.sha == sha)
            #expect(pull.head.ref == "asynccode/issue-1")
            #expect(pull.base.ref == "main")
            #expect(pull.draft == true)
            #expect(pull.state == "open")

            let duplicate = await #expect(throws: GitHubError.self) {
                try await f.client.createPullRequest(in: f.repo, title: "Again", head: "asynccode/issue-1", base: "main")
            }
            #expect(duplicate?.status == 422)
            #expect(duplicate?.message.contains("already exists") == true)
            let noBranch = await #expect(throws: GitHubError.self) {
                try await f.client.createPullRequest(in: f.repo, title: "Nope", head: "missing", base: "main")
            }
            #expect(noBranch?.status == 422)

            let byHead = try await f.client.listPullRequests(in: f.repo, head: "acme:asynccode/issue-1")
            #expect(byHead.map(\.number) == [pull.number])
            #expect(try await f.client.listPullRequests(in: f.repo, head: "acme:other").isEmpty)

            let fetched = try await f.client.getPullRequest(in: f.repo, number: pull.number)
            #expect(fetched.title == "Fix #1")
            let updated = try await f.client.updatePullRequest(in: f.repo, number: pull.number, title: "Fix #1 (v2)", body: "Updated")
            #expect(updated.title == "Fix #1 (v2)")
            #expect(f.sim.pullRequests(repositoryID: f.repository.id).first?.body == "Updated")

            let requested = try await f.client.requestReviewers(in: f.repo, pullNumber: pull.number, reviewers: ["alice"])
            #expect(requested.requestedReviewers?.map(\.login) == ["alice"])
            let notCollaborator = await #expect(throws: GitHubError.self) {
                try await f.client.requestReviewers(in: f.repo, pullNumber: pull.number, reviewers: ["mallory"])
            }
            #expect(notCollaborator?.status == 422)

            let review = try await f.client.createReview(in: f.repo, pullNumber: pull.number, event: .comment, body: "Self-check passed")
            #expect(review.state == "COMMENTED")
            #expect(review.commitId == sha)
            #expect(f.sim.reviews.count == 1)

            let closed = try await f.client.updatePullRequest(in: f.repo, number: pull.number, state: "closed")
            #expect(closed.state == "closed")
            #expect(try await f.client.listPullRequests(in: f.repo, head: "acme:asynccode/issue-1", state: .open).isEmpty)
            #expect(try await f.client.listPullRequests(in: f.repo, head: "acme:asynccode/issue-1", state: .closed).count == 1)
            // A new PR from the same head is fine once the old one is closed.
            _ = try await f.client.createPullRequest(in: f.repo, title: "Fix #1 again", head: "asynccode/issue-1", base: "main")

            let config = try #require(try await f.client.getFileContents(in: f.repo, path: ".asynccode.yml"))
            #expect(config.decodedContent.map { String(decoding: $0, as: UTF8.self) } == "agent: claude\n")
            let onBranch = try #require(try await f.client.getFileContents(in: f.repo, path: "src/a.swift", ref: "asynccode/issue-1"))
            #expect(onBranch.decodedContent.map { String(decoding: $0, as: UTF8.self) } == "let a = 1\n")
            #expect(try await f.client.getFileContents(in: f.repo, path: "src/a.swift") == nil)
        }
    }

    @Test func simulatorRequestRate() async throws {
        try await withFixture { f in
            let number = f.sim.createIssue(repositoryID: f.repository.id, title: "x")
            _ = try await f.client.getIssue(in: f.repo, number: number)
            let reads = 400
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        for _ in stride(from: worker, to: reads, by: 8) { _ = try await f.client.getIssue(in: f.repo, number: number) }
                    }
                }
                try await group.waitForAll()
            }
            let readTime = ContinuousClock.now - start
            let writes = 100
            let writeStart = ContinuousClock.now
            for index in 0..<writes { _ = try await f.client.createIssueComment(in: f.repo, issueNumber: number, body: "c\(index)") }
            let writeTime = ContinuousClock.now - writeStart
            let readRate = Double(reads) / readTime.totalSeconds
            let writeRate = Double(writes) / writeTime.totalSeconds
            print("simulator+client: \(Int(readRate)) GET/s (8 concurrent), \(Int(writeRate)) serialized POST/s")
            #expect(f.sim.comments(repositoryID: f.repository.id, issueNumber: number).count == writes)
            #expect(readRate > 20)
        }
    }
}
