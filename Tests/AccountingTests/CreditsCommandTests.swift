import Foundation
import Testing
import TestSupport

/// `asynccode credits`: the built binary against a real database.
@Suite(.timeLimit(.minutes(10))) struct CreditsCommandTests {
    static let binary = TestEnvironment.packageRoot.appendingPathComponent(".build/debug/asynccode").path

    func credits(_ db: TestDatabase, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await TestSupport.run(
            [Self.binary, "credits"] + arguments, currentDirectory: FileManager.default.temporaryDirectory.path,
            environment: ["PATH": "/usr/bin:/bin",
                          "DATABASE_URL": "postgres://\(db.url.username):\(db.url.password ?? "")@\(db.url.host):\(db.url.port)/\(db.url.database)",
                          "ASYNCCODE_MIGRATIONS_DIR": TestEnvironment.migrationsDirectory.path])
    }

    @Test func showGrantAndHistory() async throws {
        try await TestDatabase.with { db in
            let ids = try await makeAccount(db)
            let shown = try await credits(db, ["show", "acme"])
            #expect(shown.status == 0)
            #expect(shown.output.contains("balance: 100 credits"))
            #expect(shown.output.contains("account: acme (Organization, GitHub id 7)"))

            let granted = try await credits(db, ["grant", "ACME", "250.5", "--reason", "pilot budget"])
            #expect(granted.status == 0, "\(granted.output)")
            #expect(granted.output.contains("granted 250.5 credits to acme; balance: 350.5 credits"))
            let taken = try await credits(db, ["grant", "7", "--reason", "correction", "--", "-50"])
            #expect(taken.status == 0, "\(taken.output)")
            #expect(taken.output.contains("took back 50 credits from acme; balance: 300.5 credits"))

            let history = try await credits(db, ["history", "acme", "--limit", "2"])
            #expect(history.status == 0)
            let lines = history.output.split(separator: "\n")
            #expect(lines.count == 4)
            #expect(lines.dropFirst(2).first?.contains("credit   -50") == true)
            #expect(lines.last?.contains("pilot budget") == true)
            #expect(try await db.scalar("SELECT credits FROM accounts WHERE id = \(ids.account)", as: Decimal.self) == Decimal(string: "300.5")!)
        }
    }

    @Test func refusalsAreOneLine() async throws {
        try await TestDatabase.with { db in
            _ = try await makeAccount(db)
            for (arguments, expected) in [
                (["show", "nobody"], "asynccode: credits: no account nobody"),
                (["grant", "acme", "lots", "--reason", "x"], "asynccode: credits: the amount must be a non-zero number"),
                (["grant", "acme", "1.23456", "--reason", "x"], "asynccode: credits: the amount must be a non-zero number"),
                (["grant", "acme", "5", "--reason", " "], "asynccode: credits: --reason must say why"),
            ] {
                let result = try await credits(db, arguments)
                #expect(result.status == 1, "\(arguments)")
                #expect(result.output.hasPrefix(expected), "\(arguments): \(result.output)")
                #expect(result.output.split(separator: "\n").count == 1, "\(arguments): \(result.output)")
            }
            #expect(try await db.count("credit_transactions WHERE type = 'credit'") == 0)
        }
    }
}
