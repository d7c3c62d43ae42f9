import Accounting
import Commands
import Executor
import Foundation
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(10))) struct UsageLineTests {
    @Test func parsesOnlyWellFormedUsageLines() {
        #expect(UsageLine.parse(#"{"asynccode_usage": {"input_tokens": 12, "output_tokens": 30}}"#) == TokenUsage(inputTokens: 12, outputTokens: 30))
        #expect(UsageLine.parse(#"  {"asynccode_usage":{"output_tokens":5}}  "#) == TokenUsage(inputTokens: 0, outputTokens: 5))
        #expect(UsageLine.parse(#"{"asynccode_usage": {"input_tokens": -1}}"#) == nil)
        #expect(UsageLine.parse(#"{"asynccode_usage": "lots"}"#) == nil)
        #expect(UsageLine.parse(#"I printed {"asynccode_usage": {"input_tokens": 1}}"#) == nil)
        #expect(UsageLine.parse("asynccode_usage") == nil)
        #expect(UsageLine.parse("{\"asynccode_usage\": {\"input_tokens\": 1}, \"pad\": \"" + String(repeating: "x", count: 5000) + "\"}") == nil)
    }

    @Test func stripsUsageLinesFromWhatUsersSee() {
        let output = "Changed two files.\n{\"asynccode_usage\": {\"input_tokens\": 1, \"output_tokens\": 2}}\nDone.\n"
        #expect(UsageLine.strip(output) == "Changed two files.\nDone.\n")
        #expect(UsageLine.strip("no usage here") == "no usage here")
    }

    @Test func theRunnerStopsAnAgentWhoseReportedUsagePassesTheLimit() async throws {
        let (folder, script) = try agentScript("""
            cat > /dev/null
            i=0
            while [ $i -lt 1000 ]; do
              i=$((i + 1))
              printf '{"asynccode_usage": {"input_tokens": %d, "output_tokens": 0}}\\n' $((i * 100))
              sleep 0.05
            done
            """)
        let agent = AgentCommand(name: "t", command: [script], timeout: .seconds(120))
        let result = try await AgentRunner(killGrace: .seconds(1)).run(
            agent, prompt: "go", workingDirectory: folder,
            environment: AgentRunner.environment(for: agent, home: folder, task: [:]), tokenLimit: 1000)
        #expect(result.ending == .overBudget)
        let usage = try #require(result.usage)
        // Past the limit, and stopped long before the script's own end (100,000 tokens).
        #expect(usage.total > 1000 && usage.total < 100_000)
    }

    @Test func theRunnerKeepsTheLastUsageOfAnAgentThatFinishes() async throws {
        let (folder, script) = try agentScript("""
            cat > /dev/null
            echo "working"
            printf '{"asynccode_usage": {"input_tokens": 10, "output_tokens": 1}}\\n'
            printf '{"asynccode_usage": {"input_tokens": 20, "output_tokens": 2}}'
            """)
        let agent = AgentCommand(name: "t", command: [script])
        let result = try await AgentRunner().run(
            agent, prompt: "go", workingDirectory: folder, environment: AgentRunner.environment(for: agent, home: folder, task: [:]),
            tokenLimit: 1_000_000)
        #expect(result.ending == .exited(0))
        #expect(result.usage == TokenUsage(inputTokens: 20, outputTokens: 2))
    }

    @Test func aMinutePricedBudgetBecomesATimeLimit() async throws {
        let (folder, script) = try agentScript("cat > /dev/null\nsleep 30")
        let agent = AgentCommand(name: "t", command: [script], timeout: .seconds(120))
        let started = ContinuousClock.now
        let result = try await AgentRunner(killGrace: .seconds(1)).run(
            agent, prompt: "go", workingDirectory: folder, environment: AgentRunner.environment(for: agent, home: folder, task: [:]),
            timeLimit: .milliseconds(300))
        #expect(result.ending == .overBudget)
        #expect(ContinuousClock.now - started < .seconds(20))
    }
}

