@testable import Executor
import Foundation
import GitHub
import Logging
import PostgresNIO
import Queue
import Synchronization
import Testing
import TestSupport

/// A GitHub whose comment edits fail with 502 while it is `down`, and that records the edits it took.
final class FlakyCommentGitHub: GitHubStub, CommentEditing {
    let down = Mutex(true)
    let taken = Mutex<[(commentID: Int64, body: String)]>([])
    let refused = Atomic<Int>(0)
    /// Answers 404 (the comment was deleted) instead of 502 while `down`.
    let gone = Mutex(false)
    /// How long a successful edit takes (to hold two repairers side by side).
    let latency = Mutex<Duration>(.zero)

    func updateComment(in repo: RepositoryRef, commentID: Int64, body: String) async throws {
        try await Task.sleep(for: latency.withLock { $0 })
        if down.withLock({ $0 }) {
            refused.add(1, ordering: .relaxed)
            throw GitHubError(.httpStatus, status: gone.withLock { $0 } ? 404 : 502, route: "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}",
                              message: "Server Error")
        }
        taken.withLock { $0.append((commentID, body)) }
    }
}

/// Inserts a task of `acme/widgets` with `status` and progress comment `commentID`; returns its id.
private func insertTask(_ db: TestDatabase, status: String, commentID: Int64) async throws -> Int64 {
    try await db.client.query("INSERT INTO accounts (github_id, login) VALUES (11, 'alice') ON CONFLICT DO NOTHING", logger: db.logger)
    try await db.client.query("INSERT INTO installations (github_id) VALUES (21) ON CONFLICT DO NOTHING", logger: db.logger)
    try await db.client.query("""
        INSERT INTO repositories (github_id, installation_id, full_name, name, owner_login)
        SELECT 31, id, 'acme/widgets', 'widgets', 'acme' FROM installations WHERE github_id = 21 ON CONFLICT DO NOTHING
        """, logger: db.logger)
    let id = try await db.scalar("""
        INSERT INTO tasks (repository_id, installation_id, requested_by, issue_number, source, comment_id, command_index,
                           prompt, status, attempts, progress_comment_id)
        SELECT r.id, r.installation_id, a.id, 7, 'issue_comment', \(commentID) + 1000, 0, 'fix it', '\(status)', 1, \(commentID)
        FROM repositories r, accounts a WHERE r.github_id = 31 AND a.github_id = 11
        RETURNING id
        """, as: Int64.self)
    return try #require(id)
}

private func makeDue(_ db: TestDatabase) async throws {
    try await db.client.query("UPDATE pending_comment_edits SET next_attempt_at = now()", logger: db.logger)
}

private let widgets = RepositoryRef(owner: "acme", name: "widgets", id: 31, installationID: 21)

