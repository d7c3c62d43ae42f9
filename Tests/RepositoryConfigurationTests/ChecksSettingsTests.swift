import RepositoryConfiguration
import Testing

/// `setup`, `checks`, `fixRounds` and `onChecksFailing` (issue 19).
@Suite(.timeLimit(.minutes(10))) struct ChecksSettingsTests {
    func error(_ text: String) -> RepositoryConfigurationError? {
        do {
            _ = try RepositoryConfiguration.parse(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func defaultsCheckNothing() {
        let configuration = RepositoryConfiguration()
        #expect(configuration.setup.isEmpty)
        #expect(configuration.checks.isEmpty)
        #expect(configuration.fixRounds == 2)
        #expect(configuration.onChecksFailing == .draft)
    }

    @Test func fullSettings() throws {
        let configuration = try RepositoryConfiguration.parse("""
            setup:
              - npm ci
            checks:
              - name: tests
                run: npm test
                timeout: 900
              - {name: lint, run: npm run lint}
            fixRounds: 0
            onChecksFailing: fail
            """)
        #expect(configuration.setup == ["npm ci"])
        #expect(configuration.checks == [
            RepositoryConfiguration.Check(name: "tests", run: "npm test", timeout: 900),
            RepositoryConfiguration.Check(name: "lint", run: "npm run lint", timeout: 600),
        ])
        #expect(configuration.fixRounds == 0)
        #expect(configuration.onChecksFailing == .fail)
    }

    static let invalid: [(String, Int, String)] = [
        ("draft: false\nfixRounds: 6\n", 2, "`fixRounds` must be a whole number from 0 to 5"),
        ("fixRounds: two\n", 1, "`fixRounds` must be a whole number"),
        ("fixRounds: -1\n", 1, "`fixRounds` must be a whole number"),
        ("onChecksFailing: maybe\n", 1, "`onChecksFailing` must be `draft` or `fail`"),
        ("setup: npm ci\n", 1, "`setup` must be a list"),
        ("setup:\n  - npm ci\n  - \"\"\n", 3, "`setup` entry must not be empty"),
        ("setup:\n  - \(String(repeating: "x", count: 2001))\n", 2, "over 2000 bytes"),
        ("checks:\n  - name: tests\n    run: make\n    timeout: 3601\n", 4, "`checks.timeout` must be a whole number from 1 to 3600"),
        ("checks:\n  - name: tests\n    run: make\n    timeout: 0\n", 4, "`checks.timeout`"),
        ("checks:\n  - name: tests\n", 2, "needs a `name` and a `run`"),
        ("checks:\n  - run: make\n    nmae: x\n", 3, "`nmae` is not a check setting"),
        ("checks:\n  - make test\n", 2, "entries of `checks` must be mappings"),
        ("checks: make test\n", 1, "`checks` must be a list"),
        ("checks:\n  - {name: a, run: x}\n  - {name: a, run: y}\n", 3, "two checks named `a`"),
        ("maxAutomaticFixes: 21\n", 1, "`maxAutomaticFixes` must be a whole number from 0 to 20"),
        ("maxAutomaticFixes: many\n", 1, "`maxAutomaticFixes` must be a whole number"),
        ("draft: true\nfixFailingCI: sometimes\n", 2, "`fixFailingCI`"),
    ]

    @Test(arguments: invalid)
    func invalidValuesNameTheirLine(text: String, line: Int, problem: String) throws {
        let found = try #require(error(text))
        #expect(found.line == line, "\(found)")
        #expect(found.problem.contains(problem), "\(found)")
    }

    @Test func ciFixSettingsDefaultOffAndRead() throws {
        let defaults = try RepositoryConfiguration.parse("draft: true\n")
        #expect(!defaults.fixFailingCI)
        #expect(defaults.maxAutomaticFixes == 3)
        let set = try RepositoryConfiguration.parse("fixFailingCI: true\nmaxAutomaticFixes: 0\n")
        #expect(set.fixFailingCI)
        #expect(set.maxAutomaticFixes == 0)
    }

    @Test func atMostTwentyChecks() throws {
        let text = "checks:\n" + (1...21).map { "  - {name: c\($0), run: \"true\"}\n" }.joined()
        #expect(error(text)?.problem.contains("more than 20 checks") == true)
        let setup = "setup:\n" + (1...21).map { "  - echo \($0)\n" }.joined()
        #expect(error(setup)?.problem.contains("more than 20 commands") == true)
    }
}
