import Foundation
import Database
import Logging
import PostgresNIO

/// An account's credits as the ledger has them.
public struct AccountBalance: Sendable, Hashable {
    public var accountID: Int64
    public var githubID: Int64
    public var login: String
    public var type: String
    /// The balance: the sum of the account's ledger rows.
    public var credits: Decimal
    /// Debits less refunds, all time.
    public var totalUsed: Decimal
    /// Credits held by reservations of tasks still running.
    public var reserved: Decimal
}

/// A row of `credit_transactions`.
public struct LedgerEntry: Sendable, Hashable {
    public var id: Int64
    public var type: String
    public var amount: Decimal
    public var taskID: Int64?
    public var description: String
    public var createdAt: Date
}

/// What reserving a task's credits came to.
public enum Reservation: Sendable, Hashable {
    /// Reserved now (or kept from an earlier attempt of the same task); the balance left.
    case reserved(amount: Decimal, balance: Decimal)
    /// The account cannot cover it.
    case insufficient(needed: Decimal, balance: Decimal)
    /// The account's daily limit would be passed; enough of the day's spending has left the window for the
    /// amount at `freesAt`.
    case dailyLimit(limit: Decimal, used: Decimal, freesAt: Date)
}

/// What settling a reservation came to: the credits the task used in all and the balance left.
public struct Settlement: Sendable, Hashable {
    public var charged: Decimal
    public var balance: Decimal
}

