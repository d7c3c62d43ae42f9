import RepositoryConfiguration
import Testing

@Suite(.timeLimit(.minutes(10))) struct PathGlobTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var pattern: String
        var path: String
        var matches: Bool
        var testDescription: String { "\(pattern) \(matches ? "matches" : "does not match") \(path)" }
    }

    static let cases: [Case] = [
        Case(pattern: ".github/workflows/**", path: ".github/workflows/ci.yml", matches: true),
        Case(pattern: ".github/workflows/**", path: ".github/workflows/sub/x.yml", matches: true),
        Case(pattern: ".github/workflows/**", path: ".github/workflowsx/a", matches: false),
        Case(pattern: ".github/workflows/**", path: "docs/.github/workflows/a", matches: false),
        Case(pattern: ".github/workflows/**", path: ".github/ci.yml", matches: false),
        Case(pattern: "*.pem", path: "a/b/key.pem", matches: true),
        Case(pattern: "*.pem", path: "key.pem", matches: true),
        Case(pattern: "*.pem", path: "key.pem.txt", matches: false),
        Case(pattern: "*.pem", path: "a.pem/readme", matches: false),
        Case(pattern: "docs/", path: "docs/a/b", matches: true),
        Case(pattern: "docs/", path: "docs/a", matches: true),
        Case(pattern: "docs/", path: "src/docs/a", matches: true),  // No other `/`: any depth, as in gitignore.
        Case(pattern: "docs/", path: "docsx/a", matches: false),
        Case(pattern: "src/docs/", path: "src/docs/a", matches: true),
        Case(pattern: "src/docs/", path: "x/src/docs/a", matches: false),
        Case(pattern: "**/secrets/*", path: "secrets/a", matches: true),
        Case(pattern: "**/secrets/*", path: "x/y/secrets/a", matches: true),
        Case(pattern: "**/secrets/*", path: "x/secrets/a/b", matches: false),
        Case(pattern: "**/secrets/*", path: "x/secretsy/a", matches: false),
        Case(pattern: "src/*.swift", path: "src/a.swift", matches: true),
        Case(pattern: "src/*.swift", path: "src/a/b.swift", matches: false),
        Case(pattern: "src/*.swift", path: "x/src/a.swift", matches: false),
        Case(pattern: "a/**/b", path: "a/b", matches: true),
        Case(pattern: "a/**/b", path: "a/x/y/b", matches: true),
        Case(pattern: "a/**/b", path: "a/x/y/c", matches: false),
        Case(pattern: "a/**", path: "a", matches: true),
        Case(pattern: "a/**", path: "ab/c", matches: false),
        Case(pattern: "**", path: "any/thing", matches: true),
        Case(pattern: "a/**/**/b", path: "a/b", matches: true),
        Case(pattern: "a**b/c", path: "axyb/c", matches: true),  // `**` inside a segment is a `*`.
        Case(pattern: "a**b/c", path: "ax/yb/c", matches: false),
        Case(pattern: "file?.txt", path: "file1.txt", matches: true),
        Case(pattern: "file?.txt", path: "file12.txt", matches: false),
        Case(pattern: "a?b", path: "a/b", matches: false),
        Case(pattern: "key[0-9].pem", path: "deploy/key7.pem", matches: true),
        Case(pattern: "key[0-9].pem", path: "key.pem", matches: false),
        Case(pattern: "key[!0-9].pem", path: "keyx.pem", matches: true),
        Case(pattern: "key[^0-9].pem", path: "key7.pem", matches: false),
        Case(pattern: "[abc].txt", path: "b.txt", matches: true),
        Case(pattern: "[abc].txt", path: "d.txt", matches: false),
        Case(pattern: "[]x].txt", path: "].txt", matches: true),
        Case(pattern: "[a-].txt", path: "-.txt", matches: true),
        Case(pattern: "lit\\*.txt", path: "lit*.txt", matches: true),
        Case(pattern: "lit\\*.txt", path: "litx.txt", matches: false),
        Case(pattern: "\\[x].txt", path: "[x].txt", matches: true),
        Case(pattern: "Makefile", path: "sub/Makefile", matches: true),
        Case(pattern: "Makefile", path: "sub/makefile", matches: false),  // Case-sensitive.
        Case(pattern: "*", path: "a/b/c", matches: true),
        Case(pattern: "é/*", path: "é/ü", matches: true),
    ]

    @Test(arguments: cases)
    func matching(example: Case) throws {
        #expect(try PathGlob(example.pattern).matches(example.path) == example.matches)
    }

    static let invalid: [(String, String)] = [
        ("", "a glob must not be empty"),
        (String(repeating: "a", count: 257), "the glob `\(String(repeating: "a", count: 257))` is over 256 bytes"),
        ("a\0b", "the glob `a\\0b` contains a NUL or a line break"),
        ("a\nb", "the glob `a\\nb` contains a NUL or a line break"),
        ("/etc/passwd", "the glob `/etc/passwd` is an absolute path; write it relative to the repository root"),
        ("a/../b", "the glob `a/../b` has a `..` segment"),
        ("..", "the glob `..` has a `..` segment"),
        ("./a", "the glob `./a` has a `.` segment"),
        ("a//b", "the glob `a//b` has an empty segment (`//`)"),
        ("a\\", "the glob `a\\` ends with a `\\` that escapes nothing"),
        ("a\\/b", "the glob `a\\/b` escapes a `/`; a name cannot contain `/`"),
        ("key[0-9.pem", "the glob `key[0-9.pem` has a `[` class without its closing `]` (write `\\[` for a literal `[`)"),
        ("a[b/c]", "the glob `a[b/c]` has a `[` class without its closing `]` (write `\\[` for a literal `[`)"),
        ("[z-a]", "the glob `[z-a]` has a reversed range `z-a` in a `[` class"),
    ]

    @Test(arguments: invalid)
    func invalidGlobsAreRefused(pattern: String, problem: String) {
        #expect(throws: RepositoryConfigurationError(line: nil, problem: problem)) { try PathGlob(pattern) }
    }

    @Test func globAtTheByteLimitIsAccepted() throws {
        #expect(try PathGlob(String(repeating: "a", count: 256)).matches(String(repeating: "a", count: 256)))
    }

    @Test func manyGlobstarsTakeBoundedSteps() throws {
        // 80 `**` segments and a last segment that never matches: naive backtracking tries every way to split the
        // 400 segments among them. Consecutive `**` collapse, and the walk is over (pattern segment, path segment).
        let pattern = Array(repeating: "**", count: 80).joined(separator: "/") + "/a"
        #expect(pattern.utf8.count <= PathGlob.maxBytes)
        let glob = try PathGlob(pattern)
        let path = Array(repeating: "b", count: 400).joined(separator: "/")
        var steps = 0
        #expect(!glob.matches(path, steps: &steps))
        #expect(steps < 2_000)
    }

    @Test func alternatingGlobstarsTakeBoundedSteps() throws {
        // `**/x*/**/x*/…/y`: each `**` could start anywhere; the walk keeps one set of reachable positions.
        let pattern = Array(repeating: "**/x*", count: 40).joined(separator: "/") + "/y"
        #expect(pattern.utf8.count <= PathGlob.maxBytes)
        let glob = try PathGlob(pattern)
        let path = Array(repeating: "xx", count: 300).joined(separator: "/")
        var steps = 0
        #expect(!glob.matches(path, steps: &steps))
        // At most (segments + 1) steps per `**` plus (segments × segment length) per other segment.
        #expect(steps < 41 * 301 + 41 * 300 * 4)
        #expect(steps > 1_000)  // The bound is not vacuous: the work was counted.
    }

    @Test func manyStarsInOneSegmentTakeBoundedSteps() throws {
        let glob = try PathGlob(Array(repeating: "*a", count: 60).joined() + "*b")
        let path = String(repeating: "a", count: 200)
        var steps = 0
        #expect(!glob.matches(path, steps: &steps))
        #expect(steps <= 122 * 201)  // pattern tokens × characters, not the binomial number of ways to place the stars
    }
}
