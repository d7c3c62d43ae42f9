import GitHub
import Logging
import Models
import Queue

/// The task's one progress comment and its `task_events`: created with the acknowledgement, edited as each
/// step begins, and given a final body that ``CommentRepair`` finishes when GitHub refuses it.
struct TaskProgress<API: GitHubAPI>: Sendable {
    let api: API
    let store: TaskStore
    let queue: TaskQueue
    let catalog: AgentCatalog
    /// Final progress-comment edits, recorded so that ``CommentRepair`` finishes those GitHub refuses.
    let finalEdits: FinalCommentEdits
    let logger: Logger
    /// The bot's public address: the comment links the task's live page there ("Watch live").
    var publicURL: String? = nil

    /// Returns a task's report before anything ran.
    func makeReport(_ record: TaskRecord) -> ProgressReport {
        var report = ProgressReport(taskID: record.id, kind: record.kind.rawValue, requester: record.requesterLogin,
                                    agent: record.agent ?? catalog.defaultAgent)
        report.watchURL = publicURL.map { "\($0.hasSuffix("/") ? String($0.dropLast()) : $0)/tasks/\(record.id)" }
        return report
    }

    /// Step 1: acknowledges the task (when the acknowledgement pass did not) and shows it working.
    func acknowledge(_ run: inout TaskRun) async throws {
        if let fix = run.ciFix { run.report.record(Self.ciFixLine(fix), .failed) }
        // A task started through the API without an issue has no thread: its progress is read through the API.
        if run.commentID == nil, run.record.hasIssue {
            let commentID = try await createComment(run.record, repo: run.repo, report: run.report)
            run.commentID = commentID
            _ = try await store.saveProgressComment(taskID: run.record.id, commentID: commentID)
        }
        run.report.state = .working
        run.report.record("Acknowledged")
    }

    /// Returns the first line of an automatic fix's report: what failed and which fix this is.
    static func ciFixLine(_ fix: CIFix) -> String {
        let names = fix.failing.prefix(5).map { "`\(CheckResult.quoted($0.name))` (\(CheckResult.quoted($0.status)))" }
        let more = fix.failing.count > 5 ? " and \(fix.failing.count - 5) more" : ""
        return "CI failed on \(fix.headSHA.prefix(7))" + (names.isEmpty ? "" : ": " + names.joined(separator: ", ") + more)
            + " · automatic fix \(fix.number) of \(fix.limit) (`fixFailingCI`)"
    }

    /// Adds the `eyes` reaction to the command (or the issue, for a label; none for an automatic fix) and creates
    /// the progress comment.
    func createComment(_ record: TaskRecord, repo: RepositoryRef, report: ProgressReport) async throws -> Int64 {
        // An automatic fix has no command to react to: its comment says what started it.
        if record.ciHeadSHA == nil {
            do {
                let onComment = record.source == "issue_comment" ? record.commentID : nil
                try await api.react(.eyes, toCommentID: onComment, issueNumber: Int(record.issueNumber), in: repo)
            } catch {
                logger.debug("cannot add the eyes reaction", metadata: ["task.id": "\(record.id)", "error": "\(error)"])
            }
        }
        let commentID = try await api.createComment(in: repo, issueNumber: Int(record.issueNumber), body: report.render())
        try? await queue.appendEvent(taskID: record.id, step: "acknowledged")
        return commentID
    }

    /// Starts a step: records it and edits the comment.
    func step(_ run: inout TaskRun, _ title: String) async {
        run.report.begin(title)
        try? await queue.appendEvent(taskID: run.record.id, step: title)
        await publish(&run, final: false)
    }

    /// Edits the progress comment; a final edit is recorded first and finished by ``CommentRepair`` when
    /// GitHub refuses it (see ``FinalCommentEdits``).
    func publish(_ run: inout TaskRun, final: Bool) async {
        guard let commentID = run.commentID else { return }
        let body = run.report.render()
        if final {
            await finalEdit(body, commentID: commentID, repo: run.repo, taskID: run.record.id, logger: run.logger)
            return
        }
        do {
            try await api.updateComment(in: run.repo, commentID: commentID, body: body)
        } catch {
            run.logger.debug("cannot edit the progress comment", metadata: ["error": "\(error)"])
        }
    }

    /// Gives the progress comment its final body, now or through the repair.
    func finalEdit(_ body: String, commentID: Int64, repo: RepositoryRef, taskID: Int64, logger: Logger) async {
        let api = self.api
        await finalEdits.deliver(body, commentID: commentID, repo: repo, taskID: taskID, logger: logger) { body in
            try await api.updateComment(in: repo, commentID: commentID, body: body)
        }
    }
}
