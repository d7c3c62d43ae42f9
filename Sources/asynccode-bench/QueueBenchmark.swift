import ArgumentParser
import Database
import Foundation
import AsyncCodeApp
import Logging
import PostgresNIO
import Queue
import ServiceLifecycle
import Synchronization

/// Runs the benchmarks as `asynccode` runs: Swift concurrency on NIO's event loops unless
/// `ASYNCCODE_NIO_EXECUTOR=0`, as many loops as `asynccode` would run (`ASYNCCODE_EVENT_LOOPS`).
@main
enum BenchEntrypoint {
    static func main() async {
        do {
            try adoptEventLoopsAsConcurrencyExecutor()
        } catch {
            FileHandle.standardError.write(Data("asynccode-bench: \(error)\n".utf8))
            exit(64)
        }
        await Bench.main()
    }
}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "asynccode-bench", abstract: "Benchmarks that print figures.", subcommands: [QueueBench.self, EndToEndBench.self, ExecutorOverheadBench.self, LiveEventsBench.self])
}

/// A handler that does nothing but count its calls: what is measured is the queue. With `queue`, it also
/// takes part in the acknowledgement pass, as the executor does in `asynccode serve` (and gives each
/// acknowledgement up at once, as if the comment were posted).
final class NoOp: TaskHandling {
    let handled = Atomic<Int>(0)
    let queue: TaskQueue?

    init(acknowledgingWith queue: TaskQueue? = nil) { self.queue = queue }

    var acknowledgesTasks: Bool { queue != nil }

    func acknowledge(taskID: Int64, worker: String) async {
        try? await queue?.abandonAcknowledgement(taskID: taskID, worker: worker, retryAfter: .seconds(3600))
    }

    func handle(_ task: ClaimedTask) async -> TaskOutcome {
        handled.add(1, ordering: .relaxed)
        return .completed
    }
}

