import Database
import Foundation
import PostgresNIO
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(10))) struct SQLStatementSplitterTests {
    @Test func splitsAtTopLevelSemicolonsOnly() {
        let script = """
            -- a comment; with a semicolon
            CREATE TABLE a (x text DEFAULT 'a;b');
            /* block; /* nested; */ still comment; */
            CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;
            CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 2; END $body$;
            SELECT "weird;name" FROM t WHERE y = E'it\\'s; fine' AND z = 'it''s; fine';
            SELECT $1;
            ;;
            """
        let statements = SQLStatementSplitter.split(script)
        #expect(statements.count == 5)
        #expect(statements[0] == "-- a comment; with a semicolon\nCREATE TABLE a (x text DEFAULT 'a;b')")
        #expect(statements[2].hasSuffix("$body$ BEGIN RETURN 2; END $body$"))
        #expect(statements[3].contains("'it''s; fine'"))
        #expect(statements[4] == "SELECT $1")
    }

    @Test func theInitialMigrationSplits() throws {
        let migrations = try Migration.load(from: TestEnvironment.migrationsDirectory)
        let statements = SQLStatementSplitter.split(migrations[0].sql)
        #expect(statements.count > 30)
        #expect(statements.allSatisfy { !$0.isEmpty })
    }
}

