import Foundation
import GitHubSimulator
import Testing
import TestSupport

/// Credits, usage limits and per-repository settings as a GitHub user meets them: commands through the
/// simulator, the real application and scripted agents, then the ledger, the comments and the pushes.
@Suite(.serialized, .timeLimit(.minutes(10))) struct AccountingEndToEndTests {
    /// The paying account's balance, and whether it equals the sum of its ledger.
    func balance(_ e2e: EndToEnd) async throws -> (balance: Decimal, ledger: Decimal) {
        let balance = try #require(try await e2e.db.scalar("SELECT credits FROM accounts WHERE login = 'acme'", as: Decimal.self))
        let ledger = try #require(try await e2e.db.scalar("""
            SELECT COALESCE(sum(c.amount), 0) FROM credit_transactions c JOIN accounts a ON a.id = c.account_id WHERE a.login = 'acme'
            """, as: Decimal.self))
        return (balance, ledger)
    }

    @Test func meteredTaskIsChargedItsTokensAndTheCommentShowsTheBalance() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent metered fix the readme", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            // 1,500 tokens at 0.001: 1.5 credits of the 20 reserved; the rest refunded.
            let progress = try #require(e2e.botComments(on: issue).first)
            #expect(progress.body.contains("🪙 Credits: 1.5 used · 98.5 left"))
            #expect(progress.history.contains { $0.contains("Reserved 20 credits (80 left)") })
            #expect(!progress.body.contains("asynccode_usage"))
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            #expect(pull.body?.contains("asynccode_usage") == false)
            #expect(pull.body?.contains("Edited the README, counting tokens.") == true)
            let (balance, ledger) = try await balance(e2e)
            #expect(balance == Decimal(string: "98.5")! && ledger == balance)
            let types = try await e2e.string("""
                SELECT string_agg(c.type::text || ':' || c.amount::text, ',' ORDER BY c.id) FROM credit_transactions c
                JOIN accounts a ON a.id = c.account_id WHERE a.login = 'acme'
                """)
            #expect(types == "bonus:100.0000,debit:-20.0000,refund:18.5000")
            #expect(try await e2e.db.scalar("SELECT total_credits_used FROM accounts WHERE login = 'acme'", as: Decimal.self) == Decimal(string: "1.5")!)
            // One analytics row.
            #expect(try await e2e.string("""
                SELECT tokens_used || ',' || files_modified || ',' || lines_of_code_generated || ',' || credits_used || ',' || status || ',' || error_count
                FROM task_analytics WHERE task_id = \(taskID)
                """) == "1500,1,1,1.5000,completed,0")
            #expect(try await e2e.db.scalar("SELECT input_tokens FROM tasks WHERE id = \(taskID)", as: Int64.self) == 1000)
            // What Prometheus sees.
            #expect(e2e.sample(#"asynccode_credits_spent_total{agent="metered"}"#, in: try await e2e.metrics()) == 1.5)
            // The models catalogue was synced at start.
            #expect(try await e2e.string("SELECT display_name FROM ai_models WHERE name = 'metered' AND is_active") == "Metered Model")
            #expect(try await e2e.db.count("ai_models WHERE is_active") == agentScripts.count)
        }
    }

    @Test func fiftyConcurrentTasksOnOneAccountKeepTheLedgerEqualToTheBalance() async throws {
        try await EndToEnd.with(workers: 8) { e2e in
            // 50 tasks of 2 credits each reserve the whole welcome balance at once; each uses 1.5.
            let issues = (1...50).map { e2e.issue("Task \($0)") }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for issue in issues {
                    group.addTask {
                        _ = try await e2e.sim.postUserComment(repositoryID: e2e.repositoryID, issueNumber: issue,
                                                              body: "/asynccode --agent metered --budget 2 fix it", author: "alice")
                    }
                }
                try await group.waitForAll()
            }
            do {
                try await eventually("50 tasks end", timeout: .seconds(240)) {
                    try await e2e.db.count("tasks WHERE status IN ('completed', 'failed', 'cancelled')") == 50
                }
            } catch {
                // Where they stand, for the next time this happens.
                let states = try await e2e.string("""
                    SELECT string_agg(status::text || ' ×' || n || coalesce(' (' || note || ')', ''), '; ') FROM (
                      SELECT status, count(*) AS n, left(max(error), 160) AS note FROM tasks GROUP BY status) s
                    """) ?? ""
                let steps = try await e2e.string("""
                    SELECT string_agg(kind || ' ×' || n, '; ') FROM (SELECT kind, count(*) AS n FROM task_events GROUP BY kind) k
                    """) ?? ""
                Issue.record("tasks: \(states) · events: \(steps)")
                throw error
            }
            #expect(try await e2e.db.count("tasks WHERE status = 'completed'") == 50)
            let (balance, ledger) = try await balance(e2e)
            #expect(balance == 25 && ledger == 25)
            #expect(try await e2e.db.count("credit_transactions c JOIN accounts a ON a.id = c.account_id WHERE a.login = 'acme'") == 101)
            #expect(try await e2e.db.count("task_analytics WHERE credits_used = 1.5") == 50)
            #expect(try await e2e.db.count("tasks WHERE credits_reserved IS NOT NULL") == 0)
        }
    }

    @Test func aTaskTheAccountCannotCoverIsNotStartedAndABudgetMakesItFit() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let refused = try await e2e.comment("/asynccode --agent pricey fix the readme", on: issue)
            try await e2e.waitFor(task: refused, status: "failed")
            let progress = try #require(e2e.botComments(on: issue).first)
            #expect(progress.body.contains("⛔ **Not started**: not enough credits: this task may use up to 200 credits"))
            #expect(progress.body.contains("acme has 100 left"))
            #expect(progress.body.contains("`--budget 100`"))
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).isEmpty)
            #expect(try await balance(e2e).balance == 100)

            let budgeted = try await e2e.comment("/asynccode --agent pricey --budget 30 fix the readme", on: issue)
            try await e2e.waitFor(task: budgeted, status: "completed")
            // One started minute at 10 credits.
            let (balance, ledger) = try await balance(e2e)
            #expect(balance == 90 && ledger == 90)
            #expect(try await e2e.db.scalar("SELECT budget FROM tasks WHERE id = \(budgeted)", as: Decimal.self) == 30)
            #expect(e2e.botComments(on: issue).contains { $0.body.contains("🪙 Credits: 10 used · 90 left") })
        }
    }

    @Test func budgetStopsTheAgentWhenItsReportedUsagePassesIt() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent spender --budget 5 spend it all", on: issue)
            try await e2e.waitFor(task: taskID, status: "failed", timeout: .seconds(60))
            let progress = try #require(e2e.botComments(on: issue).first)
            #expect(progress.body.contains("it passed the task's budget of 5 credits (`--budget`); nothing was pushed"))
            #expect(progress.body.contains("🪙 Credits: 5 used · 95 left"))
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).isEmpty)
            #expect(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: "asynccode/\(issue)-spend-it-all") == nil)
            // The agent's usage lines passed 5,000 tokens and it was stopped long before its 60 s of lines
            // (600,000 tokens); what it printed while it was being stopped still counts.
            let tokens = try #require(try await e2e.db.scalar("SELECT tokens_used FROM task_analytics WHERE task_id = \(taskID)", as: Int64.self))
            #expect(tokens > 5000 && tokens < 200_000)
            let (balance, ledger) = try await balance(e2e)
            #expect(balance == 95 && ledger == 95)
        }
    }

    @Test func ourFailuresGiveTheReservationBack() async throws {
        try await EndToEnd.with { e2e in
            // GitHub refuses to open the pull request on every attempt: the agent's work is not the problem.
            e2e.sim.injectFailure(.status(503), method: "POST", path: "/repos/*/*/pulls", times: 100)
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent metered fix the readme", on: issue)
            try await e2e.waitFor(task: taskID, status: "failed", timeout: .seconds(120))
            #expect(try await e2e.db.scalar("SELECT attempts FROM tasks WHERE id = \(taskID)", as: Int32.self) == 3)
            let (balance, ledger) = try await balance(e2e)
            #expect(balance == 100 && ledger == 100)
            // One reservation for all three attempts, refunded whole.
            #expect(try await e2e.string("""
                SELECT string_agg(type::text || ':' || amount::text, ',' ORDER BY id) FROM credit_transactions WHERE task_id = \(taskID)
                """) == "debit:-20.0000,refund:20.0000")
            #expect(e2e.botComments(on: issue).first?.body.contains("🪙 Credits: 0 used · 100 left") == true)
            #expect(try await e2e.string("SELECT status::text FROM task_analytics WHERE task_id = \(taskID)") == "failed")
        }
    }

    @Test func eachLimitMakesTheTaskWaitAndSaysUntilWhen() async throws {
        try await EndToEnd.with(limitsYAML: "limits: {tasksPerRequesterPerHour: 2, runningTasksPerRepository: 1, creditsPerAccountPerDay: 0}\n") { e2e in
            let first = e2e.issue("One")
            let running = try await e2e.comment("/asynccode --agent sleeper wait", on: first)
            try await e2e.waitFor(task: running, status: "running")
            try await eventually("the sleeper runs") { try await sleeperIsRunning() }
            let second = e2e.issue("Two")
            let waiting = try await e2e.comment("/asynccode --agent metered fix the readme", on: second)
            try await eventually("the second task waits its turn") {
                e2e.botComments(on: second).first?.body.contains("⏸️ **Waiting**: acme/widgets already runs 1 task, the most it may (limit `runningTasksPerRepository: 1`)") == true
            }
            #expect(try await e2e.string("SELECT status::text FROM tasks WHERE id = \(waiting)") == "pending")
            // It holds no credits while it waits: the others of the account may use them.
            #expect(try await e2e.db.count("tasks WHERE id = \(waiting) AND credits_reserved IS NULL") == 1)
            #expect(try await e2e.db.count("credit_transactions WHERE task_id = \(waiting)") == 0)
            #expect(try await balance(e2e).balance == 100)
            try await e2e.comment("/asynccode cancel", on: first)
            try await e2e.waitFor(task: running, status: "cancelled")
            try await e2e.waitFor(task: waiting, status: "completed", timeout: .seconds(150))
            #expect(try await e2e.db.scalar("SELECT attempts FROM tasks WHERE id = \(waiting)", as: Int32.self) == 1)

            // alice started two tasks this hour: the third waits until the hour frees a place, and says so.
            let third = e2e.issue("Three")
            let held = try await e2e.comment("/asynccode --agent metered fix the readme again", on: third)
            try await eventually("the third task waits for the hourly limit") {
                e2e.botComments(on: third).first?.body.contains("⏸️ **Waiting until ") == true
            }
            let reply = try #require(e2e.botComments(on: third).first?.body)
            #expect(reply.contains("UTC (in 60 min)**: 2 tasks an hour for @alice (limit `tasksPerRequesterPerHour: 2`). It starts by itself then; `/asynccode cancel` stops it.")
                || reply.contains("UTC (in 59 min)**: 2 tasks an hour for @alice (limit `tasksPerRequesterPerHour: 2`). It starts by itself then; `/asynccode cancel` stops it."),
                "\(reply)")
            #expect(try await e2e.string("SELECT status::text FROM tasks WHERE id = \(held)") == "pending")
            #expect(try await e2e.db.count("tasks WHERE id = \(held) AND credits_reserved IS NULL AND run_after > now() + interval '55 minutes'") == 1)
            // `cancel` ends a waiting task.
            try await e2e.comment("/asynccode cancel", on: third)
            try await e2e.waitFor(task: held, status: "cancelled")
            try await eventually("the waiting task's comment says it was cancelled") {
                e2e.botComments(on: third).first?.body.contains("🚫 **Cancelled**: @alice cancelled it before it started") == true
            }
            #expect(try await e2e.db.count("credit_transactions WHERE task_id = \(held)") == 0)
        }
    }

    @Test func aTaskOverTheHourlyLimitWaitsAndStartsByItselfOnceItFrees() async throws {
        try await EndToEnd.with(limitsYAML: "limits: {tasksPerRequesterPerHour: 2, runningTasksPerRepository: 0, creditsPerAccountPerDay: 0}\n") { e2e in
            for title in ["One", "Two"] {
                let done = try await e2e.comment("/asynccode --agent metered fix the readme", on: e2e.issue(title))
                try await e2e.waitFor(task: done, status: "completed")
            }
            // An hour all but 55 seconds has passed since they were admitted: the hour frees a place in 55 s
            // (time enough for a loaded machine to claim the next task before, and the comment says "in 1 min").
            try await e2e.db.client.query("UPDATE tasks SET admitted_at = now() - interval '3545 seconds'", logger: e2e.db.logger)
            let issue = e2e.issue("Three")
            let waiting = try await e2e.comment("/asynccode --agent metered fix the readme again", on: issue)
            try await eventually("the task waits for the hourly limit") {
                e2e.botComments(on: issue).first?.body.contains("⏸️ **Waiting until ") == true
            }
            let reply = try #require(e2e.botComments(on: issue).first?.body)
            #expect(reply.contains("UTC (in 1 min)**: 2 tasks an hour for @alice (limit `tasksPerRequesterPerHour: 2`)"), "\(reply)")
            #expect(try await e2e.string("SELECT status::text FROM tasks WHERE id = \(waiting)") == "pending")
            #expect(try await e2e.db.count("tasks WHERE id = \(waiting) AND credits_reserved IS NULL") == 1)
            #expect(try await e2e.db.count("credit_transactions WHERE task_id = \(waiting)") == 0)
            #expect(try await balance(e2e).balance == 97)

            // Nobody asks again: it starts by itself, its attempt not consumed by the wait.
            try await e2e.waitFor(task: waiting, status: "completed", timeout: .seconds(150))
            #expect(try await e2e.db.scalar("SELECT attempts FROM tasks WHERE id = \(waiting)", as: Int32.self) == 1)
            #expect(try await e2e.db.count("task_events WHERE task_id = \(waiting) AND step = 'deferred'") >= 1)
            let progress = try #require(e2e.botComments(on: issue).first)
            #expect(progress.body.contains("✅ **Completed**"))
            #expect(progress.history.contains { $0.contains("⏸️ **Waiting until ") })
            let (balance, ledger) = try await balance(e2e)
            #expect(balance == Decimal(string: "95.5")! && ledger == balance)
        }
    }

    @Test func theDailyCreditLimitMakesTheTaskWaitUnlessItCanNeverFit() async throws {
        try await EndToEnd.with(limitsYAML: "limits: {creditsPerAccountPerDay: 5, tasksPerRequesterPerHour: 0, runningTasksPerRepository: 0}\n") { e2e in
            let issue = e2e.issue()
            // More than the whole day's limit: refused at once, with the budget that fits.
            let taskID = try await e2e.comment("/asynccode --agent metered fix the readme", on: issue)
            try await e2e.waitFor(task: taskID, status: "failed")
            let reply = try #require(e2e.botComments(on: issue).first?.body)
            #expect(reply.contains("⛔ **Not started**: this task may use up to 20 credits, more than acme may spend in a day (limit `creditsPerAccountPerDay: 5`). Ask with `--budget 5` or less."))
            #expect(try await e2e.db.count("task_events WHERE task_id = \(taskID) AND step = 'deferred'") == 0)
            #expect(try await balance(e2e).balance == 100)
            // Within the limit it runs; the next one waits until the day's spending frees up.
            let small = try await e2e.comment("/asynccode --agent metered --budget 4 fix the readme", on: issue)
            try await e2e.waitFor(task: small, status: "completed")
            let second = e2e.issue("Again")
            let over = try await e2e.comment("/asynccode --agent metered --budget 4 fix the readme again", on: second)
            try await eventually("the task waits for the daily limit") {
                e2e.botComments(on: second).first?.body.contains("⏸️ **Waiting until ") == true
            }
            let waiting = try #require(e2e.botComments(on: second).first?.body)
            #expect(waiting.contains("**: 5 credits a day for acme (limit `creditsPerAccountPerDay: 5`); 1.5 used in the last 24 hours and this task may need 4."),
                    "\(waiting)")
            #expect(try await e2e.string("SELECT status::text FROM tasks WHERE id = \(over)") == "pending")
            #expect(try await e2e.db.count("tasks WHERE id = \(over) AND credits_reserved IS NULL AND admitted_at IS NULL") == 1)
            #expect(try await balance(e2e).balance == Decimal(string: "98.5")!)
            try await e2e.comment("/asynccode cancel", on: second)
            try await e2e.waitFor(task: over, status: "cancelled")
        }
    }

    @Test func repositorySettingsApply() async throws {
        let settings = """
            # asynccode settings for acme/widgets
            label: ai-fix
            defaultAgent: promptdump
            allowedAgents: [promptdump, edit]
            branchPrefix: bot/
            draft: true
            reviewers: ["@bob"]
            instructions: Always write British English.
            """
        try await EndToEnd.with(repositoryFiles: [".github/asynccode.yml": settings]) { e2e in
            e2e.sim.setCollaborator("bob", role: "write", onRepositoryID: e2e.repositoryID)
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode colour the readme", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            let pull = try #require(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).first)
            #expect(pull.draft)
            #expect(pull.head == "bot/\(issue)-colour-the-readme")
            #expect(pull.requestedReviewers == ["alice", "bob"])
            let prompt = try #require(try await e2e.file("PROMPT.md", on: pull.head))
            #expect(prompt.contains("----- BEGIN REPOSITORY INSTRUCTIONS -----\nAlways write British English."))
            #expect(e2e.botComments(on: issue).first?.body.contains("agent `promptdump`") == true)
            // A review requesting changes on the bot's `bot/` branch is a follow-up there.
            try await e2e.sim.postReview(repositoryID: e2e.repositoryID, pullNumber: pull.number, state: "changes_requested",
                                         body: "Please say colour, not color.", author: "alice")
            let followUp = try await e2e.latestTask(on: pull.number)
            try await e2e.waitFor(task: followUp, status: "completed")
            #expect(try await e2e.commitCount(on: pull.head) == 3)

            // An agent the repository does not allow.
            let refused = try await e2e.comment("/asynccode --agent noop fix", on: issue)
            try await e2e.waitFor(task: refused, status: "failed")
            let refusal = try await e2e.string("SELECT error FROM tasks WHERE id = \(refused)") ?? ""
            #expect(refusal.contains("agent `noop` is not allowed in this repository"))

            // The bot's default label is not this repository's trigger; `ai-fix` is.
            let labelled = e2e.issue("Label me")
            try await e2e.sim.postLabel(repositoryID: e2e.repositoryID, issueNumber: labelled, label: "asynccode", sender: "alice")
            try await eventually("the label is checked") {
                try await e2e.db.count("control_commands WHERE verb = 'label' AND status = 'done'") == 1
            }
            #expect(try await e2e.db.count("tasks WHERE issue_number = \(labelled)") == 0)
            #expect(e2e.botComments(on: labelled).isEmpty)
            try await e2e.sim.postLabel(repositoryID: e2e.repositoryID, issueNumber: labelled, label: "AI-Fix", sender: "alice")
            let labelTask = try await e2e.latestTask(on: labelled)
            try await e2e.waitFor(task: labelTask, status: "completed")
            #expect(try await e2e.string("SELECT source FROM tasks WHERE id = \(labelTask)") == "label")
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).contains { $0.head.hasPrefix("bot/\(labelled)") })
            // The file was fetched once per commit: later tasks read the cache.
            #expect(e2e.sim.requests.filter { $0.path.contains("/contents/.github/asynccode.yml") }.count == 1)
        }
    }

    @Test func anInvalidFileIsReportedOnceWithItsLineAndTheDefaultsApply() async throws {
        let settings = "draft: true\nreviewers: bob\n"
        try await EndToEnd.with(repositoryFiles: [".github/asynccode.yml": settings]) { e2e in
            let issue = e2e.issue()
            let first = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: first, status: "completed")
            let second = try await e2e.comment("/asynccode fix it again", on: issue)
            try await e2e.waitFor(task: second, status: "completed")
            let warnings = e2e.botComments(on: issue).filter { $0.body.contains("cannot be used") }
            try #require(warnings.count == 1)
            #expect(warnings[0].body.contains("`.github/asynccode.yml`"))
            #expect(warnings[0].body.contains("line 2"))
            // The defaults: not a draft, the default branch prefix.
            let pulls = e2e.sim.pullRequests(repositoryID: e2e.repositoryID)
            #expect(!pulls.isEmpty && pulls.allSatisfy { !$0.draft && $0.head.hasPrefix("asynccode/") })
        }
    }

    @Test func aChangeToAProtectedPathIsRefusedAndNothingIsPushed() async throws {
        try await EndToEnd.with { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent workflow speed up deploys", on: issue)
            try await e2e.waitFor(task: taskID, status: "failed")
            let progress = try #require(e2e.botComments(on: issue).first)
            #expect(progress.body.contains("the agent changed protected paths (`protectedPaths` in `.github/asynccode.yml`): `.github/workflows/deploy.yml`; nothing was pushed"))
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).isEmpty)
            #expect(await e2e.sim.branchHead(repositoryID: e2e.repositoryID, branch: "asynccode/\(issue)-speed-up-deploys") == nil)
            #expect(try await e2e.string("SELECT commit_hash FROM tasks WHERE id = \(taskID)") == nil)
        }
    }
}