struct QueueBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Claim-and-complete throughput of no-op tasks, and enqueue-to-start latency with LISTEN/NOTIFY.")

    @Option(help: "Tasks per throughput run.") var tasks = 5000
    @Option(help: "Worker counts to measure, comma-separated.") var workers = "1,2,4,8"
    @Option(help: "Whether completions also claim the next task (on, off, or both side by side).") var claimWithCompletion = "on"
    @Option(help: "Claim statements allowed in flight at once.") var claimsInFlight = 2
    @ArgumentParser.Flag(help: "Workers run the acknowledgement pass before each claim, as in `asynccode serve`.") var acknowledge = false
    @Option(help: "The most tasks one claim takes while tasks turn out quick, comma-separated to compare (1: one at a time).")
    var runAhead = "\(RunAhead.standard.maxTasks)"
    @Option(help: "Tasks enqueued one at a time for the latency run.") var samples = 300
    @Option(help: "Milliseconds between enqueues in the latency run.") var gap = 10

    func run() async throws {
        guard let raw = ProcessInfo.processInfo.environment["DATABASE_URL"] else {
            throw ValidationError("DATABASE_URL must name a database this benchmark may fill and empty")
        }
        let url = try DatabaseURL(raw)
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        guard let directory = Migration.locateDirectory() else { throw ValidationError("no migrations folder found") }
        // The pool is set up as the workers' queue pool is.
        let configuration = url.queueClientConfiguration(maximumConnections: 40)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await Migrator(client: client, migrations: try Migration.load(from: directory), logger: logger).migrate()
            let settings = try await scalar(client, "SELECT 'fsync=' || current_setting('fsync') || ' synchronous_commit=' || current_setting('synchronous_commit')", logger)
            print("== queue: no-op tasks\(acknowledge ? " with the acknowledgement pass" : ""), PostgreSQL \(settings), \(ProcessInfo.processInfo.activeProcessorCount) cores ==")
            let modes = claimWithCompletion == "both" ? [true, false] : [claimWithCompletion != "off"]
            let depths = runAhead.split(separator: ",").compactMap { Int($0) }
            for count in workers.split(separator: ",").compactMap({ Int($0) }) {
                for chained in modes {
                    for depth in depths {
                        try await reset(client, logger)
                        try await enqueue(client, count: tasks, logger)
                        // Statistics as a table in use has them, not those of the emptied table: the claim's
                        // plan is made with them.
                        try await client.query("ANALYZE tasks", logger: logger)
                        let rate = try await throughput(
                            client: client, url: url, workers: count, chained: chained, runAhead: RunAhead(maxTasks: depth), logger: logger)
                        print(String(format: "claim-and-complete, %d worker%@: %8.0f tasks/s, up to %d per claim%@", count, count == 1 ? " " : "s", rate, depth,
                                     modes.count > 1 ? (chained ? " (completion claims the next)" : " (separate statements)") : ""))
                    }
                }
            }
            try await reset(client, logger)
            let (p50, p99, max) = try await latency(client: client, url: url, logger: logger)
            print(String(format: "enqueue-to-start with LISTEN/NOTIFY (2 idle workers, %d tasks, one every %d ms): p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                         samples, gap, p50, p99, max))
            try await reset(client, logger)
        }
    }

    private func throughput(
        client: PostgresClient, url: DatabaseURL, workers count: Int, chained: Bool, runAhead: RunAhead, logger: Logger
    ) async throws -> Double {
        let queue = TaskQueue(client: client, logger: logger, claimsInFlight: claimsInFlight)
        let signal = WorkSignal()
        let handler = NoOp(acknowledgingWith: acknowledge ? queue : nil)
        let services = (0..<count).map {
            TaskWorker(name: "bench-\($0)", queue: queue, signal: signal, handler: handler, logger: logger,
                       pollInterval: .milliseconds(20), claimsWithCompletion: chained, runAhead: runAhead)
        }
        let group = ServiceGroup(services: services, logger: logger)
        let start = ContinuousClock.now
        var elapsed = Duration.zero
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // Until every task ran, the count is asked of the handler, so the polling costs the database
            // nothing; then of the database, until every completion is recorded.
            while handler.handled.load(ordering: .relaxed) < self.tasks {
                try await Task.sleep(for: .milliseconds(2))
            }
            while try await scalar(client, """
                SELECT (EXISTS (SELECT 1 FROM tasks WHERE status = 'pending')
                        OR EXISTS (SELECT 1 FROM tasks WHERE status = 'running'))::text
                """, logger) != "false" {
                try await Task.sleep(for: .milliseconds(10))
            }
            elapsed = ContinuousClock.now - start
            await group.triggerGracefulShutdown()
        }
        let completed = try await scalar(client, "SELECT count(*)::text FROM tasks WHERE status = 'completed'", logger)
        guard completed == "\(tasks)" else {
            throw ValidationError("\(completed) of \(tasks) tasks completed")
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(tasks) / seconds
    }

    private func latency(client: PostgresClient, url: DatabaseURL, logger: Logger) async throws -> (Double, Double, Double) {
        let queue = TaskQueue(client: client, logger: logger)
        let signal = WorkSignal()
        let listener = WorkListener(url: url, signal: signal, logger: logger)
        let services: [any Service] = [listener] + (0..<2).map {
            TaskWorker(name: "latency-\($0)", queue: queue, signal: signal, handler: NoOp(), logger: logger,
                       pollInterval: .seconds(30))
        }
        let group = ServiceGroup(services: services, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await Task.sleep(for: .milliseconds(500))
            for _ in 0..<samples {
                // As the intake does: insert and NOTIFY in one transaction.
                try await client.withTransaction(logger: logger) { connection in
                    let ids = try await insert(connection, count: 1, createdAt: "clock_timestamp()", logger)
                    try await connection.query("SELECT pg_notify(\(WorkNotifications.channel), \("task:\(ids)"))", logger: logger)
                }
                try await Task.sleep(for: .milliseconds(gap))
            }
            while try await scalar(client, "SELECT count(*)::text FROM tasks WHERE status = 'completed'", logger) != "\(samples)" {
                try await Task.sleep(for: .milliseconds(5))
            }
            await group.triggerGracefulShutdown()
        }
        let rows = try await client.query("""
            SELECT (extract(epoch FROM started_at - created_at) * 1000)::float8 FROM tasks ORDER BY 1
            """, logger: logger)
        var values: [Double] = []
        for try await value in rows.decode(Double.self) { values.append(value) }
        func percentile(_ p: Double) -> Double { values[min(values.count - 1, Int(Double(values.count) * p))] }
        return (percentile(0.5), percentile(0.99), values.last ?? 0)
    }

    private func reset(_ client: PostgresClient, _ logger: Logger) async throws {
        try await client.query("TRUNCATE tasks, task_events, task_results, task_analytics, pull_requests, credit_transactions CASCADE", logger: logger)
        try await client.query("""
            INSERT INTO accounts (github_id, login) VALUES (-1, 'bench') ON CONFLICT DO NOTHING
            """, logger: logger)
        try await client.query("INSERT INTO installations (github_id) VALUES (-1) ON CONFLICT DO NOTHING", logger: logger)
        try await client.query("""
            INSERT INTO repositories (github_id, installation_id, full_name, name, owner_login)
            SELECT -1, id, 'bench/queue', 'queue', 'bench' FROM installations WHERE github_id = -1 ON CONFLICT DO NOTHING
            """, logger: logger)
    }

    private func enqueue(_ client: PostgresClient, count: Int, _ logger: Logger) async throws {
        _ = try await client.withConnection { try await insert($0, count: count, createdAt: "now()", logger) }
    }

    /// Inserts `count` tasks, each on an issue of its own; returns the last id.
    private func insert(_ connection: PostgresConnection, count: Int, createdAt: String, _ logger: Logger) async throws -> Int64 {
        let rows = try await connection.query(PostgresQuery(unsafeSQL: """
            INSERT INTO tasks (repository_id, installation_id, requested_by, issue_number, source, comment_id, command_index, created_at)
            SELECT r.id, r.installation_id, a.id, nextval('tasks_id_seq'), 'issue_comment', nextval('tasks_id_seq'), 0, \(createdAt)
            FROM generate_series(1, \(count)), repositories r, accounts a
            WHERE r.github_id = -1 AND a.github_id = -1
            RETURNING id
            """), logger: logger)
        var last: Int64 = 0
        for try await id in rows.decode(Int64.self) { last = id }
        return last
    }

    private func scalar(_ client: PostgresClient, _ sql: String, _ logger: Logger) async throws -> String {
        let rows = try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        for try await value in rows.decode(String.self) { return value }
        return ""
    }
}
