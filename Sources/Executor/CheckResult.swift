import Foundation

/// How one of the repository's checks (or `setup` commands) went: what ran, how it ended, how long it took
/// and the end of its output (redacted, at most ``maxTailBytes``).
struct CheckResult: Sendable, Hashable {
    /// The most UTF-8 bytes kept of a check's output.
    static let maxTailBytes = 16 * 1024

    var name: String
    var command: String
    /// Whether it exited 0.
    var passed: Bool
    /// How it ended: "exit status 1", "timed out after 600 s", "killed by signal 9".
    var status: String
    var seconds: Double
    var tail: String

    /// What the agent is told of it in a fix round.
    var feedback: PromptBuilder.FailingCheck {
        PromptBuilder.FailingCheck(name: name, command: command, status: status, output: tail)
    }

    /// Returns `{"checks": [...]}` for `tasks.execution_metadata`: each check's name, outcome and time in `round`
    /// (the API's task results read it).
    static func metadataJSON(_ results: [CheckResult], round: Int) -> String {
        let checks = results.map { ["name": $0.name, "passed": $0.passed, "status": $0.status, "seconds": $0.seconds, "round": round] as [String: Any] }
        let data = (try? JSONSerialization.data(withJSONObject: ["checks": checks], options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// Returns the progress line of a round, such as "Checks: tests ✅ 12 s, lint ❌ 3 s · round 2 of 3".
    static func summaryLine(_ results: [CheckResult], round: Int, of rounds: Int) -> String {
        let parts = results.map { "\(quoted($0.name)) \($0.passed ? "✅" : "❌") \(Int($0.seconds.rounded())) s" }
        return "Checks: " + parts.joined(separator: ", ") + " · round \(round) of \(rounds)"
    }

    /// Returns the Markdown list of failing checks, each with its command, status and output tail.
    static func failureList(_ results: [CheckResult], characters: Int = 40_000) -> String {
        let room = max(500, characters / max(1, results.count))
        return results.map { check in
            let tail = check.tail.count > room ? "…" + String(check.tail.suffix(room)) : check.tail
            return "- **\(quoted(check.name))** (`\(quoted(check.command).prefix(200))`): \(check.status)\n\n"
                + indented(ProgressReport.fenced(tail.isEmpty ? "(no output)" : tail))
        }.joined(separator: "\n")
    }

    /// Returns "exit status 1" and the like for a run's ending.
    static func status(_ ending: AgentRunResult.Ending, timeout: Int) -> String {
        switch ending {
        case .exited(let code): "exit status \(code)"
        case .signalled(let signal): "killed by signal \(signal)"
        case .timedOut: "timed out after \(timeout) s"
        case .cancelled: "cancelled"
        case .overBudget: "stopped over its limits"
        }
    }

    /// Returns the last ``maxTailBytes`` of `text` (on a character boundary).
    static func tail(_ text: String) -> String {
        PromptBuilder.lastBytes(text, maxTailBytes)
    }

    /// Returns `text` without backticks, pipes and line breaks, for Markdown.
    static func quoted(_ text: String) -> String {
        String(text.map { "`|\n\r".contains($0) ? "'" : $0 })
    }

    private static func indented(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
    }
}
