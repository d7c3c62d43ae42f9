#if canImport(Glibc)
import Glibc
#endif
import Accounting
import Foundation
import Models

/// How an agent's run ended, for the task: go on, stop for a cancellation, or fail with a reason.
enum AgentVerdict {
    /// It exited 0: the result step goes on.
    case finished
    /// It was stopped because the task was cancelled.
    case cancelled
    /// It failed; `showsTail`: the final comment shows the end of its output.
    case failed(StepFailure, showsTail: Bool)
}

extension RunAgent {
    /// Returns the verdict on a run's ending; every failure is the agent's own doing (its run is paid for).
    static func verdict(_ result: AgentRunResult, agent: AgentCommand, budget: Decimal?) -> AgentVerdict {
        switch result.ending {
        case .exited(0):
            return .finished
        case .cancelled:
            return .cancelled
        case .timedOut:
            let seconds = Int(agent.timeout.components.seconds)
            return .failed(StepFailure(reason: "the agent timed out after \(seconds) s", retryable: false,
                                       state: .timedOut(seconds: seconds), agentsFault: true), showsTail: true)
        case .overBudget:
            return .failed(StepFailure(reason: overBudgetReason(agent: agent, budget: budget, usage: result.usage),
                                       retryable: false, agentsFault: true), showsTail: false)
        case .signalled(let signal):
            return .failed(StepFailure(reason: "agent `\(agent.name)` was killed by signal \(signal)"
                + limitHit(agent.limits, signal: signal, errorOutput: result.errorOutput), retryable: false, agentsFault: true),
                showsTail: true)
        case .exited(let code):
            return .failed(StepFailure(reason: "agent `\(agent.name)` exited with code \(code)"
                + limitHit(agent.limits, signal: code > 128 ? code - 128 : nil, errorOutput: result.errorOutput), retryable: false,
                agentsFault: true), showsTail: true)
        }
    }

    /// Returns the `code` label of `asynccode_agent_exits_total` for an ending.
    static func exitLabel(_ ending: AgentRunResult.Ending) -> String {
        switch ending {
        case .exited(let code): String(code)
        case .signalled(let signal): "signal_\(signal)"
        case .timedOut: "timeout"
        case .cancelled: "cancelled"
        case .overBudget: "over_budget"
        }
    }

    /// Returns the token and time limits a run gets from the agent's `maxTokens` and the task's budget.
    static func usageLimits(agent: AgentCommand, budget: Decimal?) -> (tokens: Int64?, time: Duration?) {
        var tokens = agent.pricing.maxTokens.map(Int64.init)
        var time: Duration?
        if let budget {
            if agent.pricing.costPerToken > 0 {
                let affordable = NSDecimalNumber(decimal: budget / agent.pricing.costPerToken).int64Value
                tokens = min(tokens ?? .max, max(0, affordable))
            } else if agent.pricing.costPerMinute > 0 {
                let minutes = NSDecimalNumber(decimal: budget / agent.pricing.costPerMinute).doubleValue
                time = .milliseconds(Int64(max(0, minutes) * 60_000))
            }
        }
        return (tokens, time)
    }

    static func overBudgetReason(agent: AgentCommand, budget: Decimal?, usage: TokenUsage?) -> String {
        let used = usage.map { " after reporting \($0.total) tokens" } ?? ""
        if let budget {
            return "the agent was stopped\(used): it passed the task's budget of \(CreditFormat.string(budget)) credits (`--budget`); nothing was pushed"
        }
        return "the agent was stopped\(used): it passed its limit of \(agent.pricing.maxTokens ?? 0) tokens (`maxTokens`); nothing was pushed"
    }

    /// Returns the last `lines` lines of `text`, at most `characters` of them.
    static func tail(_ text: String, lines: Int = 60, characters: Int = 6_000) -> String {
        let kept = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
        return kept.count > characters ? String(kept.suffix(characters)) : kept
    }

    /// Returns ", after hitting its … limit (…)" when the run's ending points at a resource limit.
    static func limitHit(_ limits: ResourceLimits, signal: Int32?, errorOutput: String) -> String {
        let text = errorOutput.lowercased()
        if let size = limits.fileSizeBytes, signal == SIGXFSZ || text.contains("file size limit exceeded") {
            return " after hitting its file size limit (\(size >> 20) MB)"
        }
        if let processes = limits.processes,
           text.contains("resource temporarily unavailable") || text.contains("cannot fork") || text.contains("fork: retry") {
            return " after hitting its process limit (\(processes))"
        }
        if let memory = limits.memoryBytes,
           text.contains("cannot allocate memory") || text.contains("out of memory") || signal == SIGSEGV || signal == SIGABRT {
            return " after hitting its memory limit (\(memory >> 20) MB)"
        }
        return ""
    }
}