/// A progress comment must end terminal even when GitHub refuses its final edit (issue 18, item 6).
@Suite(.serialized, .timeLimit(.minutes(10))) struct CommentRepairTests {
    @Test func finalizeAbandonedRecordsItsCommentAndTheRepairFinishesItOnceGitHubRecovers() async throws {
        try await TestDatabase.with { db in
            let github = FlakyCommentGitHub()
            let pending = PendingCommentStore(client: db.client, logger: db.logger)
            let executor = TaskExecutor(
                api: github, store: TaskStore(client: db.client, logger: db.logger),
                queue: TaskQueue(client: db.client, logger: db.logger), catalog: try AgentCatalog.parse(yaml: ""),
                settings: ExecutorSettings(workspaceRoot: NSTemporaryDirectory()), pendingComments: pending, logger: db.logger)
            let taskID = try await insertTask(db, status: "failed", commentID: 777)

            // The worker died with no attempts left, and GitHub refuses every comment edit.
            await executor.finalizeAbandoned(ReapedTask(id: taskID, status: "failed"))
            #expect(github.refused.load(ordering: .relaxed) == 3)
            #expect(github.taken.withLock { $0.isEmpty })
            let recorded = try #require(try await pending.pending().first)
            #expect(recorded.commentID == 777)
            #expect(recorded.taskID == taskID)
            #expect(recorded.body.contains("❌ **Failed**: the worker running it stopped"))
            #expect(try await db.scalar("SELECT attempts FROM pending_comment_edits", as: Int32.self) == 1)

            let repair = CommentRepair(editor: github, store: pending, logger: db.logger)
            // Rescheduled a backoff after its tries (1–2 s), not due at once; the test then holds it in the future,
            // as a loaded machine may take longer than that to get here: not due, nothing is tried.
            #expect(try await db.scalar(
                "SELECT next_attempt_at >= created_at + interval '1 second' FROM pending_comment_edits", as: Bool.self) == true)
            try await db.client.query("UPDATE pending_comment_edits SET next_attempt_at = now() + interval '1 hour'", logger: db.logger)
            #expect(try await repair.repairOnce() == CommentRepairReport())
            try await makeDue(db)
            #expect(try await repair.repairOnce() == CommentRepairReport(failed: 1))
            #expect(try await db.scalar("SELECT attempts FROM pending_comment_edits", as: Int32.self) == 2)
            #expect(try await db.scalar(
                "SELECT next_attempt_at > now() + interval '1 second' FROM pending_comment_edits", as: Bool.self) == true)

            github.down.withLock { $0 = false }
            try await makeDue(db)
            #expect(try await repair.repairOnce() == CommentRepairReport(edited: 1))
            #expect(github.taken.withLock { $0.map(\.commentID) } == [777])
            #expect(github.taken.withLock { $0.first?.body } == recorded.body)
            #expect(try await pending.pending().isEmpty)
            // Done: later passes edit nothing.
            #expect(try await repair.repairOnce() == CommentRepairReport())
            #expect(github.taken.withLock { $0.count } == 1)
        }
    }

    @Test func aFinalEditGitHubTakesAtOnceLeavesNothingToRepair() async throws {
        try await TestDatabase.with { db in
            let github = FlakyCommentGitHub()
            github.down.withLock { $0 = false }
            let pending = PendingCommentStore(client: db.client, logger: db.logger)
            let taskID = try await insertTask(db, status: "running", commentID: 778)
            await FinalCommentEdits(store: pending).deliver("✅ done", commentID: 778, repo: widgets, taskID: taskID, logger: db.logger) {
                try await github.updateComment(in: widgets, commentID: 778, body: $0)
            }
            #expect(github.taken.withLock { $0.count } == 1)
            #expect(try await pending.pending().isEmpty)
        }
    }

    @Test func anEditWaitsWhileItsTaskRunsAndAGoneCommentIsDropped() async throws {
        try await TestDatabase.with { db in
            let github = FlakyCommentGitHub()
            let pending = PendingCommentStore(client: db.client, logger: db.logger)
            let repair = CommentRepair(editor: github, store: pending, logger: db.logger)
            let taskID = try await insertTask(db, status: "running", commentID: 779)
            // The executor's final edit failed; the queue has not yet recorded the task's end.
            await FinalCommentEdits(store: pending, tries: 1).deliver("✅ done", commentID: 779, repo: widgets, taskID: taskID,
                                                                      logger: db.logger) {
                try await github.updateComment(in: widgets, commentID: 779, body: $0)
            }
            try await makeDue(db)
            #expect(try await repair.repairOnce() == CommentRepairReport())
            #expect(github.refused.load(ordering: .relaxed) == 1)

            try await db.client.query("UPDATE tasks SET status = 'completed' WHERE id = \(taskID)", logger: db.logger)
            github.gone.withLock { $0 = true }
            #expect(try await repair.repairOnce() == CommentRepairReport(abandoned: 1))
            #expect(try await pending.pending().isEmpty)
        }
    }

    @Test func twoRepairersAtOnceEditEachCommentOnce() async throws {
        try await TestDatabase.with { db in
            let github = FlakyCommentGitHub()
            github.down.withLock { $0 = false }
            github.latency.withLock { $0 = .milliseconds(300) }
            let pending = PendingCommentStore(client: db.client, logger: db.logger)
            for commentID in Int64(800)..<810 {
                try await pending.record(PendingCommentEdit(
                    commentID: commentID, taskID: nil, ownerLogin: "acme", repositoryName: "widgets", repositoryGitHubID: 31,
                    installationGitHubID: 21, body: "✅ \(commentID)"), dueAfter: .zero)
            }
            let first = CommentRepair(editor: github, store: pending, logger: db.logger, batch: 5)
            let second = CommentRepair(editor: github, store: pending, logger: db.logger, batch: 5)
            async let a = first.repairOnce()
            async let b = second.repairOnce()
            let (ra, rb) = try await (a, b)
            #expect(ra.edited + rb.edited == 10)
            #expect(github.taken.withLock { $0.map(\.commentID).sorted() } == Array(Int64(800)..<810))
            #expect(try await pending.pending().isEmpty)
        }
    }

    @Test func backoffDoublesAndIsBounded() {
        let backoff = CommentRepairBackoff(base: .seconds(2), max: .seconds(30))
        #expect(backoff.delay(afterFailures: 1, random: 1) == .seconds(2))
        #expect(backoff.delay(afterFailures: 3, random: 1) == .seconds(8))
        #expect(backoff.delay(afterFailures: 3, random: 0) == .seconds(4))
        #expect(backoff.delay(afterFailures: 10, random: 1) == .seconds(30))
        #expect(backoff.delay(afterFailures: 10_000, random: 1) == .seconds(30))
    }
}
