import RepositoryConfiguration
import Testing

@Suite(.timeLimit(.minutes(10))) struct RepositoryConfigurationTests {
    /// Returns the error `parse` throws for `text`, or `nil` when it parses.
    func error(_ text: String) -> RepositoryConfigurationError? {
        do {
            _ = try RepositoryConfiguration.parse(text)
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: ["", "   \n\t\n\n", "# settings come later\n# nothing yet\n", "---\n", "~\n"])
    func emptyTextGivesTheDefaults(text: String) throws {
        let configuration = try RepositoryConfiguration.parse(text)
        #expect(configuration == RepositoryConfiguration())
        #expect(configuration.enabled)
        #expect(configuration.label == nil)
        #expect(configuration.defaultAgent == nil)
        #expect(configuration.allowedAgents == nil)
        #expect(configuration.branchPrefix == "asynccode/")
        #expect(!configuration.draft)
        #expect(configuration.reviewers.isEmpty)
        #expect(configuration.protectedPaths == [".github/workflows/**"])
        #expect(configuration.instructions == nil)
    }

    @Test func fullFile() throws {
        let text = """
            # asynccode settings
            enabled: false
            label: "ai: fix"
            defaultAgent: claude
            allowedAgents: [claude, codex-2.1]
            branchPrefix: bots/asynccode/
            draft: true
            reviewers:
              - alice
              - "@Bob-Smith"
            protectedPaths:
              - .github/workflows/**
              - "*.pem"
              - docs/
            instructions: |
              Run `swift test && swift build` before finishing.
              - **Never** touch R&D notes.
            """
        let configuration = try RepositoryConfiguration.parse(text)
        var expected = RepositoryConfiguration()
        expected.enabled = false
        expected.label = "ai: fix"
        expected.defaultAgent = "claude"
        expected.allowedAgents = ["claude", "codex-2.1"]
        expected.branchPrefix = "bots/asynccode/"
        expected.draft = true
        expected.reviewers = ["alice", "Bob-Smith"]
        expected.protectedPaths = [".github/workflows/**", "*.pem", "docs/"]
        expected.instructions = "Run `swift test && swift build` before finishing.\n- **Never** touch R&D notes."
        #expect(configuration == expected)
    }

    @Test func flowMappingAtTheRoot() throws {
        let configuration = try RepositoryConfiguration.parse("{draft: true, reviewers: [carol]}")
        #expect(configuration.draft)
        #expect(configuration.reviewers == ["carol"])
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var text: String
        var line: Int?
        var problem: String
        var testDescription: String { text.debugDescription }
    }

    /// Each offending key or value sits on line 3, after two other lines, so a wrong count shows.
    static let typeErrors: [Bad] = [
        Bad(text: "# c\nenabled: true\ndraft: yes\n", line: 3, problem: "`draft` must be true or false"),
        Bad(text: "# c\nenabled: true\ndraft: \"true\"\n", line: 3, problem: "`draft` must be true or false"),
        Bad(text: "# c\n\nenabled: 1\n", line: 3, problem: "`enabled` must be true or false"),
        Bad(text: "# c\n\nenabled: [true]\n", line: 3, problem: "`enabled` must be true or false"),
        Bad(text: "# c\ndraft: false\nlabel: [a, b]\n", line: 3, problem: "`label` must be a string, not a list"),
        Bad(text: "# c\ndraft: false\nlabel:\n", line: 3, problem: "`label` has no value; give a string or remove the key"),
        Bad(text: "# c\ndraft: false\nlabel: \"\"\n", line: 3, problem: "`label` must not be empty"),
        Bad(text: "# c\ndraft: false\nlabel: a, b\n", line: 3, problem: "`label` must not contain a comma"),
        Bad(text: "# c\ndraft: false\nlabel: \"a\\nb\"\n", line: 3, problem: "`label` must be one line, without control characters"),
        Bad(text: "# c\ndraft: false\nlabel: \(String(repeating: "x", count: 51))\n", line: 3, problem: "`label` is over 50 characters"),
        Bad(text: "# c\ndraft: false\ndefaultAgent: -claude\n", line: 3,
            problem: "`defaultAgent`: `-claude` is not an agent name (letters, digits, `.`, `_`, `-`; at most 64)"),
        Bad(text: "# c\ndraft: false\ndefaultAgent: {name: claude}\n", line: 3, problem: "`defaultAgent` must be a string, not a mapping"),
        Bad(text: "# c\ndraft: false\nallowedAgents: claude\n", line: 3, problem: "`allowedAgents` must be a list such as [a, b], not a single value"),
        Bad(text: "# c\ndraft: false\nallowedAgents: []\n", line: 3,
            problem: "`allowedAgents` must list at least one agent; omit it to allow every agent"),
        Bad(text: "allowedAgents:\n  - claude\n  - bad agent\n", line: 3,
            problem: "`allowedAgents`: `bad agent` is not an agent name (letters, digits, `.`, `_`, `-`; at most 64)"),
        Bad(text: "allowedAgents:\n  - claude\n  - [codex]\n", line: 3, problem: "entries of `allowedAgents` must be strings, not a list"),
        Bad(text: "allowedAgents:\n  - claude\n  -\n", line: 3, problem: "entries of `allowedAgents` must be strings, not an empty entry"),
        Bad(text: "# c\ndraft: false\nallowedAgents: [\(Array(repeating: "a", count: 51).joined(separator: ", "))]\n", line: 3,
            problem: "`allowedAgents` lists more than 50 agents"),
        Bad(text: "# c\ndraft: false\nbranchPrefix: ../x/\n", line: 3, problem: "`branchPrefix` must not start with `.`"),
        Bad(text: "# c\ndraft: false\nbranchPrefix: a..b/\n", line: 3, problem: "`branchPrefix` must not contain `..`"),
        Bad(text: "# c\ndraft: false\nbranchPrefix: a//b\n", line: 3, problem: "`branchPrefix` must not contain `//`"),
        Bad(text: "# c\ndraft: false\nbranchPrefix: -x/\n", line: 3, problem: "`branchPrefix` must not start with `-`"),
        Bad(text: "# c\ndraft: false\nbranchPrefix: /x/\n", line: 3, problem: "`branchPrefix` must not start with `/`"),
        Bad(text: "# c\ndraft: false\nbranchPrefix: \"a@{b\"\n", line: 3, problem: "`branchPrefix` may hold only letters, digits, `.`, `_`, `-` and `/`"),
        Bad(text: "# c\ndraft: false\nbranchPrefix: a b\n", line: 3, problem: "`branchPrefix` may hold only letters, digits, `.`, `_`, `-` and `/`"),
        Bad(text: "# c\ndraft: false\nbranchPrefix: x.lock\n", line: 3, problem: "`branchPrefix` must not have a part ending in `.lock`"),
        Bad(text: "# c\ndraft: false\nbranchPrefix: x.\n", line: 3, problem: "`branchPrefix` must not end with `.`"),
        Bad(text: "# c\ndraft: false\nbranchPrefix: \(String(repeating: "b", count: 101))\n", line: 3, problem: "`branchPrefix` must be 1 to 100 bytes"),
        Bad(text: "# c\ndraft: false\nbranchPrefix: \"\"\n", line: 3, problem: "`branchPrefix` must be 1 to 100 bytes"),
        Bad(text: "# c\ndraft: false\nreviewers: alice\n", line: 3, problem: "`reviewers` must be a list such as [a, b], not a single value"),
        Bad(text: "# c\ndraft: false\nreviewers: ~\n", line: 3, problem: "`reviewers` has no value; give a list such as [a, b], or [] for none"),
        Bad(text: "reviewers:\n  - alice\n  - al_ice\n", line: 3, problem: "`reviewers` entry `al_ice` is not a GitHub login"),
        Bad(text: "reviewers:\n  - alice\n  - \"@@bob\"\n", line: 3, problem: "`reviewers` entry `@@bob` is not a GitHub login"),
        Bad(text: "reviewers:\n  - alice\n  - \(String(repeating: "a", count: 40))\n", line: 3,
            problem: "`reviewers` entry `\(String(repeating: "a", count: 40))` is not a GitHub login"),
        Bad(text: "# c\ndraft: false\nreviewers: [\((1...16).map { "u\($0)" }.joined(separator: ", "))]\n", line: 3,
            problem: "`reviewers` lists more than 15 logins"),
        Bad(text: "# c\ndraft: false\nprotectedPaths: .github/**\n", line: 3,
            problem: "`protectedPaths` must be a list such as [a, b], not a single value"),
        Bad(text: "protectedPaths:\n  - a/**\n  - ../secrets\n", line: 3, problem: "`protectedPaths`: the glob `../secrets` has a `..` segment"),
        Bad(text: "protectedPaths:\n  - a/**\n  - /etc/passwd\n", line: 3,
            problem: "`protectedPaths`: the glob `/etc/passwd` is an absolute path; write it relative to the repository root"),
        Bad(text: "protectedPaths:\n  - a/**\n  - \"\"\n", line: 3, problem: "`protectedPaths`: a glob must not be empty"),
        Bad(text: "# c\ndraft: false\nprotectedPaths: [\((0...100).map { "p\($0)" }.joined(separator: ", "))]\n", line: 3,
            problem: "`protectedPaths` lists more than 100 globs"),
        Bad(text: "# c\ndraft: false\ninstructions: [be nice]\n", line: 3, problem: "`instructions` must be a string, not a list"),
        Bad(text: "# c\ndraft: false\ninstructions: \(String(repeating: "é", count: 4097))\n", line: 3, problem: "`instructions` is over 8192 bytes"),
    ]

    @Test(arguments: typeErrors)
    func typeErrorsNameTheLine(bad: Bad) {
        let error = error(bad.text)
        #expect(error == RepositoryConfigurationError(line: bad.line, problem: bad.problem))
    }

    @Test func emptyValueOnItsOwnLineNamesTheKeyLine() {
        // Yams places an empty value at the next token, here on line 3; the error names the key's line.
        #expect(error("draft: true\nlabel:\n\nenabled: true\n")?.line == 2)
    }

    @Test func unknownKeyIsRefusedWithItsLineAndTheKnownKeys() {
        let error = error("draft: true\n\nprotectedpaths: []\n")
        #expect(error?.line == 3)
        #expect(error?.problem == "`protectedpaths` is not a setting (did you mean `protectedPaths`?); known: enabled, label, defaultAgent, "
            + "allowedAgents, branchPrefix, draft, reviewers, protectedPaths, instructions, setup, checks, fixRounds, onChecksFailing, fixFailingCI, maxAutomaticFixes, signedCommits")
        #expect(self.error("draft: true\nreviewer: [a]\n")?.problem.hasPrefix("`reviewer` is not a setting; known: enabled,") == true)
    }

    @Test func nonStringKeysAreRefused() {
        #expect(error("draft: true\n[a]: b\n")?.line == 2)
        #expect(error("draft: true\n~: b\n")?.line == 2)
    }

    @Test func yamlSyntaxErrorsNameTheLine() {
        let unclosed = error("draft: true\nreviewers: [alice\nlabel: x\n")
        #expect(unclosed?.line != nil)
        #expect(unclosed?.problem.hasPrefix("invalid YAML: ") == true)
        #expect(error("draft: true\nlabel: a: b\n")?.line == 2)
        #expect(error("draft: true\n\tlabel: x\n")?.line == 2)  // A tab cannot indent.
        #expect(error("draft: true\nlabel: \"x\n")?.problem.hasPrefix("invalid YAML: ") == true)
        #expect(error("draft: true\nlabel: a\u{1}b\n")?.line == 2)  // Reader error: control character.
    }

    @Test func duplicateKeysAreRefused() {
        #expect(error("draft: true\nlabel: a\ndraft: false\n") == RepositoryConfigurationError(line: 1, problem: "`draft` is set more than once"))
    }

    @Test func rootMustBeAMapping() {
        #expect(error("# c\n- draft\n") == RepositoryConfigurationError(line: 2, problem: "the file must be a mapping of settings, one `key: value` per line"))
        #expect(error("just text")?.line == 1)
        #expect(error("draft: true\n---\ndraft: false\n")?.line == 2)  // A second document.
    }

    @Test func sizeLimit() throws {
        let comment = "# " + String(repeating: "x", count: 97) + "\n"  // 100 bytes
        let atLimit = String(repeating: comment, count: 655) + String(repeating: "#", count: 23) + "\n" + "draft: true\n"
        #expect(atLimit.utf8.count == RepositoryConfiguration.maxBytes)
        #expect(try RepositoryConfiguration.parse(atLimit).draft)
        #expect(error(atLimit + " ") == RepositoryConfigurationError(line: nil, problem: "the file is over 64 KB"))
        #expect(RepositoryConfigurationError(line: nil, problem: "the file is over 64 KB").description == "the file is over 64 KB")
    }

    @Test func descriptionNamesTheLine() {
        #expect(error("draft: 1\n")?.description == "line 1: `draft` must be true or false")
    }

    static let aliasProblem = "YAML anchors (`&name`) and aliases (`*name`) are not allowed; quote a value that starts with `&` or `*`, such as \"*.pem\""

    @Test func aliasesAndAnchorsAreRefused() {
        // An anchor and an alias: refused before Yams reads the text.
        #expect(error("draft: true\nlabel: &l bug\nreviewers: [*l]\n") == RepositoryConfigurationError(line: 2, problem: Self.aliasProblem))
        // An alias without an anchor: an unquoted `*.pem` is one.
        #expect(error("protectedPaths:\n  - a/**\n  - *.pem\n") == RepositoryConfigurationError(line: 3, problem: Self.aliasProblem))
        // An anchor without an alias.
        #expect(error("draft: true\nlabel: &l bug\n") == RepositoryConfigurationError(line: 2, problem: Self.aliasProblem))
        #expect(error("draft: true\nreviewers: [alice, &r bob]\n") == RepositoryConfigurationError(line: 2, problem: Self.aliasProblem))
        #expect(error("&root\ndraft: true\n")?.problem == Self.aliasProblem)
    }

    @Test func aliasBombsAreRefusedBeforeComposing() {
        // Nine levels of nine aliases, used as a mapping key: Yams would hash 9^9 nodes to check for duplicates.
        var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
        for level in 1...9 {
            lines.append("a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 9).joined(separator: ", ") + "]")
        }
        lines.append("? *a9\n: 1")
        #expect(error(lines.joined(separator: "\n")) == RepositoryConfigurationError(line: 1, problem: Self.aliasProblem))
    }

    @Test(arguments: [
        "instructions: Run make && make test, then R&D *carefully*.\n",
        "instructions: |\n  - **bold** & *italic*\n  a * b & c\n",
        "instructions: \"Use &amp; in HTML\"\n",  // An anchor-like word without any alias is harmless.
        "label: \"*wip*\"\nprotectedPaths: [\"*.pem\", '**/secrets/*']\n",
    ])
    func textThatLooksLikeAnchorsOrAliasesStillParses(text: String) throws {
        _ = try RepositoryConfiguration.parse(text)
    }

    @Test func deepNestingIsRefused() {
        let brackets = error("reviewers: " + String(repeating: "[", count: 500) + String(repeating: "]", count: 500))
        #expect(brackets?.line == 1)
        #expect(brackets?.problem.contains("more than 100 `[` or `{`") == true)
        let dashes = error("reviewers:\n" + String(repeating: "- ", count: 60) + "x\n")
        #expect(dashes == RepositoryConfigurationError(line: 2, problem: "the line is indented or nested more than 100 columns deep"))
        // Deeper than the settings need, but within the bounds: a plain type error.
        #expect(error("reviewers:\n  - - - a\n") == RepositoryConfigurationError(line: 2, problem: "entries of `reviewers` must be strings, not a list"))
    }

    @Test func defaultAgentMustBeAllowed() {
        let text = "allowedAgents: [claude, codex]\n# the default\ndefaultAgent: gemini\n"
        #expect(error(text) == RepositoryConfigurationError(line: 3, problem: "`defaultAgent` `gemini` is not among `allowedAgents` (claude, codex)"))
        #expect(error("defaultAgent: codex\nallowedAgents: [claude, codex]\n") == nil)
    }

    @Test func reviewersLoseTheirAtSignAndDuplicates() throws {
        let configuration = try RepositoryConfiguration.parse("reviewers: [\"@alice\", bob, Alice, '@carol-9']\n")
        #expect(configuration.reviewers == ["alice", "bob", "carol-9"])
    }

    @Test func explicitEmptyProtectedPathsProtectNothing() throws {
        let configuration = try RepositoryConfiguration.parse("protectedPaths: []\n")
        #expect(configuration.protectedPaths.isEmpty)
        #expect(configuration.protectedChanges(in: [".github/workflows/ci.yml"]).isEmpty)
    }

    @Test func whitespaceOnlyInstructionsAreNone() throws {
        #expect(try RepositoryConfiguration.parse("instructions: \"  \"\n").instructions == nil)
    }

    @Test func protectedChangesAreSortedAndUnique() throws {
        let configuration = try RepositoryConfiguration.parse("protectedPaths: [.github/workflows/**, \"*.pem\", docs/]\n")
        let changed = ["src/main.swift", "keys/b.pem", ".github/workflows/ci.yml", "docs/guide/a.md", "keys/b.pem", "a.pem",
                       ".github/workflowsx/a", "README.md"]
        #expect(configuration.protectedChanges(in: changed) == [".github/workflows/ci.yml", "a.pem", "docs/guide/a.md", "keys/b.pem"])
    }

    @Test func defaultsProtectWorkflows() {
        let configuration = RepositoryConfiguration()
        // A rename out of the protected directory: the caller passes the old and the new path.
        #expect(configuration.protectedChanges(in: ["ci.yml", ".github/workflows/ci.yml"]) == [".github/workflows/ci.yml"])
        #expect(configuration.protectedChanges(in: ["docs/.github/workflows/a.yml"]).isEmpty)
    }

    @Test func invalidGlobSetInCodeProtectsEverything() {
        var configuration = RepositoryConfiguration()
        configuration.protectedPaths = ["../x"]
        #expect(configuration.protectedChanges(in: ["b", "a"]) == ["a", "b"])
    }
}