/// The credits ledger: balances, grants, reservations before a run and their settlement after it.
///
/// Every change is a `credit_transactions` row; a trigger applies it to `accounts.credits`, so the balance
/// always equals the sum of the ledger. Reservations lock the account's row, so concurrent tasks of one
/// account never spend the same credits twice.
public struct CreditLedger: Sendable {
    private let client: BoundedClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = BoundedClient(client)
        self.logger = logger
    }

    // MARK: - Accounts

    /// Returns the account `reference` names: a login (any case) or a numeric GitHub id; `nil` when unknown.
    public func account(_ reference: String) async throws -> AccountBalance? {
        let trimmed = reference.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "@", with: "")
        let githubID = Int64(trimmed) ?? -1
        let rows = try await client.query("""
            SELECT a.id, a.github_id, a.login, a.type, a.credits, a.total_credits_used,
                   COALESCE((SELECT sum(t.credits_reserved) FROM tasks t
                             JOIN installations i ON i.id = t.installation_id
                             WHERE i.account_id = a.id AND t.credits_reserved IS NOT NULL), 0)
            FROM accounts a
            WHERE a.github_id = \(githubID) OR lower(a.login) = lower(\(trimmed))
            ORDER BY (a.github_id = \(githubID)) DESC, a.updated_at DESC LIMIT 1
            """, logger: logger)
        for try await (id, github, login, type, credits, used, reserved)
            in rows.decode((Int64, Int64, String, String, Decimal, Decimal, Decimal).self) {
            return AccountBalance(accountID: id, githubID: github, login: login, type: type, credits: credits,
                                  totalUsed: used, reserved: reserved)
        }
        return nil
    }

    /// Returns the account's balance.
    public func balance(accountID: Int64) async throws -> Decimal {
        let rows = try await client.query("SELECT credits FROM accounts WHERE id = \(accountID)", logger: logger)
        for try await credits in rows.decode(Decimal.self) { return credits }
        return 0
    }

    /// Adds `amount` credits (negative to take some back) with `reason`; returns the new balance.
    public func grant(accountID: Int64, amount: Decimal, reason: String) async throws -> Decimal {
        let rows = try await client.query("""
            WITH row AS (
                INSERT INTO credit_transactions (account_id, type, amount, description, metadata)
                VALUES (\(accountID), 'credit', \(amount), \(reason), '{"source": "admin"}')
                RETURNING account_id
            )
            SELECT 1 FROM row
            """, logger: logger)
        for try await _ in rows {}
        return try await balance(accountID: accountID)
    }

    /// Returns the account's ledger, newest first.
    public func history(accountID: Int64, limit: Int = 50) async throws -> [LedgerEntry] {
        let rows = try await client.query("""
            SELECT id, type::text, amount, task_id, description, created_at FROM credit_transactions
            WHERE account_id = \(accountID) ORDER BY created_at DESC, id DESC LIMIT \(Int64(limit))
            """, logger: logger)
        var entries: [LedgerEntry] = []
        for try await (id, type, amount, taskID, description, createdAt)
            in rows.decode((Int64, String, Decimal, Int64?, String, Date).self) {
            entries.append(LedgerEntry(id: id, type: type, amount: amount, taskID: taskID, description: description,
                                       createdAt: createdAt))
        }
        return entries
    }

    /// Returns the sum of the account's ledger rows (what the balance must equal).
    public func ledgerSum(accountID: Int64) async throws -> Decimal {
        let rows = try await client.query("""
            SELECT COALESCE(sum(amount), 0) FROM credit_transactions WHERE account_id = \(accountID)
            """, logger: logger)
        for try await sum in rows.decode(Decimal.self) { return sum }
        return 0
    }

    /// Returns the account that pays for the task: its installation's account.
    public func payingAccount(taskID: Int64) async throws -> Int64? {
        let rows = try await client.query("""
            SELECT i.account_id FROM tasks t JOIN installations i ON i.id = t.installation_id WHERE t.id = \(taskID)
            """, logger: logger)
        for try await id in rows.decode(Int64?.self) { return id }
        return nil
    }

    // MARK: - Reservations

    /// Reserves `amount` credits of `accountID` for the task, unless the task holds a reservation already
    /// (an earlier attempt that stopped): that one is kept. Refuses when the balance cannot cover it, or when
    /// `dailyLimit` credits were already spent in the last 24 hours.
    public func reserve(taskID: Int64, accountID: Int64, amount: Decimal, dailyLimit: Decimal?) async throws -> Reservation {
        try await client.withTransaction(logger: logger) { connection in
            var balance: Decimal = 0
            let locked = try await connection.query(
                "SELECT credits FROM accounts WHERE id = \(accountID) FOR UPDATE", logger: logger)
            for try await credits in locked.decode(Decimal.self) { balance = credits }
            let held = try await connection.query(
                "SELECT credits_reserved FROM tasks WHERE id = \(taskID) FOR UPDATE", logger: logger)
            for try await reserved in held.decode(Decimal?.self) {
                if let reserved { return .reserved(amount: reserved, balance: balance) }
            }
            if let dailyLimit {
                // The amount fits once enough of the day's debits (less their refunds) have left the window:
                // at the first row, oldest first, after which what stays spent leaves room for it.
                let spentRows = try await connection.query("""
                    WITH day AS (
                        SELECT id, amount, created_at FROM credit_transactions
                        WHERE account_id = \(accountID) AND type IN ('debit', 'refund') AND created_at > now() - interval '24 hours'
                    ), spent AS (SELECT COALESCE(-sum(amount), 0) AS total FROM day)
                    SELECT spent.total, (
                        SELECT created_at FROM (
                            SELECT created_at, id, sum(amount) OVER (ORDER BY created_at, id) AS gone FROM day) leaving
                        WHERE spent.total + leaving.gone + \(amount) <= \(dailyLimit)
                        ORDER BY created_at, id LIMIT 1)
                    FROM spent
                    """, logger: logger)
                for try await (spent, leaving) in spentRows.decode((Decimal, Date?).self) where spent + amount > dailyLimit {
                    return .dailyLimit(limit: dailyLimit, used: max(0, spent),
                                       freesAt: (leaving ?? Date()).addingTimeInterval(86_400))
                }
            }
            guard amount <= balance else { return .insufficient(needed: amount, balance: balance) }
            if amount > 0 {
                try await connection.query("""
                    INSERT INTO credit_transactions (account_id, task_id, type, amount, description, metadata)
                    VALUES (\(accountID), \(taskID), 'debit', \(-amount), \("reserved for task \(taskID)"),
                            '{"reservation": true}')
                    """, logger: logger)
            }
            try await connection.query("""
                UPDATE tasks SET credits_reserved = \(amount), estimated_credits = \(amount) WHERE id = \(taskID)
                """, logger: logger)
            return .reserved(amount: amount, balance: balance - amount)
        }
    }

    /// Settles the task's reservation to `cost`: the unused part is refunded (the charge never passes the
    /// reservation). Returns what the task was charged in all and the balance; `nil` when it held none.
    @discardableResult
    public func settle(taskID: Int64, cost: Decimal) async throws -> Settlement? {
        try await close(taskID: taskID, cost: cost, description: "unused reservation of task \(taskID)")
    }

    /// Releases the task's reservation whole (a failure that was not the agent's, or a cancellation before
    /// the agent started); returns the balance, or `nil` when it held none.
    @discardableResult
    public func release(taskID: Int64, reason: String) async throws -> Settlement? {
        try await close(taskID: taskID, cost: 0, description: "task \(taskID) refunded: \(reason)")
    }

    private func close(taskID: Int64, cost: Decimal, description: String) async throws -> Settlement? {
        try await client.withTransaction(logger: logger) { connection in
            let held = try await connection.query("""
                SELECT t.credits_reserved, t.credits_used, i.account_id FROM tasks t
                JOIN installations i ON i.id = t.installation_id
                WHERE t.id = \(taskID) FOR UPDATE OF t
                """, logger: logger)
            var found: (reserved: Decimal, used: Decimal, account: Int64?)?
            for try await (reserved, used, account) in held.decode((Decimal?, Decimal, Int64?).self) {
                if let reserved { found = (reserved, used, account) }
            }
            guard let found, let accountID = found.account else { return nil }
            let charged = min(max(0, Pricing.rounded(cost)), found.reserved)
            let refund = found.reserved - charged
            if refund > 0 {
                try await connection.query("""
                    INSERT INTO credit_transactions (account_id, task_id, type, amount, description)
                    VALUES (\(accountID), \(taskID), 'refund', \(refund), \(description))
                    """, logger: logger)
            }
            try await connection.query("""
                UPDATE tasks SET credits_reserved = NULL, credits_used = credits_used + \(charged) WHERE id = \(taskID)
                """, logger: logger)
            var balance: Decimal = 0
            let rows = try await connection.query("SELECT credits FROM accounts WHERE id = \(accountID)", logger: logger)
            for try await credits in rows.decode(Decimal.self) { balance = credits }
            return Settlement(charged: found.used + charged, balance: balance)
        }
    }
}
