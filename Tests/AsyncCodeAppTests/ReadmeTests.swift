import AsyncCodeApp
import Executor
import Foundation
import RepositoryConfiguration
import Testing
import TestSupport

/// The README cannot rot: its commands parse, its settings table names every setting the code reads,
/// and its YAML (and the agent recipes file) load.
@Suite(.timeLimit(.minutes(10))) struct ReadmeTests {
    static let root = TestEnvironment.packageRoot
    static let readme = (try? String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)) ?? ""
    static let binary = root.appendingPathComponent(".build/debug/asynccode").path

    /// Returns the lines of the README's fenced blocks tagged `tag`, without the `# on your server (example)` ones.
    static func blocks(_ tag: String) -> [[String]] {
        var blocks: [[String]] = []
        var current: [String]?
        for line in readme.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if current == nil, trimmed == "```" + tag {
                current = []
            } else if current != nil, trimmed == "```" {
                blocks.append(current!)
                current = nil
            } else if current != nil {
                current!.append(line)
            }
        }
        return blocks
    }

    @Test func everyShellCommandRuns() async throws {
        let commands = Self.blocks("sh").filter { !($0.first ?? "").hasPrefix("# on your server (example)") }
            .flatMap { $0 }.map { String($0.trimmingCharacters(in: .whitespaces).prefix { $0 != "#" }).trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        #expect(commands.contains("scripts/run"))
        #expect(commands.contains("scripts/test"))
        #expect(commands.contains("scripts/run demo"))
        let runScript = try String(contentsOf: Self.root.appendingPathComponent("scripts/run"), encoding: .utf8)
        for command in commands {
            let words = command.split(separator: " ").map(String.init)
            switch words.first {
            case "scripts/run", "scripts/test":
                #expect(FileManager.default.isExecutableFile(atPath: Self.root.appendingPathComponent(words[0]).path), "\(command)")
                if words[0] == "scripts/run", words.count > 1 { #expect(runScript.contains("|\(words[1])|") || runScript.contains("\(words[1])|"), "\(command)") }
            case "asynccode":
                // The subcommand exists and knows every flag the README gives it; paths it names exist.
                // `asynccode credits grant …`: the nested subcommand's help when there is one.
                var help = try await TestSupport.run([Self.binary, words[1], "--help"], currentDirectory: Self.root.path)
                if words.count > 2, !words[2].hasPrefix("-"), help.output.contains("\n  \(words[2]) ") {
                    help = try await TestSupport.run([Self.binary, words[1], words[2], "--help"], currentDirectory: Self.root.path)
                }
                #expect(help.status == 0, "\(command): \(help.output)")
                for flag in words.dropFirst(2) where flag.hasPrefix("--") {
                    #expect(help.output.contains(flag), "\(command): \(flag) is not in its --help")
                }
                for path in words.dropFirst(2) where path.contains("/") {
                    #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(path).path), "\(command): \(path)")
                }
            default:
                Issue.record("README command \(command) is neither scripts/… nor asynccode …")
            }
        }
    }

    @Test func everySettingTheCodeReadsIsDocumented() throws {
        let source = try ["Configuration.swift", "KubernetesSettings.swift"].map {
            try String(contentsOf: Self.root.appendingPathComponent("Sources/AsyncCodeApp/\($0)"), encoding: .utf8)
        }.joined(separator: "\n")
        let pattern = try NSRegularExpression(pattern: #"(?:value|number|httpURL)\("([A-Z][A-Z0-9_]+)"|values\["([A-Z][A-Z0-9_]+)"\]"#)
        var names = Set<String>()
        for match in pattern.matches(in: source, range: NSRange(source.startIndex..., in: source)) {
            for group in 1...2 {
                if let range = Range(match.range(at: group), in: source) { names.insert(String(source[range])) }
            }
        }
        #expect(names.count >= 20, "found only \(names.sorted())")
        for name in names.sorted() {
            #expect(Self.readme.contains("`\(name)`"), "\(name) is read by the code but not in the README's settings table")
        }
    }

    @Test func theRepositorySettingsExampleLoads() throws {
        let yaml = try #require(Self.blocks("yaml").first { $0.contains { $0.hasPrefix("protectedPaths:") } })
        let settings = try RepositoryConfiguration.parse(yaml.joined(separator: "\n"))
        #expect(settings.label == "ai-fix" && settings.draft && settings.branchPrefix == "bot/")
        #expect(settings.reviewers == ["alice", "bob"])
        #expect(settings.protectedChanges(in: [".github/workflows/ci.yml", "keys/server.pem", "deploy/run.sh", "src/a.swift"])
            == [".github/workflows/ci.yml", "deploy/run.sh", "keys/server.pem"])
    }

    @Test func theYAMLLoads() throws {
        let yaml = try #require(Self.blocks("yaml").first)
        let catalog = try AgentCatalog.parse(yaml: yaml.joined(separator: "\n"))
        #expect(catalog.names.count >= 4)
        let example = try AgentCatalog.load(path: Self.root.appendingPathComponent("agents/asynccode.yml.example").path)
        for agent in ["claude", "codex", "gemini", "aider"] {
            #expect(example.names.contains { $0.hasPrefix(agent) }, "no \(agent) recipe in agents/asynccode.yml.example")
        }
    }

    /// Each section appears once and each fenced block is closed: an edit that pasted a region twice (it happened)
    /// shows up here rather than on GitHub.
    @Test func eachSectionAppearsOnce() {
        let lines = Self.readme.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var inFence = false
        var headings: [String: Int] = [:]
        for line in lines {
            if line.trimmingCharacters(in: .whitespaces).hasPrefix("```") { inFence.toggle(); continue }
            if !inFence, line.hasPrefix("## ") { headings[line, default: 0] += 1 }
        }
        #expect(!inFence, "a fenced block is never closed")
        #expect(headings.count > 10)
        for (heading, count) in headings where count > 1 { Issue.record("\(heading) appears \(count) times") }
        let paragraphs = Self.readme.components(separatedBy: "\n\n").filter { $0.count > 200 }
        #expect(Set(paragraphs).count == paragraphs.count, "a paragraph appears twice")
    }
}
