import Accounting
import Database
import Foundation
import Logging
import PostgresNIO

/// `asynccode credits show|grant|history`: an operator's view of the ledger.
public struct CreditsAdmin: Sendable {
    /// A refusal to print as one line (unknown account, bad amount).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    let configuration: AppConfiguration
    let logger: Logger

    public init(configuration: AppConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Returns the account's balance, reservations and use as lines of text.
    public func show(account reference: String) async throws -> String {
        try await withLedger { ledger in
            let account = try await Self.find(reference, in: ledger)
            return """
                account: \(account.login) (\(account.type), GitHub id \(account.githubID))
                balance: \(CreditFormat.string(account.credits)) credits
                reserved by running tasks: \(CreditFormat.string(account.reserved)) credits
                used in all: \(CreditFormat.string(account.totalUsed)) credits
                """
        }
    }

    /// Grants `amount` credits (negative to take some back) with `reason`; returns a line with the new balance.
    public func grant(account reference: String, amount text: String, reason: String) async throws -> String {
        guard let amount = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")), amount.isFinite, amount != 0,
              abs(amount) < 1_000_000_000, Pricing.rounded(amount) == amount else {
            throw Failure(description: "the amount must be a non-zero number of credits with at most 4 decimals, like 50 or -12.5")
        }
        let trimmed = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 500 else {
            throw Failure(description: "--reason must say why, in at most 500 bytes")
        }
        return try await withLedger { ledger in
            let account = try await Self.find(reference, in: ledger)
            let balance = try await ledger.grant(accountID: account.accountID, amount: amount, reason: trimmed)
            let verb = amount > 0 ? "granted" : "took back"
            return "\(verb) \(CreditFormat.string(abs(amount))) credits \(amount > 0 ? "to" : "from") \(account.login); balance: \(CreditFormat.string(balance)) credits"
        }
    }

    /// Returns the account's ledger, newest first, as a table.
    public func history(account reference: String, limit: Int) async throws -> String {
        try await withLedger { ledger in
            let account = try await Self.find(reference, in: ledger)
            let entries = try await ledger.history(accountID: account.accountID, limit: max(1, min(limit, 10_000)))
            let formatter = ISO8601DateFormatter()
            var lines = ["ledger of \(account.login), newest first (balance \(CreditFormat.string(account.credits)) credits)",
                         "when                  type     amount       task    description"]
            for entry in entries {
                let amount = (entry.amount > 0 ? "+" : "") + CreditFormat.string(entry.amount)
                lines.append(formatter.string(from: entry.createdAt).padding(toLength: 22, withPad: " ", startingAt: 0)
                    + entry.type.padding(toLength: 9, withPad: " ", startingAt: 0)
                    + amount.padding(toLength: 13, withPad: " ", startingAt: 0)
                    + (entry.taskID.map(String.init) ?? "-").padding(toLength: 8, withPad: " ", startingAt: 0)
                    + entry.description.replacingOccurrences(of: "\n", with: " "))
            }
            if entries.isEmpty { lines.append("(no entries)") }
            return lines.joined(separator: "\n")
        }
    }

    private static func find(_ reference: String, in ledger: CreditLedger) async throws -> AccountBalance {
        guard let account = try await ledger.account(reference) else {
            throw Failure(description: "no account \(reference.prefix(100)) (give a GitHub login or numeric id of an account that installed the App or asked for work)")
        }
        return account
    }

    private func withLedger<T: Sendable>(_ body: @escaping @Sendable (CreditLedger) async throws -> T) async throws -> T {
        try await withCommandDatabase(configuration, logger: logger) { client, quiet in
            try await body(CreditLedger(client: client, logger: quiet))
        }
    }
}

/// Runs an operator command's `body` with a client of `configuration`'s database (checked first) and a logger
/// that says only errors: the command prints its answer or one line of error, and the driver's own notices (such as
/// a lease asked for a moment before the pool runs) are not for the operator.
func withCommandDatabase<T: Sendable>(
    _ configuration: AppConfiguration, logger: Logger, _ body: @escaping @Sendable (PostgresClient, Logger) async throws -> T
) async throws -> T {
    try await DatabaseProbe.check(configuration.databaseURL, logger: logger)
    var quiet = logger
    quiet.logLevel = .error
    let client = PostgresClient(configuration: configuration.databaseURL.clientConfiguration(), backgroundLogger: quiet)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        defer { group.cancelAll() }
        return try await body(client, quiet)
    }
}