@Suite(.timeLimit(.minutes(10))) struct UsageWrapperTests {
    static let wrappers = TestEnvironment.packageRoot.appendingPathComponent("agents/usage").path

    @Test func claudeWrapperMapsClaudeCodesJSONOutput() async throws {
        let (folder, fake) = try agentScript(#"""
            cat > /dev/null
            echo '{"type":"result","subtype":"success","is_error":false,"result":"Fixed the README.","usage":{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":3,"output_tokens":7}}'
            """#)
        let result = try await TestSupport.run(
            ["\(Self.wrappers)/claude-usage.py", "--permission-mode", "acceptEdits"], currentDirectory: folder,
            environment: ["ASYNCCODE_CLAUDE": fake, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"])
        #expect(result.status == 0)
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.first == "Fixed the README.")
        #expect(lines.last.flatMap { UsageLine.parse($0) } == TokenUsage(inputTokens: 18, outputTokens: 7))
        #expect(UsageLine.strip(result.output).trimmingCharacters(in: .whitespacesAndNewlines) == "Fixed the README.")
    }

    @Test func codexWrapperReportsUsageAfterEveryTurn() async throws {
        let (folder, fake) = try agentScript(#"""
            cat > /dev/null
            echo '{"type":"thread.started","thread_id":"t"}'
            echo '{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":0,"output_tokens":20}}'
            echo '{"type":"item.completed","item":{"id":"i","type":"agent_message","text":"Renamed the function."}}'
            echo '{"type":"turn.completed","usage":{"input_tokens":50,"cached_input_tokens":0,"output_tokens":5}}'
            """#)
        let result = try await TestSupport.run(
            ["\(Self.wrappers)/codex-usage.py", "--full-auto"], currentDirectory: folder,
            environment: ["ASYNCCODE_CODEX": fake, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"])
        #expect(result.status == 0)
        let usages = result.output.split(separator: "\n").compactMap { UsageLine.parse($0) }
        #expect(usages.first == TokenUsage(inputTokens: 100, outputTokens: 20))
        #expect(usages.last == TokenUsage(inputTokens: 150, outputTokens: 25))
        #expect(UsageLine.strip(result.output).contains("Renamed the function."))
    }
}

@Suite(.timeLimit(.minutes(10))) struct PricingConfigurationTests {
    @Test func catalogReadsPricesAndLimits() throws {
        let catalog = try AgentCatalog.parse(yaml: """
            defaultAgent: claude
            limits: {tasksPerRequesterPerHour: 5, runningTasksPerRepository: 0, creditsPerAccountPerDay: 250.5}
            agents:
              claude:
                command: [claude]
                displayName: Claude Code
                provider: anthropic
                description: Anthropic's coding agent
                costPerToken: 0.00002
                maxTokens: 2000000
              aider:
                command: [aider]
                costPerMinute: 1.5
            """)
        let claude = try #require(catalog.agent(named: "claude"))
        #expect(claude.displayName == "Claude Code" && claude.provider == "anthropic")
        #expect(claude.pricing == Pricing(costPerToken: Decimal(string: "0.00002")!, maxTokens: 2_000_000))
        #expect(catalog.agent(named: "aider")?.pricing.costPerMinute == Decimal(string: "1.5")!)
        #expect(catalog.limits == UsageLimits(tasksPerRequesterPerHour: 5, runningTasksPerRepository: nil, creditsPerAccountPerDay: Decimal(string: "250.5")!))
        #expect(catalog.models.map(\.name) == ["aider", "claude"])
        let list = catalog.modelList()
        #expect(list.contains("- `claude` (Claude Code), the default: Anthropic's coding agent · 0.00002 credits per token"))
        #expect(list.contains("- `aider` · 1.5 credits per minute"))
        let help = CommandGrammar.helpText(models: list)
        #expect(help.contains("Agents (`--agent NAME`):\n- `aider`"))
        #expect(help.contains("`--budget CREDITS`"))
        // Defaults when `limits` is absent.
        #expect(try AgentCatalog.parse(yaml: "agents: {a: {command: [a]}}").limits == UsageLimits())
    }

    @Test func catalogRefusesBadPricesAndLimits() {
        for (yaml, problem) in [
            ("agents: {a: {command: [a], costPerToken: -1}}", "agents.a.costPerToken must be a number of credits from 0 to 99"),
            ("agents: {a: {command: [a], maxTokens: 0}}", "agents.a.maxTokens must be positive"),
            ("agents: {a: {command: [a], costPerToken: 0.001}}", "agents.a.costPerToken needs maxTokens"),
            ("agents: {a: {command: [a], displayName: \"\"}}", "agents.a.displayName must be one line of 1 to 100 characters"),
            ("limits: {tasksPerHour: 3}\nagents: {a: {command: [a]}}", "limits.tasksPerHour is not a setting"),
            ("limits: {runningTasksPerRepository: -2}\nagents: {a: {command: [a]}}", "limits.runningTasksPerRepository must be 0 (no limit) or more"),
        ] {
            #expect(throws: AgentCatalogError.self) { try AgentCatalog.parse(yaml: yaml) }
            do {
                _ = try AgentCatalog.parse(yaml: yaml)
            } catch {
                #expect(String(describing: error).hasPrefix(problem), "\(yaml): \(error)")
            }
        }
    }

    @Test func budgetOption() {
        let parser = CommandParser()
        #expect(parser.parse("/asynccode --budget 25 fix it").commands == [.task(TaskCommand(kind: .code, budget: "25", text: "fix it"))])
        #expect(parser.parse("/asynccode ask --budget=2.5 why").commands == [.task(TaskCommand(kind: .ask, budget: "2.5", text: "why"))])
        for bad in ["0", "0.0", "-3", "1e9", "1.23456", "1234567890", "x", ".5", "5."] {
            #expect(parser.parse("/asynccode --budget \(bad) fix").commands
                == [.invalid(problem: "`--budget` takes a positive number of credits (like 25 or 2.5, at most 4 decimals)")], "\(bad)")
        }
    }
}
