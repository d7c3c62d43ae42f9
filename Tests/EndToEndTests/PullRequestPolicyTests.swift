import Foundation
import GitHubSimulator
import Testing
import TestSupport

/// Whose branches the bot pushes to, what it refuses before cloning, and what it tells people.
@Suite(.timeLimit(.minutes(10))) struct PullRequestPolicyTests {
    /// Returns how many git (smart-HTTP) requests the simulator has seen: a clone or a push makes some.
    func gitRequests(_ e2e: EndToEnd) -> Int {
        e2e.sim.requests.filter(\.isGit).count
    }

    @Test func aCommandOnAForksPullRequestGetsOneRefusalAndNothingIsCloned() async throws {
        try await EndToEnd.with { e2e in
            // mallory's fork: GitHub keeps its commits under the pull request; the branch is not the repository's.
            try await e2e.sim.createBranch(repositoryID: e2e.repositoryID, name: "patch-1", files: ["FORK.md": "from a fork\n"])
            let pull = try await e2e.sim.openPullRequest(
                repositoryID: e2e.repositoryID, title: "Fix from a fork", head: "patch-1", headOwner: "mallory", author: "mallory")
            let commits = try await e2e.commitCount(on: "patch-1")
            let before = gitRequests(e2e)
            let taskID = try await e2e.comment("/asynccode fix the typo", on: pull.number)
            try await e2e.waitFor(task: taskID, status: "failed")
            // One comment, that says why; no clone, no agent, no push.
            let replies = e2e.botComments(on: pull.number)
            #expect(replies.count == 1)
            let reply = try #require(replies.first?.body)
            #expect(reply.contains("⛔ **Not started**: asynccode cannot push to forks: this pull request's branch is in `mallory`'s fork."))
            #expect(!reply.contains("Cloning") && !reply.contains("Running agent"))
            #expect(gitRequests(e2e) == before)
            #expect(try await e2e.commitCount(on: "patch-1") == commits)
            #expect(try await e2e.db.count("task_events WHERE task_id = \(taskID) AND step = 'failed'") == 1)
        }
    }

    @Test func aWriteCollaboratorMayAskForCommitsOnAPeersSameRepositoryPullRequest() async throws {
        try await EndToEnd.with { e2e in
            e2e.sim.setCollaborator("bob", role: "write", onRepositoryID: e2e.repositoryID)
            try await e2e.sim.createBranch(repositoryID: e2e.repositoryID, name: "bob/docs", files: ["DOCS.md": "by bob\n"])
            let pull = try await e2e.sim.openPullRequest(repositoryID: e2e.repositoryID, title: "Docs", head: "bob/docs", author: "bob")
            #expect(try await e2e.commitCount(on: "bob/docs") == 2)
            let taskID = try await e2e.comment("/asynccode --agent followup add notes", on: pull.number)
            try await e2e.waitFor(task: taskID, status: "completed")
            // A commit on bob's branch, on top of his: no new branch, no new pull request.
            #expect(try await e2e.commitCount(on: "bob/docs") == 3)
            #expect(try await e2e.file("DOCS.md", on: "bob/docs") == "by bob\n")
            #expect(try await e2e.file("NOTES.md", on: "bob/docs")?.contains("follow-up") == true)
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).count == 1)
            // bob's pull request is not the bot's: a review requesting changes there starts nothing.
            try await e2e.sim.postReview(repositoryID: e2e.repositoryID, pullNumber: pull.number, state: "changes_requested",
                                         body: "Please also fix the links.", author: "alice")
            try await eventually("the review is recorded") {
                try await e2e.db.count("webhook_deliveries WHERE event = 'pull_request_review'") == 1
            }
            #expect(try await e2e.db.count("tasks WHERE issue_number = \(pull.number)") == 1)
        }
    }

    @Test func reviewOnAnIssueIsRefusedBeforeAnythingIsClonedOrRun() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let before = gitRequests(e2e)
            let taskID = try await e2e.comment("/asynccode review --agent ask", on: issue)
            try await e2e.waitFor(task: taskID, status: "failed")
            let reply = try #require(e2e.botComments(on: issue).first?.body)
            #expect(reply.contains("⛔ **Not started**: `review` works on pull requests and this is an issue"))
            #expect(!reply.contains("Cloning") && !reply.contains("Running agent"))
            #expect(gitRequests(e2e) == before)
            #expect(try await e2e.db.count("task_results WHERE task_id = \(taskID)") == 0)
        }
    }

    @Test func theTasksRowNamesTheDefaultAgentThatRanAndStatusShowsIt() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            #expect(try await e2e.string("SELECT agent FROM tasks WHERE id = \(taskID)") == "edit")
            _ = try await e2e.sim.postUserComment(repositoryID: e2e.repositoryID, issueNumber: issue, body: "/asynccode status", author: "alice")
            var status = ""
            try await eventually("status answers") {
                status = e2e.botComments(on: issue).map(\.body).first { $0.hasPrefix("Tasks of this issue") } ?? ""
                return !status.isEmpty
            }
            #expect(status.contains("| \(taskID) | `code` | completed | `edit` |"))
            #expect(!status.contains("default"))
        }
    }

    @Test func helpNamesTheRepositorysTriggerLabel() async throws {
        try await EndToEnd.with(repositoryFiles: [".github/asynccode.yml": "label: ai-fix\n"]) { e2e in
            let issue = e2e.issue()
            _ = try await e2e.sim.postUserComment(repositoryID: e2e.repositoryID, issueNumber: issue, body: "/asynccode help", author: "alice")
            var help = ""
            try await eventually("help answers") {
                help = e2e.botComments(on: issue).map(\.body).first { $0.hasPrefix("**asynccode commands**") } ?? ""
                return !help.isEmpty
            }
            #expect(help.contains("Adding the `ai-fix` label to an issue works like `/asynccode`"))
            #expect(!help.contains("`asynccode` label"))
        }
    }
}
