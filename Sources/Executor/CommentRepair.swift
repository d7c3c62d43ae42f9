import Database
import Foundation
import GitHub
import Logging
import Queue
import ServiceLifecycle

/// What comment repair asks of GitHub: one edit of an issue comment.
public protocol CommentEditing: Sendable {
    func updateComment(in repo: RepositoryRef, commentID: Int64, body: String) async throws
}

extension GitHubClient: CommentEditing {}

/// The delays between a final comment's edits: doubling from `base`, never longer than `max` (so a comment
/// is edited within about `max` of GitHub recovering), with jitter.
public struct CommentRepairBackoff: Sendable {
    /// The delay after the first failure.
    public var base: Duration
    /// The longest delay.
    public var max: Duration

    public init(base: Duration = .seconds(2), max: Duration = .seconds(30)) {
        self.base = base
        self.max = max
    }

    /// Returns the delay after `failures` failed edits: `base · 2^(failures−1)` capped at `max`, drawn from
    /// its upper half.
    public func delay(afterFailures failures: Int, random: Double = Double.random(in: 0...1)) -> Duration {
        let exponent = Swift.min(Swift.max(failures - 1, 0), 30)
        let full = Swift.min(base.inSeconds * Double(1 << exponent), max.inSeconds)
        return .milliseconds(Int64(((full / 2 + full / 2 * random) * 1000).rounded()))
    }
}

/// Gives a progress comment its final body. The body is recorded in `pending_comment_edits` first, then
/// the edit is tried a few times; when GitHub does not take it, ``CommentRepair`` edits it later, so the
/// comment never stays "Working" once the task has ended, whatever GitHub answered at the time.
public struct FinalCommentEdits: Sendable {
    /// Where final bodies wait; without one a final edit is only tried here, and may be lost.
    let store: PendingCommentStore?
    let backoff: CommentRepairBackoff
    /// Edits tried here before the repair takes over.
    let tries: Int
    /// How long a recorded body is left alone for these tries (a process that stops meanwhile leaves it
    /// to the repair after this).
    let ownWindow: Duration

    public init(store: PendingCommentStore?, backoff: CommentRepairBackoff = CommentRepairBackoff(), tries: Int = 3,
                ownWindow: Duration = .seconds(120)) {
        self.store = store
        self.backoff = backoff
        self.tries = tries
        self.ownWindow = ownWindow
    }

    /// Edits comment `commentID` of `repo` to `body` with `edit`, and leaves it to the repair when that fails.
    public func deliver(
        _ body: String, commentID: Int64, repo: RepositoryRef, taskID: Int64?, logger: Logger,
        edit: @Sendable (String) async throws -> Void
    ) async {
        var logger = logger
        logger[metadataKey: "github.commentID"] = "\(commentID)"
        var recorded = false
        if let store {
            do {
                try await store.record(PendingCommentEdit(
                    commentID: commentID, taskID: taskID, ownerLogin: repo.owner, repositoryName: repo.name,
                    repositoryGitHubID: repo.id, installationGitHubID: repo.installationID, body: body), dueAfter: ownWindow)
                recorded = true
            } catch {
                logger.error("cannot record the final progress comment for repair", metadata: ["error": "\(error)"])
            }
        }
        var lastError: (any Error)?
        for attempt in 1...Swift.max(1, tries) {
            do {
                try await edit(body)
                if recorded, let store {
                    // Left in place, the repair would only edit the same body again.
                    do { try await store.clear(commentID: commentID, body: body) } catch {
                        logger.debug("cannot clear the repaired comment", metadata: ["error": "\(error)"])
                    }
                }
                return
            } catch {
                lastError = error
                logger.debug("cannot edit the progress comment", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                if CommentRepairOutcome.isGone(error) || Task.isCancelled { break }
                if attempt < tries { try? await Task.sleep(for: .seconds(attempt)) }
            }
        }
        let reason = lastError.map { "\($0)" } ?? "unknown"
        guard recorded, let store else {
            logger.error("the progress comment is left unfinished: GitHub refused its final edit", metadata: ["error": "\(reason)"])
            return
        }
        do {
            if let lastError, CommentRepairOutcome.isGone(lastError) {
                try await store.clear(commentID: commentID, body: body)
                logger.notice("the progress comment is gone; nothing to finish", metadata: ["error": "\(reason)"])
            } else {
                try await store.reschedule(commentID: commentID, body: body, after: backoff.delay(afterFailures: 1), error: reason)
                logger.warning("GitHub refused the final progress comment; it will be edited again until it takes it",
                               metadata: ["error": "\(reason)"])
            }
        } catch {
            // The row stays due after `ownWindow`: the repair takes it then.
            logger.debug("cannot reschedule the comment's repair", metadata: ["error": "\(error)"])
        }
    }
}

/// What one repair pass did.
public struct CommentRepairReport: Sendable, Hashable {
    /// Comments GitHub took.
    public var edited = 0
    /// Edits that failed and wait for their next try.
    public var failed = 0
    /// Edits given up: the comment is gone, or GitHub refused it for longer than `maxAge`.
    public var abandoned = 0
}

enum CommentRepairOutcome {
    /// Whether GitHub says the comment can never take the edit (deleted, or a body it will never accept).
    static func isGone(_ error: any Error) -> Bool {
        guard let error = error as? GitHubError, let status = error.status else { return false }
        return status == 404 || status == 410 || status == 422
    }
}

/// Edits the progress comments whose final edit GitHub refused, from `pending_comment_edits`, until GitHub
/// takes each one (bounded exponential backoff, `CommentRepairBackoff`); runs in every worker process, and
/// a lease keeps two processes from editing one comment at once. A body waits while its task has not ended
/// yet (the executor's final edit failed and the queue is still recording the end, or the task was asked
/// to run again and will record a newer body).
public struct CommentRepair<Editor: CommentEditing>: Service, CustomStringConvertible {
    let editor: Editor
    let store: PendingCommentStore
    let logger: Logger
    /// How often due edits are looked for.
    public let interval: Duration
    public let backoff: CommentRepairBackoff
    /// How long a body is tried before it is given up (logged as an error).
    public let maxAge: Duration
    /// How long a claimed edit is left to this process.
    let lease: Duration
    /// Edits per pass.
    let batch: Int

