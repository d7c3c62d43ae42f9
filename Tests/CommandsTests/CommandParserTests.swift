import Commands
import Models
import Testing

@Suite(.timeLimit(.minutes(10))) struct CommandParserTests {
    let parser = CommandParser()

    func commands(_ body: String) -> [ParsedCommand] { parser.parse(body).commands }

    func task(_ body: String) -> TaskCommand? {
        guard case .task(let task)? = commands(body).first else { return nil }
        return task
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var body: String
        var expected: [ParsedCommand]
        var testDescription: String { body.debugDescription }
    }

    static let table: [Case] = [
        Case(body: "/asynccode fix readme", expected: [.task(.init(kind: .code, text: "fix readme"))]),
        Case(body: "/ASYNCCODE Fix README", expected: [.task(.init(kind: .code, text: "Fix README"))]),
        Case(body: "/AsyncCode ask why is this slow?", expected: [.task(.init(kind: .ask, text: "why is this slow?"))]),
        Case(body: "/asynccode PLAN the migration", expected: [.task(.init(kind: .plan, text: "the migration"))]),
        Case(body: "/asynccode review", expected: [.task(.init(kind: .review, text: ""))]),
        Case(body: "/asynccode docs explain setup", expected: [.task(.init(kind: .docs, text: "explain setup"))]),
        Case(body: "/asynccode debug the crash", expected: [.task(.init(kind: .debug, text: "the crash"))]),
        Case(body: "/asynccode", expected: [.task(.init(kind: .code, text: ""))]),
        Case(body: "   /asynccode indented by three", expected: [.task(.init(kind: .code, text: "indented by three"))]),
        // Unknown verbs are just text.
        Case(body: "/asynccode refactor everything", expected: [.task(.init(kind: .code, text: "refactor everything"))]),
        // Not commands: mid-line, glued, code, quotes, hidden.
        Case(body: "please run /asynccode fix", expected: []),
        Case(body: "/asynccodefix readme", expected: []),
        Case(body: "/asynccode-bot fix", expected: []),
        Case(body: "> /asynccode fix readme", expected: []),
        Case(body: "  > /asynccode fix readme", expected: []),
        Case(body: "```\n/asynccode fix readme\n```", expected: []),
        Case(body: "~~~sh\n/asynccode fix readme\n~~~", expected: []),
        Case(body: "````\n```\n/asynccode inside\n````", expected: []),
        Case(body: "    /asynccode indented code", expected: []),
        Case(body: "\t/asynccode tab code", expected: []),
        Case(body: "<!--\n/asynccode hidden\n-->", expected: []),
        Case(body: "<!-- /asynccode hidden -->", expected: []),
        Case(body: "text <!-- start\n/asynccode hidden\nend -->\n/asynccode visible", expected: [.task(.init(kind: .code, text: "visible"))]),
        Case(body: "```\ncode\n```\n/asynccode after fence", expected: [.task(.init(kind: .code, text: "after fence"))]),
        // Control verbs.
        Case(body: "/asynccode cancel", expected: [.control(.cancel, argument: "")]),
        Case(body: "/asynccode Retry please", expected: [.control(.retry, argument: "please")]),
        Case(body: "/asynccode status", expected: [.control(.status, argument: "")]),
        Case(body: "/asynccode help", expected: [.control(.help, argument: "")]),
        // Options.
        Case(body: "/asynccode --agent codex fix it", expected: [.task(.init(kind: .code, agent: "codex", text: "fix it"))]),
        Case(body: "/asynccode ask --agent=claude --priority HIGH what?",
             expected: [.task(.init(kind: .ask, agent: "claude", priority: .high, text: "what?"))]),
        Case(body: "/asynccode --base release/1.2 --priority low backport",
             expected: [.task(.init(kind: .code, priority: .low, baseBranch: "release/1.2", text: "backport"))]),
        Case(body: "/asynccode fix --agent later is text", expected: [.task(.init(kind: .code, text: "fix --agent later is text"))]),
        // Invalid options are reported, never guessed.
        Case(body: "/asynccode --priority urgent x", expected: [.invalid(problem: "`--priority` takes low, medium or high")]),
        Case(body: "/asynccode --agent", expected: [.invalid(problem: "option `--agent` needs a value")]),
        Case(body: "/asynccode --base -x fix", expected: [.invalid(problem: "`--base` takes a branch name (letters, digits, `.`, `_`, `-`, `/`)")]),
        Case(body: "/asynccode --base a..b fix", expected: [.invalid(problem: "`--base` takes a branch name (letters, digits, `.`, `_`, `-`, `/`)")]),
        Case(body: "/asynccode --agent ../../bin/sh fix", expected: [.invalid(problem: "`--agent` takes a name of letters, digits, `.`, `_` or `-` (at most 64)")]),
        // Unicode.
        Case(body: "/asynccode 修复 README 的错别字 🚀", expected: [.task(.init(kind: .code, text: "修复 README 的错别字 🚀"))]),
        Case(body: "/asynccode\u{00A0}fix with nbsp", expected: [.task(.init(kind: .code, text: "fix with nbsp"))]),
        Case(body: "\u{200B}/asynccode zero width", expected: []),
        Case(body: "/asynccode fix\r\n/asynccode ask q\r\n", expected: [
            .task(.init(kind: .code, text: "fix")), .task(.init(kind: .ask, text: "q")),
        ]),
    ]

    @Test(arguments: CommandParserTests.table)
    func grammar(_ testCase: Case) {
        let parsed = commands(testCase.body)
        #expect(parsed.count == testCase.expected.count)
        for (actual, expected) in zip(parsed, testCase.expected) {
            switch (actual, expected) {
            case (.task(let a), .task(let e)):
                #expect(a.kind == e.kind)
                #expect(a.agent == e.agent)
                #expect(a.priority == e.priority)
                #expect(a.baseBranch == e.baseBranch)
                #expect(a.text == e.text)
            case (.invalid(let a), .invalid(let e)):
                #expect(a == e)
            default:
                #expect(actual == expected)
            }
        }
    }

    @Test func unknownOptionIsNamed() {
        guard case .invalid(let problem)? = commands("/asynccode --model gpt fix").first else {
            Issue.record("expected invalid")
            return
        }
        #expect(problem.contains("--model"))
        #expect(problem.contains("--agent NAME"))
    }

    @Test func fourCommandsRunThreeAndReportTheRest() {
        let body = "/asynccode one\n/asynccode two\n/asynccode three\n/asynccode four"
        let parsed = parser.parse(body)
        #expect(parsed.commands.count == 3)
        #expect(parsed.overLimit == 1)
        let texts = parsed.commands.compactMap { command -> String? in
            if case .task(let task) = command { return task.text }
            return nil
        }
        #expect(texts == ["one", "two", "three"])
    }

    @Test func detailsRunToTheNextCommand() {
        let body = """
            /asynccode fix the login bug

            Steps:
            1. open /login
            ```
            stack trace
            ```
            /asynccode ask what else?
            trailing
            """
        let parsed = commands(body)
        guard case .task(let first) = parsed[0], case .task(let second) = parsed[1] else {
            Issue.record("expected two tasks")
            return
        }
        #expect(first.details == "Steps:\n1. open /login\n```\nstack trace\n```")
        #expect(first.prompt.hasPrefix("fix the login bug\n\nSteps:"))
        #expect(second.details == "trailing")
    }

    @Test func sixtyFourKilobyteBodyIsBounded() {
        let filler = String(repeating: "lorem ipsum dolor sit amet ", count: 2_500) // ~67 KB
        let body = "/asynccode " + filler + "\n" + filler
        #expect(body.utf8.count > 64 * 1024)
        guard let task = task(body) else {
            Issue.record("expected a task")
            return
        }
        #expect(task.prompt.utf8.count <= CommandGrammar.maxTextBytes)
        #expect(task.text.hasPrefix("lorem ipsum"))

        let noCommand = String(repeating: "x", count: 64 * 1024)
        #expect(commands(noCommand).isEmpty)
        let manyLines = String(repeating: "> quoted\n", count: 8_000) + "/asynccode last"
        #expect(commands(manyLines).count == 1)
    }

    @Test func truncationKeepsCharactersWhole() {
        let text = String(repeating: "é", count: 10) // 2 bytes each
        #expect(text.truncatedToUTF8(5) == "éé")
        #expect(text.truncatedToUTF8(100) == text)
    }

    @Test func helpListsEveryVerbAndOption() {
        let help = CommandGrammar.helpText(agents: ["claude", "codex"])
        for (_, definition) in CommandGrammar.taskVerbs + CommandGrammar.controlVerbs.map({ (TaskKind.code, $0.1) }) {
            #expect(help.contains(definition.usage))
        }
        for option in CommandGrammar.options { #expect(help.contains(option.usage)) }
        #expect(help.contains("`claude`, `codex`"))
    }

    @Test func branchNames() {
        for good in ["main", "release/1.2", "feature_x-y.z"] { #expect(CommandParser.isValidBranchName(good), "\(good)") }
        for bad in ["", "-rf", "/abs", "a..b", "a//b", "x.lock", "a b", "a~1", "a@{1}", "trailing/", String(repeating: "a", count: 201)] {
            #expect(!CommandParser.isValidBranchName(bad), "\(bad)")
        }
    }
}
