@testable import Accounting
@testable import Executor
import Foundation
import Models
@testable import Queue
import Testing

/// The executor's steps (`Sources/Executor/Steps`), each where it only turns data into a decision or a text.
@Suite(.timeLimit(.minutes(10))) struct StepsTests {
    typealias Agent = RunAgent<NoGitHub>

    func result(_ ending: AgentRunResult.Ending, errorOutput: String = "", usage: TokenUsage? = nil) -> AgentRunResult {
        AgentRunResult(ending: ending, output: "", errorOutput: errorOutput, truncated: false, duration: .seconds(1), usage: usage)
    }

    @Test func authorizeRefusesAnyoneWhoCannotWrite() {
        #expect(Authorize<NoGitHub>.refusal(requester: "alice", level: "write") == nil)
        #expect(Authorize<NoGitHub>.refusal(requester: "alice", level: "admin") == nil)
        let refusal = Authorize<NoGitHub>.refusal(requester: "mallory", level: "triage")
        #expect(refusal?.reason == "not permitted: @mallory has triage access")
        #expect(refusal?.retryable == false)
        #expect(refusal?.state == .notPermitted)
    }

    @Test func loadSettingsChoosesAnAllowedAgent() throws {
        let catalog = try AgentCatalog.parse(yaml: """
            defaultAgent: claude
            agents:
              claude: {command: [claude]}
              codex: {command: [codex], displayName: Codex CLI}
            """)
        #expect(try LoadSettings<NoGitHub>.agent(named: nil, in: catalog, allowed: nil).get().name == "claude")
        #expect(try LoadSettings<NoGitHub>.agent(named: "CODEX", in: catalog, allowed: ["codex"]).get().name == "codex")
        #expect(throws: StepFailure.self) { try LoadSettings<NoGitHub>.agent(named: "gpt", in: catalog, allowed: nil).get() }
        if case .failure(let unknown) = LoadSettings<NoGitHub>.agent(named: "gpt", in: catalog, allowed: nil) {
            #expect(unknown.reason == "there is no agent `gpt`; the agents are: `claude`, `codex` (Codex CLI)")
        }
        if case .failure(let refused) = LoadSettings<NoGitHub>.agent(named: "codex", in: catalog, allowed: ["claude"]) {
            #expect(refused.reason == "agent `codex` is not allowed in this repository (`allowedAgents` in `.github/asynccode.yml`: `claude`)")
        } else {
            Issue.record("an agent the repository does not allow ran")
        }
    }

    @Test func admitSaysWhyATaskWaitsOrCannotStart() {
        #expect(Admit.waiting(.admitted, repository: "acme/widgets", requester: "alice") == nil)
        let busy = Admit.waiting(.repositoryBusy(running: 1, limit: 1), repository: "acme/widgets", requester: "alice")
        #expect(busy?.reason == "acme/widgets already runs 1 task, the most it may (limit `runningTasksPerRepository: 1`); "
            + "this one starts when one of them ends.")
        #expect(busy?.until == nil)
        let freesAt = Date(timeIntervalSinceNow: 600)
        let hourly = Admit.waiting(.requesterHourly(limit: 3, freesAt: freesAt), repository: "acme/widgets", requester: "alice")
        #expect(hourly?.reason == "3 tasks an hour for @alice (limit `tasksPerRequesterPerHour: 3`)")
        #expect(hourly?.until == freesAt)
        #expect(Admit.notEnoughCredits(needed: 5, balance: 2, budget: nil, agent: "claude", owner: "acme")
            == "not enough credits: this task may use up to 5 credits (agent `claude`) and acme has 2 left. "
            + "Ask with `--budget 2` or less, or ask an operator to add credits.")
        #expect(Admit.notEnoughCredits(needed: 5, balance: 0, budget: 5, agent: "claude", owner: "acme")
            == "not enough credits: this task may use up to 5 credits (its `--budget`) and acme has 0 left. "
            + "Ask an operator to add credits (`asynccode credits grant`).")
        #expect(Admit.overADay(estimate: 30, daily: 20, owner: "acme").hasSuffix("Ask with `--budget 20` or less."))
        let daily = Admit.dailyLimit(20, used: 15, estimate: 10, owner: "acme", freesAt: freesAt)
        #expect(daily.reason == "20 credits a day for acme (limit `creditsPerAccountPerDay: 20`); 15 used in the last 24 hours "
            + "and this task may need 10")
        #expect(daily.until == freesAt)
    }

    @Test func runAgentClassifiesHowTheAgentEnded() {
        var agent = AgentCommand(name: "a", command: ["a"], timeout: .seconds(90))
        agent.limits = ResourceLimits(memoryBytes: 512 << 20)
        guard case .finished = Agent.verdict(result(.exited(0)), agent: agent, budget: nil) else {
            Issue.record("a clean exit did not go on")
            return
        }
        guard case .cancelled = Agent.verdict(result(.cancelled), agent: agent, budget: nil) else {
            Issue.record("a cancelled run was not a cancellation")
            return
        }
        func failure(_ ending: AgentRunResult.Ending, errorOutput: String = "") -> (StepFailure, Bool)? {
            if case .failed(let failure, let showsTail) = Agent.verdict(result(ending, errorOutput: errorOutput), agent: agent, budget: 2) {
                return (failure, showsTail)
            }
            return nil
        }
        let timedOut = failure(.timedOut)
        #expect(timedOut?.0.reason == "the agent timed out after 90 s")
        #expect(timedOut?.0.state == .timedOut(seconds: 90))
        #expect(timedOut?.1 == true)
        let overBudget = failure(.overBudget)
        #expect(overBudget?.0.reason == "the agent was stopped: it passed the task's budget of 2 credits (`--budget`); nothing was pushed")
        #expect(overBudget?.1 == false)
        #expect(failure(.signalled(9))?.0.reason == "agent `a` was killed by signal 9")
        #expect(failure(.exited(137), errorOutput: "Out of memory")?.0.reason
            == "agent `a` exited with code 137 after hitting its memory limit (512 MB)")
        for ending in [AgentRunResult.Ending.timedOut, .overBudget, .signalled(9), .exited(1)] {
            #expect(failure(ending)?.0.agentsFault == true)
            #expect(failure(ending)?.0.retryable == false)
        }
        #expect(Agent.exitLabel(.exited(3)) == "3")
        #expect(Agent.exitLabel(.signalled(9)) == "signal_9")
        #expect(Agent.exitLabel(.overBudget) == "over_budget")
    }

    @Test func publishWritesTheBodyAndTheReasons() {
        let record = TaskRecord(
            id: 42, kind: .code, status: "running", repositoryID: 1, repositoryGitHubID: 10, ownerLogin: "acme",
            repositoryName: "widgets", installationGitHubID: 5, requesterID: 2, requesterGitHubID: 20, requesterLogin: "alice",
            issueNumber: 7, isPullRequest: false, source: "issue_comment", sourceURL: "https://github.com/acme/widgets/issues/7#c",
            prompt: "fix it", chatMessages: "[]", attempts: 1, maxAttempts: 3, createdAt: Date())
        let files = [ChangedFile(path: "a|b`.md", additions: 3, deletions: 1), ChangedFile(path: "c.swift", additions: 2, deletions: 0)]
        let body = Publish<NoGitHub>.pullRequestBody(summary: "Fixed.", record: record, files: files, agent: "claude")
        #expect(body.hasPrefix("Fixed.\n\nCloses #7\n\n**Changed files** (2, +5 −1)"))
        #expect(body.contains("| `a\\|b'.md` | 3 | 1 |\n| `c.swift` | 2 | 0 |\n"))
        #expect(body.hasSuffix("asynccode task 42 · asked by @alice in https://github.com/acme/widgets/issues/7#c · agent `claude`"))
        #expect(Publish<NoGitHub>.commitMessage(title: "Fix it", record: record)
            == "Fix it\n\nAsked by @alice in #7 (asynccode task 42).\n\nCo-authored-by: alice <20+alice@users.noreply.github.com>\n")
        let many = (1...22).map { "secret/\($0)" }
        #expect(Publish<NoGitHub>.protectedPathsReason(many).hasSuffix("`secret/20` and 2 more; nothing was pushed"))
        #expect(Publish<NoGitHub>.reviewers(requester: "alice", configured: ["Alice", "bob", "ci[bot]"]) == ["alice", "bob"])
        let details = Publish<NoGitHub>.details(pushed: "abc1234", link: "#3", files: files, duration: "5 s", agent: "claude", summary: "")
        #expect(details == "Pushed abc1234 to #3.\n\n| Files changed | Lines | Duration | Agent |\n|---|---|---|---|\n| 2 | +5 −1 | 5 s | `claude` |")
    }

    /// `git diff-tree --raw -z`, as the API commit reads it: added, changed, deleted, a mode change, a link, a
    /// path with a space and a newline.
    @Test func rawDiffIsParsedForTheAPICommit() {
        let z = "\0"
        let text = ":000000 100644 \(String(repeating: "0", count: 40)) \(String(repeating: "a", count: 40)) A" + z + "new file.txt" + z
            + ":100644 100755 \(String(repeating: "b", count: 40)) \(String(repeating: "b", count: 40)) M" + z + "run.sh" + z
            + ":100644 000000 \(String(repeating: "c", count: 40)) \(String(repeating: "0", count: 40)) D" + z + "dir/gone\nline" + z
            + ":000000 120000 \(String(repeating: "0", count: 40)) \(String(repeating: "d", count: 40)) A" + z + "link" + z
        let changes = GitWorkspace.parseRawDiff(text)
        #expect(changes.map(\.path) == ["new file.txt", "run.sh", "dir/gone\nline", "link"])
        #expect(changes.map(\.status) == ["A", "M", "D", "A"])
        #expect(changes[1].oldMode == "100644" && changes[1].newMode == "100755" && changes[1].oldSHA == changes[1].newSHA)
        #expect(changes[3].newMode == "120000")
        #expect(GitWorkspace.parseRawDiff("").isEmpty)
    }

    @Test func settleShowsTheCredits() {
        #expect(Settle<NoGitHub>.creditsLine(Settlement(charged: 1.5, balance: 8)) == "🪙 Credits: 1.5 used · 8 left")
        #expect(Settle<NoGitHub>.when(Date(timeIntervalSinceNow: 600)).hasSuffix("UTC (in 10 min)"))
    }
}
