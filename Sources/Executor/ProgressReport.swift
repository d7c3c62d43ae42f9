import Foundation

/// The body of a task's one progress comment: a headline with the state, the steps so far, and at the end
/// the outcome. Rendered anew and the comment edited on every step.
public struct ProgressReport: Sendable {
    /// Where the task stands.
    public enum State: Sendable, Hashable {
        case queued(ahead: Int)
        case working
        case retrying(attempt: Int, of: Int, reason: String)
        case completed
        case failed(reason: String)
        case notPermitted
        case cancelled(reason: String)
        case timedOut(seconds: Int)
        /// A limit holds the task back; it starts later by itself.
        case waiting(reason: String)
        /// A limit holds the task back until `time` ("14:05 UTC (in 12 min)"); it starts by itself then.
        case waitingUntil(String, reason: String)
        /// The task was refused before it ran (credits, a usage limit).
        case notStarted(reason: String)

        /// Returns whether nothing more will happen to the task.
        public var isFinal: Bool {
            switch self {
            case .queued, .working, .retrying, .waiting, .waitingUntil: false
            default: true
            }
        }
    }

    /// A step and how it went.
    public enum StepState: String, Sendable, Hashable {
        case running, done, failed, skipped
    }

    public struct Step: Sendable, Hashable {
        public var title: String
        public var state: StepState
    }

    /// The marker that identifies the task's comment.
    public var taskID: Int64
    public var kind: String
    public var requester: String
    public var agent: String?
    public var state: State = .queued(ahead: 0)
    public var steps: [Step] = []
    /// Markdown shown under the steps (the outcome, an answer, a listing).
    public var details: String?
    /// Text shown collapsed at the end (the agent's output tail).
    public var outputTail: String?
    /// The credits the task used and the balance left, shown once it ends.
    public var credits: String?
    /// The task's live page (`ASYNCCODE_PUBLIC_URL/tasks/{id}`), linked as "Watch live" when the bot has one.
    public var watchURL: String?

    /// GitHub refuses comments longer than 65,536 characters; stay well below.
    public static let maxBodyCharacters = 60_000

    public init(taskID: Int64, kind: String, requester: String, agent: String?) {
        self.taskID = taskID
        self.kind = kind
        self.requester = requester
        self.agent = agent
    }

    /// Marks the running step done (if any) and starts `title`.
    public mutating func begin(_ title: String) {
        finishRunning(.done)
        steps.append(Step(title: title, state: .running))
    }

    /// Ends the running step with `state`.
    public mutating func finishRunning(_ state: StepState) {
        if let index = steps.lastIndex(where: { $0.state == .running }) { steps[index].state = state }
    }

    /// Adds a finished step.
    public mutating func record(_ title: String, _ state: StepState = .done) {
        finishRunning(.done)
        steps.append(Step(title: title, state: state))
    }

    /// Returns the comment's Markdown.
    public func render() -> String {
        var lines = ["<!-- asynccode:task:\(taskID) -->"]
        lines.append("**asynccode** · task \(taskID) · `\(kind)`\(agent.map { " · agent `\($0)`" } ?? "") · asked by @\(requester)"
                     + (watchURL.map { " · [Watch live](\($0))" } ?? ""))
        lines.append("")
        lines.append(headline)
        if !steps.isEmpty {
            lines.append("")
            for step in steps { lines.append("- \(Self.symbol(step.state)) \(step.title)") }
        }
        if let details, !details.isEmpty {
            lines.append("")
            lines.append(details)
        }
        if let credits {
            lines.append("")
            lines.append(credits)
        }
        var body = lines.joined(separator: "\n")
        if let outputTail, !outputTail.isEmpty {
            let room = Self.maxBodyCharacters - body.count - 200
            let tail = room > 0 ? String(outputTail.suffix(room)) : ""
            body += "\n\n<details><summary>Agent output (last lines)</summary>\n\n" + Self.fenced(tail) + "\n</details>"
        }
        if body.count > Self.maxBodyCharacters {
            body = String(body.prefix(Self.maxBodyCharacters)) + "\n\n[… cut to fit a comment]"
        }
        return body
    }

    var headline: String {
        switch state {
        case .queued(let ahead):
            ahead == 0 ? "⏳ **Queued**: starting shortly." : "⏳ **Queued**: \(ahead) task\(ahead == 1 ? "" : "s") of this thread ahead of this one."
        case .working: "🔄 **Working**"
        case .retrying(let attempt, let total, let reason):
            "⚠️ **Attempt \(attempt) of \(total) failed**: \(reason). Trying again shortly."
        case .completed: "✅ **Completed**"
        case .failed(let reason): "❌ **Failed**: \(reason)"
        case .notPermitted:
            "🚫 **Not permitted**: sorry @\(requester), only collaborators with write access can ask asynccode for work."
        case .cancelled(let reason): "🚫 **Cancelled**: \(reason)"
        case .timedOut(let seconds): "⏱️ **Timed out**: the agent ran longer than \(Self.duration(seconds: Double(seconds))) and was stopped."
        case .waiting(let reason): "⏸️ **Waiting**: \(reason)"
        case .waitingUntil(let time, let reason):
            "⏸️ **Waiting until \(time)**: \(reason). It starts by itself then; `/asynccode cancel` stops it."
        case .notStarted(let reason): "⛔ **Not started**: \(reason)"
        }
    }

    static func symbol(_ state: StepState) -> String {
        switch state {
        case .running: "🔄"
        case .done: "✅"
        case .failed: "❌"
        case .skipped: "⏭️"
        }
    }

    /// Returns `text` in a code fence longer than any backtick run inside it.
    public static func fenced(_ text: String) -> String {
        var longest = 0
        var run = 0
        for character in text {
            if character == "`" { run += 1; longest = max(longest, run) } else { run = 0 }
        }
        let fence = String(repeating: "`", count: max(3, longest + 1))
        return fence + "text\n" + text + (text.hasSuffix("\n") ? "" : "\n") + fence
    }

    /// Returns a duration such as `1m 12s`.
    public static func duration(seconds: Double) -> String {
        let total = Int(seconds.rounded())
        if total < 60 { return "\(total)s" }
        if total < 3600 { return "\(total / 60)m \(total % 60)s" }
        return "\(total / 3600)h \((total % 3600) / 60)m"
    }
}
