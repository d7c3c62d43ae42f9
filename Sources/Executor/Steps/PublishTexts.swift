import Models
import Queue
import RepositoryConfiguration

/// What ``Publish`` writes: the commit message, the pull request's title and body, the report's details.
extension Publish {
    /// Returns the pull request's title: the instruction's first line, or the issue's title.
    static func title(instruction: String, issueTitle: String) -> String {
        let firstLine = PromptBuilder.sanitize(instruction).split(separator: "\n").first.map(String.init)?
            .trimmingCharacters(in: .whitespaces) ?? ""
        let title = firstLine.isEmpty ? PromptBuilder.sanitize(issueTitle) : firstLine
        let capped = title.count > 72 ? String(title.prefix(71)) + "…" : title
        guard let first = capped.first else { return "Changes by asynccode" }
        return first.uppercased() + capped.dropFirst()
    }

    /// Returns the commit message: the title, who asked where, and the requester as co-author.
    static func commitMessage(title: String, record: TaskRecord) -> String {
        let coauthor = "\(record.requesterLogin) <\(record.requesterGitHubID)+\(record.requesterLogin)@users.noreply.github.com>"
        let place = record.hasIssue ? "in #\(record.issueNumber)" : "through asynccode's API"
        return "\(title)\n\nAsked by @\(record.requesterLogin) \(place) (asynccode task \(record.id)).\n\nCo-authored-by: \(coauthor)\n"
    }

    static func pullRequestBody(
        summary: String, record: TaskRecord, files: [ChangedFile], agent: String, rounds: Int = 1, failing: [CheckResult] = []
    ) -> String {
        var body = summary.isEmpty ? "The agent made the changes below." : PromptBuilder.capped(summary, bytes: 30_000)
        body += verification(rounds: rounds, failing: failing)
        if !record.isPullRequest, record.hasIssue { body += "\n\nCloses #\(record.issueNumber)" }
        let additions = files.reduce(0) { $0 + $1.additions }
        let deletions = files.reduce(0) { $0 + $1.deletions }
        body += "\n\n**Changed files** (\(files.count), +\(additions) −\(deletions))\n\n| File | + | − |\n|---|---|---|\n"
        for file in files.prefix(100) {
            body += "| `\(file.path.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "`", with: "'"))` | \(file.additions) | \(file.deletions) |\n"
        }
        if files.count > 100 { body += "| … \(files.count - 100) more | | |\n" }
        body += "\nasynccode task \(record.id) · asked by @\(record.requesterLogin)"
        if let url = record.sourceURL { body += " in \(url)" }
        body += " · agent `\(agent)`"
        return body
    }

    /// Returns why nothing was pushed when the agent changed protected paths (the first 20 named).
    static func protectedPathsReason(_ protected: [String]) -> String {
        let listed = protected.prefix(20).map { "`\($0.replacingOccurrences(of: "`", with: "'"))`" }.joined(separator: ", ")
            + (protected.count > 20 ? " and \(protected.count - 20) more" : "")
        return "the agent changed protected paths (`protectedPaths` in `\(RepositoryConfiguration.path)`): \(listed); nothing was pushed"
    }

    /// Returns who is asked to review a new pull request: the requester, then the configured reviewers,
    /// each once (any case) and never a bot.
    static func reviewers(requester: String, configured: [String]) -> [String] {
        var reviewers: [String] = []
        for login in [requester] + configured
        where !reviewers.contains(where: { $0.lowercased() == login.lowercased() }) && !login.hasSuffix("[bot]") {
            reviewers.append(login)
        }
        return reviewers
    }

    /// Returns the report's details once pushed: what (`pushed`: the commit, on a follow-up) went where, a table
    /// of the change, and the agent's summary.
    static func details(pushed: String?, link: String, files: [ChangedFile], duration: String, agent: String, summary: String) -> String {
        let additions = files.reduce(0) { $0 + $1.additions }
        let deletions = files.reduce(0) { $0 + $1.deletions }
        var details = pushed.map { "Pushed \($0) to \(link)." } ?? "Opened \(link)."
        details += "\n\n| Files changed | Lines | Duration | Agent |\n|---|---|---|---|\n"
        details += "| \(files.count) | +\(additions) −\(deletions) | \(duration) | `\(agent)` |"
        if !summary.isEmpty { details += "\n\n**Agent's summary**\n\n" + PromptBuilder.capped(summary, bytes: 20_000) }
        return details
    }

    /// Returns what the pull request and the final comment say of the checks: how many agent rounds ran (when
    /// more than one) and the checks still failing, with their output tails; empty when there is nothing to say.
    static func verification(rounds: Int, failing: [CheckResult]) -> String {
        var text = ""
        if rounds > 1 {
            text += "\n\nThe agent ran \(rounds) rounds: the repository's checks failed and went back to it"
                + (failing.isEmpty ? ", and now pass." : ".")
        }
        if !failing.isEmpty {
            text += "\n\n⚠️ " + VerifyLoop<API>.failingDetails(failing, rounds: max(1, rounds))
        }
        return text
    }
}