@Suite(.timeLimit(.minutes(10))) struct DatabaseURLTests {
    @Test func parsesAndHidesThePassword() throws {
        let url = try DatabaseURL("postgres://bot:s3cr%40t@db.example:6543/asynccode")
        #expect(url.username == "bot")
        #expect(url.password == "s3cr@t")
        #expect(url.host == "db.example")
        #expect(url.port == 6543)
        #expect(url.database == "asynccode")
        #expect(!url.description.contains("s3cr"))
        let socket = try DatabaseURL("postgresql://bot@localhost/app?host=/run/pg")
        #expect(socket.socketPath == "/run/pg/.s.PGSQL.5432")
    }

    @Test func refusesWithoutEchoingSecrets() {
        for bad in ["mysql://u:hunter2@h/d", "not a url", "postgres://:hunter2@h/d", "postgres://u:hunter2@/d"] {
            do {
                _ = try DatabaseURL(bad)
                Issue.record("accepted \(bad)")
            } catch {
                #expect(!error.message.contains("hunter2"))
            }
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct MigrationTests {
    func migrations() throws -> [Migration] { try Migration.load(from: TestEnvironment.migrationsDirectory) }

    @Test func appliesOnceAndIsIdempotent() async throws {
        try await TestDatabase.with(migrated: false) { db in
            let all = try migrations()
            #expect(all.map(\.version) == Array(1...all.count))
            let migrator = Migrator(client: db.client, migrations: all, logger: db.logger)
            let first = try await migrator.migrate()
            #expect(first == all.map(\.version))
            let second = try await migrator.migrate()
            #expect(second.isEmpty)
            #expect(try await migrator.pending().isEmpty)
            #expect(try await db.count("schema_migrations") == all.count)
            // 0003: payloads compressed with lz4 ('l'), which Debian's PostgreSQL has.
            #expect(try await db.scalar("""
                SELECT attcompression::text FROM pg_attribute
                WHERE attrelid = 'webhook_deliveries'::regclass AND attname = 'payload'
                """, as: String.self) == "l")
            for table in ["accounts", "installations", "repositories", "user_repository_access", "ai_models", "tasks",
                          "control_commands", "task_results", "pull_requests", "credit_transactions", "task_analytics",
                          "task_events", "webhook_deliveries"] {
                #expect(try await db.scalar("SELECT to_regclass('\(table)') IS NOT NULL", as: Bool.self) == true, "\(table)")
            }
        }
    }

    @Test func concurrentMigratorsApplyEachMigrationOnce() async throws {
        try await TestDatabase.with(migrated: false) { db in
            let list = try migrations()
            let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<4 {
                    group.addTask { try await Migrator(client: db.client, migrations: list, logger: db.logger).migrate() }
                }
                var all: [Int] = []
                for try await versions in group { all += versions }
                return all
            }
            #expect(applied.sorted() == list.map(\.version))
            #expect(try await db.count("schema_migrations") == list.count)
        }
    }

    @Test func changedMigrationIsRefused() async throws {
        try await TestDatabase.with(migrated: false) { db in
            var list = try migrations()
            try await Migrator(client: db.client, migrations: list, logger: db.logger).migrate()
            list[0] = Migration(version: 1, name: list[0].name, sql: list[0].sql + "\n-- edited\n")
            let migrator = Migrator(client: db.client, migrations: list, logger: db.logger)
            await #expect {
                try await migrator.migrate()
            } throws: { error in
                (error as? DatabaseError)?.code == .migrationChanged
                    && (error as? DatabaseError)?.message.contains("changed after it was applied") == true
            }
            await #expect(throws: DatabaseError.self) { try await migrator.pending() }
        }
    }

    @Test func failingMigrationRollsBackAndNamesTheFile() async throws {
        try await TestDatabase.with(migrated: false) { (db: TestDatabase) async throws in
            let list = [Migration(version: 1, name: "ok", sql: "CREATE TABLE t1 (x int);"),
                        Migration(version: 2, name: "broken", sql: "CREATE TABLE t2 (x int); SELECT nonsense_fn();")]
            let migrator = Migrator(client: db.client, migrations: list, logger: db.logger)
            await #expect {
                try await migrator.migrate()
            } throws: { error in
                guard let error = error as? DatabaseError else { return false }
                return error.code == .migrationFailed && error.message.contains("2_broken")
            }
            #expect(try await db.scalar("SELECT to_regclass('t1') IS NOT NULL", as: Bool.self) == true)
            #expect(try await db.scalar("SELECT to_regclass('t2') IS NOT NULL", as: Bool.self) == false)
            #expect(try await migrator.pending() == [2])
        }
    }

    @Test func badFileNamesAreRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mig-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try "SELECT 1;".write(to: folder.appendingPathComponent("init.sql"), atomically: true, encoding: .utf8)
        #expect(throws: DatabaseError.self) { try Migration.load(from: folder) }
    }

    @Test func oneCommentCanNeverMakeTwoTasks() async throws {
        try await TestDatabase.with { db in
            try await db.client.query("""
                WITH a AS (INSERT INTO accounts (github_id, login) VALUES (1, 'u') RETURNING id),
                     i AS (INSERT INTO installations (github_id) VALUES (1) RETURNING id),
                     r AS (INSERT INTO repositories (github_id, installation_id, full_name, name, owner_login)
                           SELECT 1, id, 'o/r', 'r', 'o' FROM i RETURNING id)
                INSERT INTO tasks (repository_id, installation_id, requested_by, issue_number, source, comment_id, command_index)
                SELECT r.id, i.id, a.id, 1, 'issue_comment', 99, 0 FROM a, i, r
                """, logger: db.logger)
            await #expect(throws: PSQLError.self) {
                try await db.client.query("""
                    INSERT INTO tasks (repository_id, installation_id, requested_by, issue_number, source, comment_id, command_index)
                    SELECT repository_id, installation_id, requested_by, 1, 'issue_comment', 99, 0 FROM tasks LIMIT 1
                    """, logger: db.logger)
            }
            #expect(try await db.count("tasks") == 1)
            // task_events is append-only.
            try await db.client.query("INSERT INTO task_events (task_id, step) SELECT id, 'queued' FROM tasks", logger: db.logger)
            await #expect(throws: PSQLError.self) {
                try await db.client.query("UPDATE task_events SET step = 'x'", logger: db.logger)
            }
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct DeadlineQueryTests {
    @Test func aQueryPastItsDeadlineFailsAndClosesItsConnection() async throws {
        try await TestDatabase.with { db in
            let connection = try await PostgresConnection.connect(
                configuration: db.url.connectionConfiguration(connectTimeout: .seconds(5)), id: 98, logger: db.logger)
            do {
                let answered = try await connection.rows("SELECT 41 + 1", logger: db.logger, deadline: .now() + .seconds(30))
                #expect(try answered.decode(Int.self) == [42])
                let started = ContinuousClock.now
                await #expect(throws: QueryDeadlineExceeded.self) {
                    _ = try await connection.rows("SELECT pg_sleep(3)", logger: db.logger, deadline: .now() + .milliseconds(200))
                }
                #expect(ContinuousClock.now - started < .seconds(10))
                let deadline = ContinuousClock.now + .seconds(10)
                while !connection.isClosed, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
                #expect(connection.isClosed)
            } catch {
                try? await connection.close()
                throw error
            }
            if !connection.isClosed { try? await connection.close() }
        }
    }
}
