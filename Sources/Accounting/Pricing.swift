import Foundation

/// What an agent costs, in credits: per token when it reports its usage, per minute when it does not.
public struct Pricing: Sendable, Hashable {
    /// Credits per token (input and output alike).
    public var costPerToken: Decimal
    /// Credits per started minute of running, for agents that report no tokens.
    public var costPerMinute: Decimal
    /// The most tokens one run may use; bounds the reservation of a token-priced agent.
    public var maxTokens: Int?

    public init(costPerToken: Decimal = 0, costPerMinute: Decimal = 0, maxTokens: Int? = nil) {
        self.costPerToken = costPerToken
        self.costPerMinute = costPerMinute
        self.maxTokens = maxTokens
    }

    /// Whether running the agent costs anything.
    public var isFree: Bool { costPerToken == 0 && costPerMinute == 0 }

    /// Returns the credits to reserve before a run: the most the run can cost (its timeout in started
    /// minutes at the minute rate, plus `maxTokens` at the token rate), or the task's budget when that is
    /// less. A free agent reserves nothing, whatever the budget.
    public func estimate(timeout: Duration, budget: Decimal?) -> Decimal {
        guard !isFree else { return 0 }
        let minutes = Decimal(Int64((timeout.components.seconds + 59) / 60))
        var ceiling = minutes * costPerMinute
        if let maxTokens { ceiling += Decimal(maxTokens) * costPerToken }
        return Self.rounded(budget.map { min($0, ceiling) } ?? ceiling)
    }

    /// Returns the real cost of a run: its tokens at the token rate when the agent reported usage (and has a
    /// token rate), otherwise its started minutes at the minute rate.
    public func cost(usage: TokenUsage?, duration: Duration) -> Decimal {
        if let usage, costPerToken > 0 || costPerMinute == 0 {
            return Self.rounded(Decimal(usage.total) * costPerToken)
        }
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        let minutes = max(1, (milliseconds + 59_999) / 60_000)
        return Self.rounded(Decimal(minutes) * costPerMinute)
    }

    /// Returns `value` rounded to the ledger's four decimal places.
    public static func rounded(_ value: Decimal) -> Decimal {
        var input = value
        var result = Decimal()
        NSDecimalRound(&result, &input, 4, .plain)
        return result
    }
}

/// The tokens an agent reported using.
public struct TokenUsage: Sendable, Hashable, Codable {
    public var inputTokens: Int64
    public var outputTokens: Int64

    public init(inputTokens: Int64, outputTokens: Int64) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }

    /// Input and output tokens together.
    public var total: Int64 { inputTokens &+ outputTokens }
}

/// Formats credit amounts for people: at most two decimals, no trailing zeros ("12.5", "100", "0.04").
public enum CreditFormat {
    /// Returns `amount` as text.
    public static func string(_ amount: Decimal) -> String {
        var input = amount
        var result = Decimal()
        NSDecimalRound(&result, &input, amount != 0 && abs(amount) < Decimal(string: "0.01")! ? 4 : 2, .plain)
        return plain(result, fractionDigits: 4)
    }

    /// Returns a price as text, to its last significant decimal (up to 8: "0.00002").
    public static func price(_ amount: Decimal) -> String {
        plain(amount, fractionDigits: 8)
    }

    private static func plain(_ amount: Decimal, fractionDigits: Int) -> String {
        let formatter = NumberFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.numberStyle = .decimal
        formatter.usesGroupingSeparator = false
        formatter.minimumFractionDigits = 0
        formatter.maximumFractionDigits = fractionDigits
        return formatter.string(from: amount as NSDecimalNumber) ?? "\(amount)"
    }
}
