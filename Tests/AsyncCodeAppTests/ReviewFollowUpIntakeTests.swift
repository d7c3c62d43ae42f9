import Foundation
import Testing
import TestSupport

/// A review requesting changes is a follow-up on the bot's own pull request whatever its text says: the pull
/// request decides (its author a bot, and recorded as one the bot opened), not the word `asynccode`.
@Suite(.timeLimit(.minutes(10))) struct ReviewFollowUpIntakeTests {
    /// GitHub's `pull_request_review` `submitted` example (no `asynccode` anywhere), requesting changes on
    /// pull request `number` by `author`, from branch `head`.
    func review(number: Int = 2, author: String, authorType: String, head: String) throws -> [UInt8] {
        var object = try JSONSerialization.jsonObject(
            with: Data(TestEnvironment.fixture("webhooks/pull_request_review/submitted.payload.json"))) as! [String: Any]
        var review = object["review"] as! [String: Any]
        review["state"] = "changes_requested"
        review["body"] = "Please mention the license too."
        object["review"] = review
        var pull = object["pull_request"] as! [String: Any]
        pull["number"] = number
        var user = pull["user"] as! [String: Any]
        user["login"] = author
        user["type"] = authorType
        pull["user"] = user
        var branch = pull["head"] as! [String: Any]
        branch["ref"] = head
        pull["head"] = branch
        object["pull_request"] = pull
        return Array(try JSONSerialization.data(withJSONObject: object))
    }

    @Test func aReviewOnTheBotsPullRequestStartsAFollowUpWithoutTheWord() async throws {
        try await withIntake { client, db in
            // An App named `Helper` with the branch prefix `bot/`: nothing in the payload says asynccode.
            let ours = try review(number: 2, author: "helper[bot]", authorType: "Bot", head: "bot/1-readme")
            #expect(!String(decoding: ours, as: UTF8.self).lowercased().contains("asynccode"))
            // The bot opened #2 (the fixture's repository and installation).
            try await db.client.query("""
                WITH i AS (INSERT INTO installations (github_id) VALUES (1) RETURNING id),
                     r AS (INSERT INTO repositories (github_id, installation_id, full_name, name, owner_login)
                           SELECT 186853002, id, 'Codertocat/Hello-World', 'Hello-World', 'Codertocat' FROM i RETURNING id)
                INSERT INTO pull_requests (repository_id, github_pr_id, number, title, source_branch, target_branch)
                SELECT id, 4242, 2, 'Update the README', 'bot/1-readme', 'master' FROM r
                """, logger: db.logger)
            let response = try await client.deliver(event: "pull_request_review", body: ours)
            #expect(response.bodyStatus == "queued")
            #expect(try await db.count("tasks") == 1)
            #expect(try await db.scalar("SELECT source FROM tasks", as: String.self) == "pull_request_review")
            #expect(try await db.scalar("SELECT prompt FROM tasks", as: String.self) == "Please mention the license too.")
            #expect(try await db.scalar("SELECT issue_number FROM tasks", as: Int64.self) == 2)

            // Another bot's pull request (#3, not one the bot opened): nothing.
            let theirs = try review(number: 3, author: "dependabot[bot]", authorType: "Bot", head: "dependabot/npm/x")
            #expect(try await client.deliver(event: "pull_request_review", body: theirs).bodyStatus == "ignored")
            // A person's pull request: nothing either.
            let persons = try review(number: 4, author: "Codertocat", authorType: "User", head: "changes")
            #expect(try await client.deliver(event: "pull_request_review", body: persons).bodyStatus == "ignored")
            #expect(try await db.count("tasks") == 1)
        }
    }
}
