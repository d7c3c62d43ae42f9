import Models

/// One verb or option of the `/asynccode` grammar, with its help text kept beside it.
public struct CommandDefinition: Sendable, Hashable {
    /// The word typed after `/asynccode`, or the option with its leading dashes.
    public var name: String
    /// The usage line shown by `/asynccode help`.
    public var usage: String
    /// One sentence of help.
    public var summary: String
}

/// The `/asynccode` command grammar: verbs, options and the help text generated from them.
public enum CommandGrammar {
    /// The word that starts a command line, matched case-insensitively.
    public static let prefix = "/asynccode"
    /// Commands honoured per comment; more are reported, not run.
    public static let maxCommandsPerComment = 3
    /// The most UTF-8 bytes of instruction text kept per command.
    public static let maxTextBytes = 32 * 1024

    /// Verbs that start a task, with their help.
    public static let taskVerbs: [(TaskKind, CommandDefinition)] = [
        (.code, .init(name: "", usage: "/asynccode TEXT", summary: "Make the change TEXT describes and open a pull request (the default).")),
        (.ask, .init(name: "ask", usage: "/asynccode ask QUESTION", summary: "Answer a question about the code in a comment; nothing is pushed.")),
        (.plan, .init(name: "plan", usage: "/asynccode plan TEXT", summary: "Propose a plan for the change in a comment; nothing is pushed.")),
        (.review, .init(name: "review", usage: "/asynccode review [TEXT]", summary: "Review this pull request and post the review.")),
        (.docs, .init(name: "docs", usage: "/asynccode docs TEXT", summary: "Write or fix documentation and open a pull request.")),
        (.debug, .init(name: "debug", usage: "/asynccode debug TEXT", summary: "Find and fix the bug TEXT describes and open a pull request.")),
    ]

    /// Verbs that steer existing tasks, with their help.
    public static let controlVerbs: [(ControlVerb, CommandDefinition)] = [
        (.cancel, .init(name: "cancel", usage: "/asynccode cancel", summary: "Cancel this thread's pending and running tasks.")),
        (.retry, .init(name: "retry", usage: "/asynccode retry", summary: "Run this thread's last failed or cancelled task again.")),
        (.status, .init(name: "status", usage: "/asynccode status", summary: "List this thread's tasks and their states.")),
        (.help, .init(name: "help", usage: "/asynccode help", summary: "Show this help.")),
    ]

    /// Options accepted after the verb, with their help.
    public static let options: [CommandDefinition] = [
        .init(name: "--agent", usage: "--agent NAME", summary: "Run the agent NAME instead of the default one."),
        .init(name: "--priority", usage: "--priority low|medium|high", summary: "Queue the task ahead of or behind others (default medium)."),
        .init(name: "--base", usage: "--base BRANCH", summary: "Start from BRANCH instead of the default branch; the pull request targets it."),
        .init(name: "--budget", usage: "--budget CREDITS", summary: "Spend at most CREDITS on this task; the agent is stopped when it passes them."),
    ]

    /// Returns the help text in Markdown, generated from the definitions above.
    ///
    /// - Parameters:
    ///   - agents: the agents users may choose, listed after the commands.
    ///   - models: a Markdown list of the agents with their descriptions and prices; shown instead of `agents`.
    ///   - label: the label that starts work in the repository (its `label` setting, else the bot's `triggerLabel`).
    public static func helpText(agents: [String] = [], models: String? = nil, label: String = "asynccode") -> String {
        var lines = ["**asynccode commands** (one per line, at most \(maxCommandsPerComment) per comment):", ""]
        for (_, definition) in taskVerbs { lines.append("- `\(definition.usage)`: \(definition.summary)") }
        for (_, definition) in controlVerbs { lines.append("- `\(definition.usage)`: \(definition.summary)") }
        lines.append("")
        lines.append("Options, after the verb and before the text:")
        for definition in options { lines.append("- `\(definition.usage)`: \(definition.summary)") }
        if let models, !models.isEmpty {
            lines.append("")
            lines.append("Agents (`--agent NAME`):")
            lines.append(models)
        } else if !agents.isEmpty {
            lines.append("")
            lines.append("Agents: " + agents.map { "`\($0)`" }.joined(separator: ", "))
        }
        lines.append("")
        let shown = String(label.map { $0 == "`" ? "'" : $0 })
        lines.append("Adding the `\(shown)` label to an issue works like `/asynccode` with the issue as the instruction.")
        return lines.joined(separator: "\n")
    }
}
