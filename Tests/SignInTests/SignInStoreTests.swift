import Database
import Foundation
import OpenSSLCrypto
import PostgresNIO
import SignIn
import Synchronization
import Testing
import TestSupport

/// The stores behind "Sign in with GitHub" (issue 20), on a real PostgreSQL: sign-in states, sessions, and
/// users' tokens encrypted at rest.
@Suite(.timeLimit(.minutes(5))) struct SignInStoreTests {
    static func ring(_ ids: String...) throws -> KeyRing {
        try KeyRing(parsing: ids.map { try KeyRing.newEntry(id: $0) }.joined(separator: ","))
    }

    static func account(_ db: TestDatabase, githubID: Int64, login: String) async throws -> Int64 {
        try #require(try await db.scalar("INSERT INTO accounts (github_id, login) VALUES (\(githubID), '\(login)') RETURNING id", as: Int64.self))
    }

    @Test func aStateIsUsedOnceByItsOwnBrowserWithinItsLifetime() async throws {
        try await TestDatabase.with { db in
            let states = OAuthStates(client: db.client, keys: try Self.ring("k1"), lifetime: .seconds(600), logger: db.logger)
            let begun = try await states.begin()
            #expect(begun.state.count == 43 && begun.challenge.count == 43)
            // Missing, mismatched (another browser's cookie), forged: refused, and the state stays usable.
            for (state, cookie) in [(nil, begun.state), (begun.state, nil), (begun.state, (begun.state.hasPrefix("x") ? "y" : "x") + begun.state.dropFirst()), ("forged", "forged")] {
                await #expect(throws: SignInError.self) { try await states.consume(state: state, cookie: cookie) }
            }
            let verifier = try await states.consume(state: begun.state, cookie: begun.state)
            #expect(Base64URL.encode(SHA256Digest.hash(Array(verifier.utf8))) == begun.challenge)
            // Reused: refused.
            await #expect(throws: SignInError.self) { try await states.consume(state: begun.state, cookie: begun.state) }
            // Expired: refused.
            let expiring = OAuthStates(client: db.client, keys: try Self.ring("k1"), lifetime: .zero, logger: db.logger)
            let old = try await expiring.begin()
            await #expect(throws: SignInError.self) { try await expiring.consume(state: old.state, cookie: old.state) }
            // Only hashes and sealed verifiers are stored.
            #expect(try await db.scalar("SELECT count(*)::int8 FROM oauth_states WHERE position(convert_to(\(Self.quote(verifier)), 'UTF8') in verifier) > 0", as: Int64.self) == 0)
        }
    }

    @Test func sessionsAreHashedAndEndWhenIdleOrEnded() async throws {
        try await TestDatabase.with { db in
            let alice = try await Self.account(db, githubID: 101, login: "alice")
            let sessions = Sessions(client: db.client, idle: .seconds(3600), lifetime: .seconds(86400), logger: db.logger)
            let cookie = try await sessions.open(accountID: alice)
            #expect(try await sessions.user(cookie: cookie)?.login == "alice")
            #expect(try await sessions.user(cookie: cookie + "x") == nil)
            #expect(try await db.scalar("SELECT count(*)::int8 FROM user_sessions WHERE id_sha256 = decode('\(Hex.encode(SHA256Digest.hash(Array(cookie.utf8))))', 'hex')", as: Int64.self) == 1)
            // A use is written at most once a minute: 30 s ago stays, 2 minutes ago becomes now.
            _ = try await db.scalar("UPDATE user_sessions SET last_seen_at = now() - interval '30 seconds' RETURNING 1", as: Int32.self)
            #expect(try await sessions.user(cookie: cookie) != nil)
            #expect(try await db.scalar("SELECT (last_seen_at < now() - interval '25 seconds')::text FROM user_sessions", as: String.self) == "true")
            _ = try await db.scalar("UPDATE user_sessions SET last_seen_at = now() - interval '2 minutes' RETURNING 1", as: Int32.self)
            #expect(try await sessions.user(cookie: cookie) != nil)
            #expect(try await db.scalar("SELECT (last_seen_at > now() - interval '10 seconds')::text FROM user_sessions", as: String.self) == "true")
            // Idle too long: gone.
            _ = try await db.scalar("UPDATE user_sessions SET last_seen_at = now() - interval '2 hours' RETURNING 1", as: Int32.self)
            #expect(try await sessions.user(cookie: cookie) == nil)
            let second = try await sessions.open(accountID: alice)
            try await sessions.end(cookie: second)
            #expect(try await sessions.user(cookie: second) == nil)
        }
    }

    @Test func tokensAreEncryptedForTheirRowAndOldKeysRotateAway() async throws {
        try await TestDatabase.with { db in
            let alice = try await Self.account(db, githubID: 101, login: "alice")
            let bob = try await Self.account(db, githubID: 102, login: "bob")
            let old = try KeyRing.newEntry(id: "old")
            let oldRing = try KeyRing(parsing: old)
            let tokens = UserTokens(client: db.client, keys: oldRing, refreshMargin: .seconds(900), logger: db.logger)
            try await tokens.store(accountID: alice, grant: TokenGrant(accessToken: "ghu_alice0123456789", expiresIn: 28800,
                                                                       refreshToken: "ghr_alice0123456789", refreshTokenExpiresIn: 15_811_200))
            try await tokens.store(accountID: bob, grant: TokenGrant(accessToken: "ghu_bob0123456789", expiresIn: nil, refreshToken: nil,
                                                                     refreshTokenExpiresIn: nil))
            let never: @Sendable (String) async throws -> TokenGrant = { _ in Issue.record("refreshed a live token"); throw CancellationError() }
            #expect(try await tokens.accessToken(accountID: alice, refresh: never) == "ghu_alice0123456789")
            // A dump of the database holds no token.
            let dump = try await TestSupport.run(["env", "PGPASSWORD=\(db.url.password ?? "")", "/usr/lib/postgresql/15/bin/pg_dump", "--data-only",
                                                  "-h", db.url.host, "-p", String(db.url.port), "-U", db.url.username, db.url.database])
            #expect(dump.status == 0, "\(dump.output.prefix(300))")
            #expect(dump.output.contains("user_tokens"))
            #expect(!dump.output.contains("ghu_") && !dump.output.contains("ghr_"))
            // Alice's ciphertext moved to Bob's row does not decrypt; a flipped byte does not either.
            _ = try await db.scalar("UPDATE user_tokens SET access_token = (SELECT access_token FROM user_tokens WHERE account_id = \(alice)) WHERE account_id = \(bob) RETURNING 1", as: Int32.self)
            await #expect(throws: SignInError.self) { try await tokens.accessToken(accountID: bob, refresh: never) }
            _ = try await db.scalar("UPDATE user_tokens SET refresh_token = set_byte(refresh_token, 20, get_byte(refresh_token, 20) # 1) WHERE account_id = \(alice) RETURNING 1", as: Int32.self)
            _ = try await db.scalar("UPDATE user_tokens SET access_expires_at = now() WHERE account_id = \(alice) RETURNING 1", as: Int32.self)
            await #expect(throws: SignInError.self) { try await tokens.accessToken(accountID: alice, refresh: never) }
            try await tokens.store(accountID: alice, grant: TokenGrant(accessToken: "ghu_alice2", expiresIn: 28800, refreshToken: "ghr_alice2",
                                                                       refreshTokenExpiresIn: 100))
            try await tokens.store(accountID: bob, grant: TokenGrant(accessToken: "ghu_bob2", expiresIn: nil, refreshToken: nil, refreshTokenExpiresIn: nil))

            // Rotation: a new key first, the old one kept; afterwards the new key alone reads everything.
            let newEntry = try KeyRing.newEntry(id: "new")
            let both = UserTokens(client: db.client, keys: try KeyRing(parsing: newEntry + "," + old), refreshMargin: .seconds(900), logger: db.logger)
            #expect(try await both.rotate() == 3)
            #expect(try await db.scalar("SELECT count(*)::int8 FROM user_tokens WHERE access_key_id = 'new'", as: Int64.self) == 2)
            let newOnly = UserTokens(client: db.client, keys: try KeyRing(parsing: newEntry), refreshMargin: .seconds(900), logger: db.logger)
            #expect(try await newOnly.accessToken(accountID: alice, refresh: never) == "ghu_alice2")
            #expect(try await newOnly.accessToken(accountID: bob, refresh: never) == "ghu_bob2")
            #expect(try await both.rotate() == 0)
        }
    }

    /// Twenty requests at once from two processes (two connection pools), when the token is about to expire:
    /// GitHub is asked for one refresh, and every request gets the refreshed token.
    @Test func aTokenAboutToExpireIsRefreshedOnceAcrossProcesses() async throws {
        try await TestDatabase.with { db in
            let alice = try await Self.account(db, githubID: 101, login: "alice")
            let keys = try Self.ring("k1")
            let first = UserTokens(client: db.client, keys: keys, refreshMargin: .seconds(900), logger: db.logger)
            try await first.store(accountID: alice, grant: TokenGrant(accessToken: "ghu_old", expiresIn: 600, refreshToken: "ghr_old",
                                                                      refreshTokenExpiresIn: 10_000))
            let other = PostgresClient(configuration: db.url.clientConfiguration(), backgroundLogger: db.logger)
            let refreshes = Mutex<[String]>([])
            let refresh: @Sendable (String) async throws -> TokenGrant = { token in
                refreshes.withLock { $0.append(token) }
                try await Task.sleep(for: .milliseconds(200))  // GitHub takes a moment: the others wait on the row lock
                return TokenGrant(accessToken: "ghu_new", expiresIn: 28800, refreshToken: "ghr_new", refreshTokenExpiresIn: 15_811_200)
            }
            let got = try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask { await other.run(); return nil }
                let second = UserTokens(client: other, keys: keys, refreshMargin: .seconds(900), logger: db.logger)
                var answers: [String] = []
                try await withThrowingTaskGroup(of: String?.self) { requests in
                    for index in 0..<20 {
                        requests.addTask { try await (index % 2 == 0 ? first : second).accessToken(accountID: alice, refresh: refresh) }
                    }
                    for try await answer in requests { answers.append(answer ?? "none") }
                }
                group.cancelAll()
                return answers
            }
            #expect(refreshes.withLock { $0 } == ["ghr_old"])
            #expect(got.count == 20 && got.allSatisfy { $0 == "ghu_new" })
        }
    }

    static func quote(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }
}
