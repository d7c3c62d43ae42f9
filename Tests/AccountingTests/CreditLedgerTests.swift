import Accounting
import Foundation
import PostgresNIO
import Testing
import TestSupport

/// Makes an account (100 welcome credits) whose installation owns a repository; returns their row ids.
func makeAccount(_ db: TestDatabase, login: String = "acme", githubID: Int64 = 7) async throws -> (account: Int64, installation: Int64, repository: Int64, requester: Int64) {
    let account = try #require(try await db.scalar(
        "INSERT INTO accounts (github_id, login, type) VALUES (\(githubID), '\(login)', 'Organization') RETURNING id", as: Int64.self))
    let requester = try #require(try await db.scalar(
        "INSERT INTO accounts (github_id, login) VALUES (\(githubID + 1000), '\(login)-dev') RETURNING id", as: Int64.self))
    let installation = try #require(try await db.scalar(
        "INSERT INTO installations (github_id, account_id) VALUES (\(githubID), \(account)) RETURNING id", as: Int64.self))
    let repository = try #require(try await db.scalar("""
        INSERT INTO repositories (github_id, installation_id, full_name, name, owner_login)
        VALUES (\(githubID), \(installation), '\(login)/widgets', 'widgets', '\(login)') RETURNING id
        """, as: Int64.self))
    return (account, installation, repository, requester)
}

/// Inserts `count` tasks of the repository; returns their ids.
func makeTasks(_ db: TestDatabase, _ ids: (account: Int64, installation: Int64, repository: Int64, requester: Int64),
               count: Int, status: String = "running") async throws -> [Int64] {
    let rows = try await db.client.query(PostgresQuery(unsafeSQL: """
        INSERT INTO tasks (repository_id, installation_id, requested_by, issue_number, source, comment_id, status, started_at)
        SELECT \(ids.repository), \(ids.installation), \(ids.requester), n, 'issue_comment', n, '\(status)', now()
        FROM generate_series(1, \(count)) n RETURNING id
        """), logger: db.logger)
    var made: [Int64] = []
    for try await id in rows.decode(Int64.self) { made.append(id) }
    return made.sorted()
}

@Suite(.timeLimit(.minutes(10))) struct CreditLedgerTests {
    @Test func newAccountsStartWithAWelcomeBonusInTheLedger() async throws {
        try await TestDatabase.with { db in
            let ids = try await makeAccount(db)
            let ledger = CreditLedger(client: db.client, logger: db.logger)
            #expect(try await ledger.balance(accountID: ids.account) == 100)
            #expect(try await ledger.ledgerSum(accountID: ids.account) == 100)
            let history = try await ledger.history(accountID: ids.account)
            #expect(history.map(\.type) == ["bonus"])
            #expect(history.first?.description == "welcome credits")
        }
    }

    @Test func ledgerEqualsBalanceAfterFiftyConcurrentTasksReserveAndSettle() async throws {
        try await TestDatabase.with { db in
            let ids = try await makeAccount(db)
            let ledger = CreditLedger(client: db.client, logger: db.logger)
            _ = try await ledger.grant(accountID: ids.account, amount: 400, reason: "test budget")
            let tasks = try await makeTasks(db, ids, count: 50)
            // Each reserves 10 (500 in all, the whole balance) and uses 1.25 to 8.75 of it.
            let refused = try await withThrowingTaskGroup(of: Int.self) { group in
                for (index, task) in tasks.enumerated() {
                    group.addTask {
                        let reservation = try await ledger.reserve(taskID: task, accountID: ids.account, amount: 10, dailyLimit: nil)
                        guard case .reserved = reservation else { return 1 }
                        try await Task.sleep(for: .milliseconds(Int.random(in: 0...20)))
                        try await ledger.settle(taskID: task, cost: Decimal(1 + index % 7) * Decimal(string: "1.25")!)
                        return 0
                    }
                }
                return try await group.reduce(0, +)
            }
            let balance = try await ledger.balance(accountID: ids.account)
            #expect(try await ledger.ledgerSum(accountID: ids.account) == balance)
            #expect(balance >= 0)
            let charged = try #require(try await db.scalar("SELECT COALESCE(sum(credits_used), 0) FROM tasks", as: Decimal.self))
            #expect(balance == 500 - charged)
            let used = try #require(try await db.scalar("SELECT total_credits_used FROM accounts WHERE id = \(ids.account)", as: Decimal.self))
            #expect(used == charged)
            #expect(try await db.count("tasks WHERE credits_reserved IS NOT NULL") == 0)
            #expect(refused == 0)
        }
    }

    @Test func concurrentReservationsNeverSpendTheSameCreditsTwice() async throws {
        try await TestDatabase.with { db in
            let ids = try await makeAccount(db)
            let ledger = CreditLedger(client: db.client, logger: db.logger)
            let tasks = try await makeTasks(db, ids, count: 30)
            let results = try await withThrowingTaskGroup(of: Reservation.self) { group in
                for task in tasks {
                    group.addTask { try await ledger.reserve(taskID: task, accountID: ids.account, amount: 7, dailyLimit: nil) }
                }
                return try await group.reduce(into: [Reservation]()) { $0.append($1) }
            }
            let reserved = results.filter { if case .reserved = $0 { true } else { false } }.count
            // 100 credits cover 14 reservations of 7.
            #expect(reserved == 14)
            let balance = try await ledger.balance(accountID: ids.account)
            #expect(balance == 2)
            #expect(try await ledger.ledgerSum(accountID: ids.account) == balance)
            let refusal = results.first { if case .insufficient = $0 { true } else { false } }
            #expect(refusal != nil)
        }
    }

    @Test func aReservationIsKeptAcrossAttemptsAndReleasedWhole() async throws {
        try await TestDatabase.with { db in
            let ids = try await makeAccount(db)
            let ledger = CreditLedger(client: db.client, logger: db.logger)
            let task = try #require(try await makeTasks(db, ids, count: 1).first)
            guard case .reserved(let amount, let balance) = try await ledger.reserve(taskID: task, accountID: ids.account, amount: 30, dailyLimit: nil) else {
                Issue.record("not reserved")
                return
            }
            #expect(amount == 30 && balance == 70)
            // A second attempt of the same task keeps the first reservation.
            guard case .reserved(let again, _) = try await ledger.reserve(taskID: task, accountID: ids.account, amount: 45, dailyLimit: nil) else {
                Issue.record("not reserved")
                return
            }
            #expect(again == 30)
            #expect(try await ledger.balance(accountID: ids.account) == 70)
            let released = try #require(try await ledger.release(taskID: task, reason: "GitHub was down"))
            #expect(released.charged == 0 && released.balance == 100)
            #expect(try await ledger.release(taskID: task, reason: "twice") == nil)
            let history = try await ledger.history(accountID: ids.account)
            #expect(history.map(\.type) == ["refund", "debit", "bonus"])
            #expect(try await ledger.ledgerSum(accountID: ids.account) == 100)
        }
    }

    @Test func settlementNeverChargesMoreThanTheReservation() async throws {
        try await TestDatabase.with { db in
            let ids = try await makeAccount(db)
            let ledger = CreditLedger(client: db.client, logger: db.logger)
            let task = try #require(try await makeTasks(db, ids, count: 1).first)
            _ = try await ledger.reserve(taskID: task, accountID: ids.account, amount: 5, dailyLimit: nil)
            let settlement = try #require(try await ledger.settle(taskID: task, cost: 12))
            #expect(settlement.charged == 5 && settlement.balance == 95)
        }
    }

    @Test func theDailyLimitRefusesAndSaysWhenItFreesUp() async throws {
        try await TestDatabase.with { db in
            let ids = try await makeAccount(db)
            let ledger = CreditLedger(client: db.client, logger: db.logger)
            let tasks = try await makeTasks(db, ids, count: 2)
            _ = try await ledger.reserve(taskID: tasks[0], accountID: ids.account, amount: 20, dailyLimit: 30)
            try await ledger.settle(taskID: tasks[0], cost: 15)
            let result = try await ledger.reserve(taskID: tasks[1], accountID: ids.account, amount: 20, dailyLimit: 30)
            guard case .dailyLimit(let limit, let used, let freesAt) = result else {
                Issue.record("expected the daily limit, got \(result)")
                return
            }
            #expect(limit == 30 && used == 15)
            #expect(freesAt > Date().addingTimeInterval(86_000) && freesAt < Date().addingTimeInterval(86_500))
        }
    }

    @Test func theDailyLimitFreesUpWhenEnoughOfTheDaysSpendingHasLeftIt() async throws {
        try await TestDatabase.with { db in
            let ids = try await makeAccount(db)
            let ledger = CreditLedger(client: db.client, logger: db.logger)
            let task = try #require(try await makeTasks(db, ids, count: 1).first)
            // 10 spent 23 hours ago, 10 spent 22 hours ago (4 of them refunded an hour later), 2 spent now.
            try await db.client.query(PostgresQuery(unsafeSQL: """
                INSERT INTO credit_transactions (account_id, type, amount, created_at) VALUES
                    (\(ids.account), 'debit', -10, now() - interval '23 hours'),
                    (\(ids.account), 'debit', -10, now() - interval '22 hours'),
                    (\(ids.account), 'refund', 4, now() - interval '21 hours'),
                    (\(ids.account), 'debit', -2, now())
                """), logger: db.logger)
            // 18 spent: 9 more fit under 15 once at most 6 stay spent. When the oldest debit leaves (in 1 hour)
            // 8 stay; when the second does too (in 2 hours), none.
            let result = try await ledger.reserve(taskID: task, accountID: ids.account, amount: 9, dailyLimit: 15)
            guard case .dailyLimit(let limit, let used, let freesAt) = result else {
                Issue.record("expected the daily limit, got \(result)")
                return
            }
            #expect(limit == 15 && used == 18)
            #expect(abs(freesAt.timeIntervalSinceNow - 7200) < 120, "frees at \(freesAt)")
            // Nothing was reserved.
            #expect(try await db.count("credit_transactions WHERE task_id = \(task)") == 0)
            #expect(try await db.scalar("SELECT credits_reserved FROM tasks WHERE id = \(task)", as: Decimal?.self) == .some(nil))
        }
    }

    @Test func grantsAndTheLedgerAreAppendOnly() async throws {
        try await TestDatabase.with { db in
            let ids = try await makeAccount(db)
            let ledger = CreditLedger(client: db.client, logger: db.logger)
            #expect(try await ledger.grant(accountID: ids.account, amount: 50, reason: "pilot") == 150)
            #expect(try await ledger.grant(accountID: ids.account, amount: -20, reason: "correction") == 130)
            let account = try #require(try await ledger.account("ACME"))
            #expect(account.credits == 130 && account.githubID == 7)
            #expect(try await ledger.account("7")?.login == "acme")
            #expect(try await ledger.account("nobody") == nil)
            await #expect(throws: (any Error).self) {
                try await db.client.query("UPDATE credit_transactions SET amount = 1000", logger: db.logger)
            }
            await #expect(throws: (any Error).self) {
                try await db.client.query("DELETE FROM credit_transactions", logger: db.logger)
            }
            await #expect(throws: (any Error).self) {
                try await db.client.query(
                    "INSERT INTO credit_transactions (account_id, type, amount) VALUES (\(ids.account), 'debit', 5)", logger: db.logger)
            }
            #expect(try await ledger.ledgerSum(accountID: ids.account) == 130)
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct UsageGateTests {
    @Test func runningTasksPerRepositoryAdmitsOnlyTheLimitAtOnce() async throws {
        try await TestDatabase.with { db in
            let ids = try await makeAccount(db)
            let gate = UsageGate(client: db.client, logger: db.logger)
            let tasks = try await makeTasks(db, ids, count: 8)
            let limits = UsageLimits(tasksPerRequesterPerHour: nil, runningTasksPerRepository: 3, creditsPerAccountPerDay: nil)
            let admissions = try await withThrowingTaskGroup(of: Admission.self) { group in
                for task in tasks {
                    group.addTask { try await gate.admit(taskID: task, requesterID: ids.requester, repositoryID: ids.repository, limits: limits) }
                }
                return try await group.reduce(into: [Admission]()) { $0.append($1) }
            }
            #expect(admissions.filter { $0 == .admitted }.count == 3)
            #expect(admissions.contains(.repositoryBusy(running: 3, limit: 3)))
        }
    }

    @Test func tasksPerRequesterPerHourSaysWhenItFreesUp() async throws {
        try await TestDatabase.with { db in
            let ids = try await makeAccount(db)
            let gate = UsageGate(client: db.client, logger: db.logger)
            let tasks = try await makeTasks(db, ids, count: 3)
            let limits = UsageLimits(tasksPerRequesterPerHour: 2, runningTasksPerRepository: nil, creditsPerAccountPerDay: nil)
            for task in tasks.prefix(2) {
                #expect(try await gate.admit(taskID: task, requesterID: ids.requester, repositoryID: ids.repository, limits: limits) == .admitted)
            }
            // An admitted task's next attempt is not counted twice.
            #expect(try await gate.admit(taskID: tasks[0], requesterID: ids.requester, repositoryID: ids.repository, limits: limits) == .admitted)
            let third = try await gate.admit(taskID: tasks[2], requesterID: ids.requester, repositoryID: ids.repository, limits: limits)
            guard case .requesterHourly(let limit, let freesAt) = third else {
                Issue.record("expected the hourly limit, got \(third)")
                return
            }
            #expect(limit == 2)
            #expect(freesAt > Date().addingTimeInterval(3000) && freesAt < Date().addingTimeInterval(3700))
        }
    }

    @Test func tasksPerRequesterPerHourFreesUpWhenEnoughAdmissionsHaveLeftTheHour() async throws {
        try await TestDatabase.with { db in
            let ids = try await makeAccount(db)
            let gate = UsageGate(client: db.client, logger: db.logger)
            let tasks = try await makeTasks(db, ids, count: 4)
            // Three admitted 50, 40 and 30 minutes ago; the limit is now 2: one more fits once two have left,
            // in 20 minutes (not in 10, when the oldest alone leaves).
            try await db.client.query(PostgresQuery(unsafeSQL: """
                UPDATE tasks SET admitted_at = now() - make_interval(mins => 50 - 10 * (id - \(tasks[0]))::int)
                WHERE id IN (\(tasks[0]), \(tasks[1]), \(tasks[2]))
                """), logger: db.logger)
            let limits = UsageLimits(tasksPerRequesterPerHour: 2, runningTasksPerRepository: nil, creditsPerAccountPerDay: nil)
            let fourth = try await gate.admit(taskID: tasks[3], requesterID: ids.requester, repositoryID: ids.repository, limits: limits)
            guard case .requesterHourly(2, let freesAt) = fourth else {
                Issue.record("expected the hourly limit, got \(fourth)")
                return
            }
            #expect(abs(freesAt.timeIntervalSinceNow - 1200) < 60, "frees at \(freesAt)")
            // A withdrawn admission no longer counts.
            try await gate.withdraw(taskID: tasks[1])
            try await gate.withdraw(taskID: tasks[2])
            #expect(try await gate.admit(taskID: tasks[3], requesterID: ids.requester, repositoryID: ids.repository, limits: limits) == .admitted)
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct ModelCatalogStoreTests {
    @Test func syncKeepsRemovedModelsAsInactive() async throws {
        try await TestDatabase.with { db in
            let store = ModelCatalogStore(client: db.client, logger: db.logger)
            try await store.sync([
                ModelEntry(name: "claude", displayName: "Claude Code", provider: "anthropic", description: "coding agent",
                           pricing: Pricing(costPerToken: Decimal(string: "0.00002")!, maxTokens: 1_000_000)),
                ModelEntry(name: "aider", pricing: Pricing(costPerMinute: 2)),
            ])
            let deactivated = try await store.sync([ModelEntry(name: "claude", displayName: "Claude", provider: "anthropic")])
            #expect(deactivated == ["aider"])
            let models = try await store.models()
            #expect(models.map(\.name) == ["claude", "aider"])
            #expect(models[0].isActive && !models[1].isActive)
            #expect(models[0].displayName == "Claude")
            #expect(models[1].pricing.costPerMinute == 2)
            // Configured again, it comes back.
            #expect(try await store.sync([ModelEntry(name: "aider"), ModelEntry(name: "claude")]).isEmpty)
            #expect(try await db.count("ai_models WHERE is_active") == 2)
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct PricingTests {
    @Test func estimateAndCost() {
        let perMinute = Pricing(costPerMinute: Decimal(string: "0.5")!)
        #expect(perMinute.estimate(timeout: .seconds(1800), budget: nil) == 15)
        #expect(perMinute.estimate(timeout: .seconds(61), budget: nil) == 1)
        #expect(perMinute.estimate(timeout: .seconds(600), budget: 3) == 3)
        // A budget above what the run can cost reserves only that; a free agent reserves nothing.
        #expect(perMinute.estimate(timeout: .seconds(600), budget: 500) == 5)
        #expect(Pricing().estimate(timeout: .seconds(600), budget: 500) == 0)
        #expect(perMinute.cost(usage: nil, duration: .seconds(61)) == 1)
        #expect(perMinute.cost(usage: nil, duration: .milliseconds(10)) == Decimal(string: "0.5")!)
        let perToken = Pricing(costPerToken: Decimal(string: "0.0001")!, costPerMinute: 1, maxTokens: 100_000)
        #expect(perToken.estimate(timeout: .seconds(120), budget: nil) == 12)
        #expect(perToken.cost(usage: TokenUsage(inputTokens: 1000, outputTokens: 234), duration: .seconds(600)) == Decimal(string: "0.1234")!)
        // No usage reported: minutes.
        #expect(perToken.cost(usage: nil, duration: .seconds(150)) == 3)
        #expect(Pricing().isFree && !perToken.isFree)
        #expect(CreditFormat.string(Decimal(string: "97.5")!) == "97.5")
        #expect(CreditFormat.string(100) == "100")
        #expect(CreditFormat.string(Decimal(string: "0.0012")!) == "0.0012")
    }
}
