import Commands
import Models
import PropertyBased
import Testing

/// The command parser under generated comments: it never crashes, its output stays bounded, and text
/// that cannot hold a command (quoted, fenced, without `/asynccode`) gives none.
@Suite(.timeLimit(.minutes(10))) struct CommandParserPropertyTests {
    let parser = CommandParser()

    /// Lines that exercise the grammar and Markdown: commands, flags, fences, quotes, HTML comments,
    /// unicode that readers cannot see, and long runs.
    static let fragments: [String] = [
        "/asynccode", "/asynccode fix readme", "/ASYNCCODE ask why?", "/asynccode --agent", "/asynccode --agent claude do it",
        "/asynccode --priority high x", "/asynccode --priority urgent x", "/asynccode --base", "/asynccode --base main fix",
        "/asynccode cancel", "/asynccode retry 3", "/asynccode status", "/asynccode help", "/asynccode plan", "/asynccodex",
        "  /asynccode indented", "    /asynccode code block", "\t/asynccode tab", "```", "```swift", "~~~", "````", "> /asynccode quoted",
        ">", "<!--", "-->", "<!-- /asynccode hidden -->", "", " ", "plain words", "--agent", "--", "\u{202E}/asynccode reversed",
        "/asynccode\u{200B}zero width", "/asynccode 🚀 émoji ünïcode 漢字", String(repeating: "a", count: 5000),
        String(repeating: "/asynccode ", count: 200), String(repeating: "`", count: 50), "\r", "\u{0}", "\\/asynccode",
    ]

    static let separators = ["\n", "\r\n", "\r", " ", "\n\n"]

    static func comment(_ indices: [Int]) -> String {
        var body = ""
        for (position, index) in indices.enumerated() {
            body += fragments[index] + separators[position % separators.count]
        }
        return body
    }

    static func text(_ values: [Int]) -> String {
        var scalars = String.UnicodeScalarView()
        for value in values { if let scalar = Unicode.Scalar(UInt32(value)) { scalars.append(scalar) } }
        return String(scalars)
    }

    static let comments = Gen.int(in: 0...(fragments.count - 1)).array(of: 0...40).map(comment)

    static let scalars = Gen.int(in: 0...0x2FFFF).array(of: 0...400).map(text)

    func check(_ body: String) {
        let parsed = parser.parse(body)
        #expect(parsed.commands.count <= CommandGrammar.maxCommandsPerComment)
        #expect(parsed.overLimit >= 0)
        for command in parsed.commands {
            guard case .task(let task) = command else { continue }
            #expect(task.prompt.utf8.count <= CommandGrammar.maxTextBytes + 1)
            #expect(task.text.utf8.count <= body.utf8.count)
            if let agent = task.agent { #expect(CommandParser.isValidAgentName(agent)) }
            if let base = task.baseBranch { #expect(CommandParser.isValidBranchName(base)) }
        }
        if !body.lowercased().contains("/asynccode") { #expect(parsed.commands.isEmpty, "\(body.debugDescription)") }
    }

    @Test func generatedCommentsStayBounded() async {
        await propertyCheck(count: 2000, input: Self.comments) { body in
            check(body)
            await Task.yield()
        }
    }

    @Test func arbitraryUnicodeStaysBounded() async {
        await propertyCheck(count: 2000, input: Self.scalars) { body in
            check(body)
            await Task.yield()
        }
    }

    @Test func quotedCommentsHoldNoCommand() async {
        await propertyCheck(count: 2000, input: Self.comments) { body in
            let quoted = body.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
                .map { "> " + $0 }.joined(separator: "\n")
            #expect(parser.parse(quoted).commands.isEmpty, "\(quoted.debugDescription)")
            await Task.yield()
        }
    }

    @Test func fencedCommentsHoldNoCommand() async {
        await propertyCheck(count: 2000, input: Self.comments) { body in
            // A fence closes only on a fence line of the same kind at least as long: use one no fragment has.
            let fenced = "~~~~~~~~~~\n" + body.replacingOccurrences(of: "~", with: "-") + "\n~~~~~~~~~~"
            #expect(parser.parse(fenced).commands.isEmpty, "\(fenced.debugDescription)")
            await Task.yield()
        }
    }
}
