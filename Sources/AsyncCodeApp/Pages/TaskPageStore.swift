import Foundation
import PostgresNIO

/// The task page's reads beyond the API's: the whole prompt and the steps and log lines up to the page's event id.
/// Callers check that the user may see the task first (``APIController/visibleTask(_:_:)``).
extension APIStore {
    /// A step or a log line of a task, as its `task_events` row holds it.
    struct PageEvent: Sendable {
        var id: Int64
        var kind: String
        var step: String
        var detail: String
        var stream: String
        var text: String
        var at: Date
    }

    /// The most log lines a page shows (the newest).
    static let pageLogLines = 2000

    /// Returns the task's whole prompt, its steps (the first 500) and its newest log lines, all with ids up to `after`,
    /// oldest first, and whether older log lines were left out.
    func pageDetail(taskID: Int64, after: Int64) async throws -> (prompt: String, steps: [PageEvent], log: [PageEvent], logTruncated: Bool) {
        let prompt = try await client.query("SELECT prompt FROM tasks WHERE id = \(taskID)", logger: logger)
        var text = ""
        for try await value in prompt.decode(String.self) { text = value }
        let rows = try await client.query("""
            (SELECT id, kind, step, detail, '' AS stream, '' AS text, created_at FROM task_events
             WHERE task_id = \(taskID) AND kind = 'task.step' AND id <= \(after) ORDER BY id LIMIT 500)
            UNION ALL
            (SELECT id, kind, '', '', COALESCE(data->>'stream', 'stdout'), COALESCE(data->>'text', ''), created_at FROM task_events
             WHERE task_id = \(taskID) AND kind = 'task.log' AND id <= \(after) ORDER BY id DESC LIMIT \(Self.pageLogLines + 1))
            """, logger: logger)
        var steps: [PageEvent] = []
        var log: [PageEvent] = []
        for try await (id, kind, step, detail, stream, line, at) in rows.decode((Int64, String, String, String, String, String, Date).self) {
            let event = PageEvent(id: id, kind: kind, step: step, detail: detail, stream: stream, text: line, at: at)
            if kind == "task.step" { steps.append(event) } else { log.append(event) }
        }
        log.sort { $0.id < $1.id }
        let truncated = log.count > Self.pageLogLines
        if truncated { log.removeFirst() }
        return (text, steps.sorted { $0.id < $1.id }, log, truncated)
    }
}
