@testable import AsyncCodeApp
import Database
import Foundation
import PostgresNIO
import Testing
import TestSupport

/// `/metrics` and `/readyz` ask PostgreSQL; a database that does not answer (here: `tasks` locked) must make
/// them answer at their deadline, not hang the scrape or the probe.
@Suite(.timeLimit(.minutes(10))) struct DatabaseProbeTests {
    @Test func aDatabaseThatDoesNotAnswerIsReportedAtTheDeadline() async throws {
        try await TestDatabase.with { db in
            let metrics = AppMetrics()
            let controller = MetricsController(
                metrics: metrics, client: db.client, token: nil, logger: db.logger, sampleTimeout: .milliseconds(500))
            let migrator = Migrator(
                client: db.client, migrations: try Migration.load(from: TestEnvironment.migrationsDirectory), logger: db.logger)
            let readiness = DatabaseReadiness(client: db.client, migrator: migrator, logger: db.logger, timeout: .milliseconds(500))
            // While the database answers, with deadlines a loaded machine cannot miss.
            var patientController = controller
            patientController.sampleTimeout = .seconds(30)
            var patientReadiness = readiness
            patientReadiness.timeout = .seconds(30)
            await patientController.sampleQueue()
            #expect(Self.sample("asynccode_database_up", metrics) == 1)
            #expect(await patientReadiness.problems() == [])

            let locker = try await PostgresConnection.connect(
                configuration: db.url.connectionConfiguration(connectTimeout: .seconds(5)), id: 98, logger: db.logger)
            do {
                try await locker.query("BEGIN", logger: db.logger)
                try await locker.query("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE", logger: db.logger)
                var started = ContinuousClock.now
                await controller.sampleQueue()
                // Answered at the deadline, not when the lock goes (a loaded machine may add a few seconds).
                var waited = ContinuousClock.now - started
                #expect(waited >= .milliseconds(400) && waited < .seconds(30), "sampled after \(waited)")
                #expect(Self.sample("asynccode_database_up", metrics) == 0)

                // Readiness asks `SELECT 1`, which the lock does not hold up; a lock on what it reads does.
                try await locker.query("LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE", logger: db.logger)
                started = ContinuousClock.now
                let problems = await readiness.problems()
                waited = ContinuousClock.now - started
                #expect(problems.count == 1 && problems[0].hasPrefix("database did not answer within"), "\(problems)")
                #expect(waited < .seconds(30), "answered after \(waited)")
                try await locker.query("ROLLBACK", logger: db.logger)
            } catch {
                try? await locker.close()
                throw error
            }
            try await locker.close()
            // Back once the database answers (the pool may first open a connection for the closed one).
            await patientController.sampleQueue()
            #expect(Self.sample("asynccode_database_up", metrics) == 1)
            #expect(await patientReadiness.problems() == [])
        }
    }

    /// Returns the value of the sample named `name` in what the registry prints.
    static func sample(_ name: String, _ metrics: AppMetrics) -> Double? {
        var buffer: [UInt8] = []
        metrics.registry.emit(into: &buffer)
        let line = String(decoding: buffer, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") }
    }
}