    public init(
        editor: Editor, store: PendingCommentStore, logger: Logger, interval: Duration = .seconds(5),
        backoff: CommentRepairBackoff = CommentRepairBackoff(), maxAge: Duration = .seconds(3 * 24 * 3600),
        lease: Duration = .seconds(600), batch: Int = 20
    ) {
        self.editor = editor
        self.store = store
        self.logger = logger
        self.interval = interval
        self.backoff = backoff
        self.maxAge = maxAge
        self.lease = lease
        self.batch = batch
    }

    public var description: String { "CommentRepair(every \(interval))" }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await repeatEvery(interval, logger: logger, failure: "cannot repair progress comments") {
                _ = try await repairOnce()
            }
        }
    }

    /// One pass: claims the due edits and tries each once.
    public func repairOnce() async throws -> CommentRepairReport {
        var report = CommentRepairReport()
        for edit in try await store.claimDue(limit: batch, lease: lease) {
            let repo = RepositoryRef(owner: edit.ownerLogin, name: edit.repositoryName, id: edit.repositoryGitHubID,
                                     installationID: edit.installationGitHubID)
            var logger = logger
            logger[metadataKey: "github.commentID"] = "\(edit.commentID)"
            logger[metadataKey: "repo.fullName"] = "\(repo.owner)/\(repo.name)"
            if let taskID = edit.taskID { logger[metadataKey: "task.id"] = "\(taskID)" }
            let failure: (any Error)?
            do {
                try await editor.updateComment(in: repo, commentID: edit.commentID, body: edit.body)
                failure = nil
            } catch {
                failure = error
            }
            guard let failure else {
                try await store.clear(commentID: edit.commentID, body: edit.body)
                report.edited += 1
                logger.notice("progress comment finished after GitHub refused it", metadata: ["repair.attempts": "\(edit.attempts + 1)"])
                continue
            }
            if CommentRepairOutcome.isGone(failure) || Date().timeIntervalSince(edit.createdAt) > maxAge.inSeconds {
                try await store.clear(commentID: edit.commentID, body: edit.body)
                report.abandoned += 1
                logger.error("gave up finishing a progress comment", metadata: [
                    "error": "\(failure)", "repair.attempts": "\(edit.attempts + 1)",
                ])
            } else {
                try await store.reschedule(commentID: edit.commentID, body: edit.body,
                                           after: backoff.delay(afterFailures: edit.attempts + 1), error: "\(failure)")
                report.failed += 1
                logger.debug("progress comment still refused", metadata: ["error": "\(failure)", "repair.attempts": "\(edit.attempts + 1)"])
            }
        }
        return report
    }
}
