import Foundation
import OpenSSLCrypto
import SignIn
import Testing
import TestSupport

/// `asynccode keys new|rotate`: the built binary against a real database.
@Suite(.timeLimit(.minutes(5))) struct KeysCommandTests {
    static let binary = TestEnvironment.packageRoot.appendingPathComponent(".build/debug/asynccode").path

    func keys(_ db: TestDatabase, _ arguments: [String], keys: String? = nil) async throws -> (status: Int32, output: String) {
        var environment = ["PATH": "/usr/bin:/bin",
                           "DATABASE_URL": "postgres://\(db.url.username):\(db.url.password ?? "")@\(db.url.host):\(db.url.port)/\(db.url.database)",
                           "ASYNCCODE_MIGRATIONS_DIR": TestEnvironment.migrationsDirectory.path]
        if let keys { environment["ASYNCCODE_ENCRYPTION_KEYS"] = keys }
        return try await TestSupport.run([Self.binary, "keys"] + arguments, currentDirectory: FileManager.default.temporaryDirectory.path,
                                         environment: environment)
    }

    @Test func aNewKeyGoesFirstAndRotateRewritesEveryToken() async throws {
        try await TestDatabase.with { db in
            let old = try await keys(db, ["new", "--id", "old"])
            #expect(old.status == 0)
            let oldEntry = old.output.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(oldEntry.hasPrefix("old:") && (try? KeyRing(parsing: oldEntry)) != nil)
            let account = try #require(try await db.scalar("INSERT INTO accounts (github_id, login) VALUES (5, 'alice') RETURNING id", as: Int64.self))
            try await UserTokens(client: db.client, keys: try KeyRing(parsing: oldEntry), refreshMargin: .seconds(900), logger: db.logger)
                .store(accountID: account, grant: TokenGrant(accessToken: "ghu_x", expiresIn: nil, refreshToken: "ghr_y", refreshTokenExpiresIn: nil))
            let newEntry = try await keys(db, ["new", "--id", "new"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
            let rotated = try await keys(db, ["rotate"], keys: newEntry + "," + oldEntry)
            #expect(rotated.status == 0, "\(rotated.output)")
            #expect(rotated.output.contains("keys: 2 token value(s) re-encrypted with key new"))
            #expect(try await db.scalar("SELECT access_key_id || refresh_key_id FROM user_tokens", as: String.self) == "newnew")
            // Without the setting, or with a bad one: one line, exit status 1.
            let missing = try await keys(db, ["rotate"])
            #expect(missing.status != 0 && missing.output.contains("ASYNCCODE_ENCRYPTION_KEYS is not set"))
            let bad = try await keys(db, ["rotate"], keys: "x:short")
            #expect(bad.status != 0 && bad.output.contains("ASYNCCODE_ENCRYPTION_KEYS"))
            #expect(!bad.output.contains("short") || bad.output.contains("not 32 bytes"))
        }
    }
}
