import Foundation
import Models
import Queue
import Testing
import TestSupport

/// Suspended, uninstalled and removed: the installation events as the delivery writer applies them to the
/// work queued and to new commands (installation 1, repository 2 of `taskRequest`).
@Suite(.timeLimit(.minutes(10))) struct InstallationStateTests {
    let owner = AccountSnapshot(githubID: 70, login: "acme", type: "Organization", avatarURL: nil)
    let repository = RepositorySnapshot(githubID: 2, fullName: "o/r", name: "r", ownerLogin: "o", isPrivate: false,
                                        defaultBranch: "main", cloneURL: "https://example.invalid/o/r.git")

    func change(_ guid: String, _ change: StateChange) -> DeliveryPlan {
        DeliveryPlan(deliveryID: guid, event: "installation", action: "x", installationID: 1, repositoryID: nil,
                     payload: Array("{}".utf8), stateChanges: [change])
    }

    func control(_ guid: String, commentID: Int64) -> DeliveryPlan {
        DeliveryPlan(deliveryID: guid, event: "issue_comment", action: "created", installationID: 1, repositoryID: 2,
                     payload: Array("{}".utf8),
                     controls: [ControlRequest(origin: taskRequest(commentID: commentID).origin, verb: .status, argument: "")])
    }

    func isQueued(_ outcome: DeliveryOutcome) -> Bool {
        if case .queued = outcome { true } else { false }
    }

    @Test func suspensionEndsPendingWorkAndQueuesNothingUntilUnsuspended() async throws {
        try await TestDatabase.with { db throws in
            try await withStore(db) { store throws in
                #expect(try await store.record(change("created", .installationCreated(
                    InstallationSnapshot(githubID: 1, account: owner, repositorySelection: "selected"),
                    repositories: [repository]))) == .recorded)
                #expect(isQueued(try await store.record(plan("t1", tasks: [taskRequest(commentID: 1)]))))
                #expect(isQueued(try await store.record(control("c1", commentID: 2))))
                // The pending task holds the reservation of an earlier attempt.
                let account = try #require(try await db.scalar("SELECT id FROM accounts WHERE github_id = 70", as: Int64.self))
                try await db.client.query("""
                    INSERT INTO credit_transactions (account_id, task_id, type, amount, description)
                    SELECT \(account), id, 'debit', -20, 'reserved' FROM tasks
                    """, logger: db.logger)
                try await db.client.query("UPDATE tasks SET credits_reserved = 20", logger: db.logger)
                #expect(try await db.scalar("SELECT credits FROM accounts WHERE id = \(account)", as: Decimal.self) == 80)

                #expect(try await store.record(change("suspend", .installationSuspended(installationID: 1))) == .recorded)
                #expect(try await db.scalar("SELECT status::text || ': ' || error FROM tasks", as: String.self)
                    == "cancelled: the App's installation is suspended")
                #expect(try await db.count("tasks WHERE credits_reserved IS NOT NULL") == 0)
                #expect(try await db.scalar("SELECT credits FROM accounts WHERE id = \(account)", as: Decimal.self) == 100)
                #expect(try await db.scalar("SELECT status || ': ' || result FROM control_commands", as: String.self)
                    == "failed: the App's installation is suspended")

                // New commands start nothing, and say why to GitHub.
                let ignored = DeliveryOutcome.ignored(reason: "the App's installation is suspended; nothing was started")
                #expect(try await store.record(plan("t2", tasks: [taskRequest(commentID: 3)])) == ignored)
                #expect(try await store.record(control("c2", commentID: 4)) == ignored)
                #expect(try await db.count("tasks") == 1)
                #expect(try await db.count("control_commands") == 1)
                #expect(try await db.scalar("SELECT outcome FROM webhook_deliveries WHERE delivery_guid = 't2'", as: String.self) == "ignored")

                // Unsuspended: the next command is queued.
                #expect(try await store.record(change("unsuspend", .installationUnsuspended(installationID: 1))) == .recorded)
                #expect(isQueued(try await store.record(plan("t3", tasks: [taskRequest(commentID: 5)]))))
                #expect(try await db.count("tasks WHERE status = 'pending'") == 1)
            }
        }
    }

    @Test func aRemovedRepositoryGetsNoWorkUntilItIsAddedAgain() async throws {
        try await TestDatabase.with { db throws in
            try await withStore(db) { store throws in
                let installation = InstallationSnapshot(githubID: 1, account: owner, repositorySelection: "selected")
                #expect(isQueued(try await store.record(plan("t1", tasks: [taskRequest(commentID: 1)]))))
                #expect(try await store.record(change("removed", .repositoriesRemoved(installationID: 1, repositoryIDs: [2])))
                    == .recorded)
                #expect(try await db.scalar("SELECT status::text || ': ' || error FROM tasks", as: String.self)
                    == "cancelled: the repository was removed from the App's installation")
                // A command from it (a late delivery) neither starts work nor makes the repository active again.
                #expect(try await store.record(plan("t2", tasks: [taskRequest(commentID: 2)]))
                    == .ignored(reason: "the repository was removed from the App's installation; nothing was started"))
                #expect(try await db.scalar("SELECT is_active FROM repositories WHERE github_id = 2", as: Bool.self) == false)
                #expect(try await db.count("tasks") == 1)

                #expect(try await store.record(change("added", .repositoriesAdded(installation: installation, repositories: [repository])))
                    == .recorded)
                #expect(isQueued(try await store.record(plan("t3", tasks: [taskRequest(commentID: 3)]))))
            }
        }
    }

    @Test func anUninstalledAppGetsNoWork() async throws {
        try await TestDatabase.with { db throws in
            try await withStore(db) { store throws in
                #expect(isQueued(try await store.record(plan("t1", tasks: [taskRequest(commentID: 1)]))))
                #expect(try await store.record(change("deleted", .installationDeleted(installationID: 1))) == .recorded)
                #expect(try await db.scalar("SELECT status::text || ': ' || error FROM tasks", as: String.self)
                    == "cancelled: the App was uninstalled from this account")
                #expect(try await store.record(plan("t2", tasks: [taskRequest(commentID: 2)]))
                    == .ignored(reason: "the App was uninstalled from this account; nothing was started"))
                #expect(try await db.count("tasks") == 1)
            }
        }
    }
}
