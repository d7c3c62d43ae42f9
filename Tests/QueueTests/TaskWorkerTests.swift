import Foundation
import Logging
import Models
import PostgresNIO
import Prometheus
@testable import Queue
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport

/// Records the tasks it ran; sleeps `delay` in each (cancellable).
final class RecordingHandler: TaskHandling {
    let ran = Mutex<[Int64]>([])
    let delay: Duration

    init(delay: Duration = .zero) { self.delay = delay }

    func handle(_ task: ClaimedTask) async -> TaskOutcome {
        ran.withLock { $0.append(task.id) }
        if delay > .zero {
            do { try await Task.sleep(for: delay) } catch { return .interrupted }
        }
        return .completed
    }
}

func poll(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return false
}

@Suite(.timeLimit(.minutes(10))) struct WorkSignalTests {
    @Test func notifyWakesAndGenerationClosesTheGap() async {
        let signal = WorkSignal()
        let before = signal.generation
        signal.notify()
        let start = ContinuousClock.now
        await signal.wait(after: before, timeout: .seconds(30)) // already notified: does not wait for the timeout
        #expect(ContinuousClock.now - start < .seconds(10))

        let generation = signal.generation
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await signal.wait(after: generation, timeout: .seconds(30)) }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(50))
                signal.notify()
            }
        }
        #expect(ContinuousClock.now - start < .seconds(20))

        let timed = ContinuousClock.now
        await signal.wait(after: signal.generation, timeout: .milliseconds(100))
        #expect(ContinuousClock.now - timed >= .milliseconds(100))
    }
}

@Suite(.timeLimit(.minutes(10))) struct TaskWorkerTests {
    @Test func notificationStartsAnIdleWorkerAtOnce() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let signal = WorkSignal()
            let handler = RecordingHandler()
            let listener = WorkListener(url: db.url, signal: signal, logger: db.logger)
            // A 30 s poll: only the notification can explain a start within seconds.
            let workers = (0..<2).map {
                TaskWorker(name: "w\($0)", queue: queue, signal: signal, handler: handler, logger: db.logger,
                           pollInterval: .seconds(30))
            }
            let group = ServiceGroup(services: [listener] + workers, logger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                // Let the workers go idle and the listener subscribe.
                try await Task.sleep(for: .milliseconds(500))
                let ids = try await insertTasks(db, issues: [1])
                try await db.client.query("SELECT pg_notify('asynccode_work', \("task:\(ids[0])"))", logger: db.logger)
                #expect(try await poll(timeout: .seconds(5)) { handler.ran.withLock { $0 } == ids })
                #expect(try await poll { try await db.count("tasks WHERE status = 'completed'") == 1 })
                let latency = try await db.scalar(
                    "SELECT (extract(epoch FROM started_at - created_at) * 1000)::float8 FROM tasks", as: Double.self) ?? -1
                print("enqueue-to-start with NOTIFY: \(String(format: "%.1f", latency)) ms")
                await group.triggerGracefulShutdown()
            }
        }
    }

    @Test func gracefulShutdownReleasesWhatIsRunning() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let signal = WorkSignal()
            let handler = RecordingHandler(delay: .seconds(60))
            let workers = (0..<3).map {
                TaskWorker(name: "w\($0)", queue: queue, signal: signal, handler: handler, logger: db.logger,
                           pollInterval: .milliseconds(50), gracePeriod: .milliseconds(300))
            }
            try await insertTasks(db, issues: [1, 2, 3])
            let group = ServiceGroup(services: workers, logger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                #expect(try await poll { try await db.count("tasks WHERE status = 'running'") == 3 })
                let stopping = ContinuousClock.now
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                // Released after the 300 ms grace, not after the handler's 60 s (a loaded CI machine took 5.1 s).
                #expect(ContinuousClock.now - stopping < .seconds(30))
            }
            #expect(try await db.count("tasks WHERE status = 'running'") == 0)
            #expect(try await db.count("tasks WHERE status = 'pending' AND attempts = 0") == 3)
        }
    }

    @Test func failuresAreRecordedWithTheirKind() async throws {
        struct Failing: TaskHandling {
            func handle(_ task: ClaimedTask) async -> TaskOutcome {
                task.issueNumber == 1
                    ? .failed(reason: "agent exited 2", retryable: false, retryAfter: .zero)
                    : .failed(reason: "GitHub 502", retryable: true, retryAfter: .seconds(3600))
            }
        }
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let worker = TaskWorker(name: "w", queue: queue, signal: WorkSignal(), handler: Failing(), logger: db.logger,
                                    pollInterval: .milliseconds(50))
            try await insertTasks(db, issues: [1, 2])
            let group = ServiceGroup(services: [worker], logger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let bothEnded = try await poll { try await db.count("tasks WHERE status <> 'running' AND attempts = 1") == 2 }
                #expect(bothEnded)
                await group.triggerGracefulShutdown()
            }
            #expect(try await db.scalar("SELECT status::text || ':' || error FROM tasks WHERE issue_number = 1", as: String.self)
                    == "failed:agent exited 2")
            #expect(try await db.scalar("SELECT status::text FROM tasks WHERE issue_number = 2", as: String.self) == "pending")
        }
    }
}

/// Claiming ahead (``RunAhead``): quick tasks are claimed several at a time, and those claimed behind a slow
/// one go back to the queue.
@Suite(.timeLimit(.minutes(10))) struct TaskWorkerRunAheadTests {
    /// Runs quick tasks, except the one on `slowIssue`, which waits (up to 10 s) for `release` to hold.
    final class Handler: TaskHandling {
        let db: TestDatabase
        let slowIssue: Int64?
        let release: String
        let ran = Mutex<[Int64]>([])
        /// The most tasks running at the start of a task: more than one means tasks were claimed ahead.
        let mostRunning = Mutex(0)
        let slowSawRelease = Mutex<Bool?>(nil)

        init(db: TestDatabase, slowIssue: Int64? = nil, release: String = "true") {
            self.db = db
            self.slowIssue = slowIssue
            self.release = release
        }

        func handle(_ task: ClaimedTask) async -> TaskOutcome {
            ran.withLock { $0.append(task.id) }
            let running = (try? await db.count("tasks WHERE status = 'running'")) ?? 0
            mostRunning.withLock { $0 = max($0, running) }
            if task.issueNumber == slowIssue {
                let released = (try? await poll(timeout: .seconds(20)) { try await db.count("tasks WHERE \(release)") > 0 }) ?? false
                slowSawRelease.withLock { $0 = released }
            }
            return .completed
        }
    }

    /// Returns the sum of the samples of metric `name` whose labels contain `labels`.
    static func samples(_ registry: PrometheusCollectorRegistry, named name: String, containing labels: String = "") -> Int {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self).split(separator: "\n")
            .filter { ($0.hasPrefix(name + " ") || $0.hasPrefix(name + "{")) && (labels.isEmpty || $0.contains(labels)) }
            .compactMap { Int($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    /// Quick means under a second here, so that a loaded test machine does not change what is tested.
    static let runAhead = RunAhead(maxTasks: 32, quickTask: .seconds(1), maxHold: .seconds(5))

    @Test func quickTasksAreClaimedSeveralAtATime() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let handler = Handler(db: db)
            let worker = TaskWorker(name: "w", queue: queue, signal: WorkSignal(), handler: handler, logger: db.logger,
                                    pollInterval: .milliseconds(50), runAhead: Self.runAhead)
            try await insertTasks(db, issues: (1...100).map(Int64.init))
            let group = ServiceGroup(services: [worker], logger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let done = try await poll(timeout: .seconds(60)) { try await db.count("tasks WHERE status = 'completed'") == 100 }
                #expect(done)
                await group.triggerGracefulShutdown()
            }
            #expect(handler.ran.withLock { $0.count } == 100)
            #expect(handler.mostRunning.withLock { $0 } > 1)
            #expect(try await db.count("tasks WHERE status = 'completed' AND attempts = 1") == 100)
        }
    }

    /// With one worker, the slow task returns once it is the only one running: the tasks claimed with it
    /// went back, and the completions before it were recorded. With two, once every other task completed,
    /// run by either worker: nothing waited for the slow one.
    @Test(arguments: [1, 2]) func tasksClaimedBehindASlowOneGoBackToTheQueue(workers count: Int) async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let signal = WorkSignal()
            let handler = Handler(db: db, slowIssue: 20, release: count == 1 ? """
                status = 'running' AND issue_number = 20
                  AND NOT EXISTS (SELECT 1 FROM tasks o WHERE o.status = 'running' AND o.issue_number <> 20)
                """ : """
                issue_number = 20 AND (SELECT count(*) FROM tasks WHERE status = 'completed') = 59
                """)
            let registry = PrometheusCollectorRegistry()
            let workers = (0..<count).map {
                TaskWorker(name: "w\($0)", queue: queue, signal: signal, handler: handler, logger: db.logger,
                           pollInterval: .milliseconds(50), metrics: PrometheusMetricsFactory(registry: registry),
                           runAhead: Self.runAhead)
            }
            try await insertTasks(db, issues: (1...60).map(Int64.init))
            let group = ServiceGroup(services: workers, logger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let done = try await poll(timeout: .seconds(60)) { try await db.count("tasks WHERE status = 'completed'") == 60 }
                #expect(done)
                await group.triggerGracefulShutdown()
            }
            #expect(handler.slowSawRelease.withLock { $0 } == true)
            let ran = handler.ran.withLock { $0 }
            #expect(ran.count == 60)
            #expect(Set(ran).count == 60)
            // A task given back was not counted as an attempt.
            #expect(try await db.count("tasks WHERE status = 'completed' AND attempts = 1") == 60)
            // Every completion is counted once, however it was recorded; with one worker, tasks went back.
            #expect(Self.samples(registry, named: "asynccode_tasks_total", containing: #"status="completed""#) == 60)
            if count == 1 { #expect(Self.samples(registry, named: "asynccode_tasks_given_back_total") > 0) }
        }
    }

    /// Tasks quick enough to grow the claim, but slow together: those still waiting when the hold ends go
    /// back, and each task still runs once, with its attempt counted once.
    @Test func tasksHeldTooLongGoBackToTheQueue() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let handler = RecordingHandler(delay: .milliseconds(20))
            let registry = PrometheusCollectorRegistry()
            let worker = TaskWorker(name: "w", queue: queue, signal: WorkSignal(), handler: handler, logger: db.logger,
                                    pollInterval: .milliseconds(50), metrics: PrometheusMetricsFactory(registry: registry),
                                    runAhead: RunAhead(maxTasks: 32, quickTask: .seconds(1), maxHold: .milliseconds(100)))
            try await insertTasks(db, issues: (1...80).map(Int64.init))
            let group = ServiceGroup(services: [worker], logger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let done = try await poll(timeout: .seconds(60)) { try await db.count("tasks WHERE status = 'completed'") == 80 }
                #expect(done)
                await group.triggerGracefulShutdown()
            }
            let ran = handler.ran.withLock { $0 }
            #expect(ran.count == 80)
            #expect(Set(ran).count == 80)
            #expect(try await db.count("tasks WHERE status = 'completed' AND attempts = 1") == 80)
            #expect(Self.samples(registry, named: "asynccode_tasks_given_back_total") > 0)
        }
    }

    @Test func aStopGivesBackTasksClaimedAhead() async throws {
        try await TestDatabase.with { db in
            let queue = TaskQueue(client: db.client, logger: db.logger)
            let handler = RecordingHandler(delay: .milliseconds(1))
            let worker = TaskWorker(name: "w", queue: queue, signal: WorkSignal(), handler: handler, logger: db.logger,
                                    pollInterval: .milliseconds(50), runAhead: Self.runAhead)
            try await insertTasks(db, issues: (1...500).map(Int64.init))
            let group = ServiceGroup(services: [worker], logger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let started = try await poll(timeout: .seconds(60)) { handler.ran.withLock { $0.count } >= 40 }
                #expect(started)
                await group.triggerGracefulShutdown()
            }
            let ran = handler.ran.withLock { $0 }
            #expect(ran.count < 500)
            #expect(Set(ran).count == ran.count)
            #expect(try await db.count("tasks WHERE status = 'running'") == 0)
            // What ran is recorded completed; what was claimed and not started is back as never claimed.
            #expect(try await db.count("tasks WHERE status = 'completed' AND attempts = 1") == ran.count)
            #expect(try await db.count("tasks WHERE status = 'pending' AND attempts = 0 AND started_at IS NULL") == 500 - ran.count)
        }
    }
}

@Suite struct ClaimAheadTests {
    static func task(_ id: Int64) -> ClaimedTask {
        ClaimedTask(id: id, kind: .code, repositoryID: 1, issueNumber: id, isPullRequest: false, agent: nil, prompt: "",
                    targetBranch: nil, attempt: 1, maxAttempts: 1)
    }

    @Test func tasksAreGivenBackOnceWhicheverComesFirst() {
        let tasks = [Self.task(1), Self.task(2)]
        // The claim arrives first: the give-back returns its tasks, and the worker takes none.
        let arrivedFirst = ClaimAhead()
        arrivedFirst.start()
        #expect(arrivedFirst.isPending)
        #expect(arrivedFirst.arrive(.init(carried: [], asked: 2, claimedAt: .now, recorded: [], tasks: tasks)).isEmpty)
        #expect(arrivedFirst.giveBack().map(\.id) == [1, 2])
        #expect(arrivedFirst.giveBack().isEmpty)
        #expect(arrivedFirst.take()?.tasks.isEmpty == true)
        #expect(!arrivedFirst.isPending)

        // The give-back comes first: the arrival returns the tasks to give back.
        let givenBackFirst = ClaimAhead()
        givenBackFirst.start()
        #expect(givenBackFirst.giveBack().isEmpty)
        #expect(givenBackFirst.arrive(.init(carried: [Self.task(9)], asked: 2, claimedAt: .now, recorded: [9], tasks: tasks)).map(\.id) == [1, 2])
        let arrival = givenBackFirst.take()
        #expect(arrival?.tasks.isEmpty == true)
        #expect(arrival?.recorded == [9])

        // No give-back: the worker takes them.
        let kept = ClaimAhead()
        kept.start()
        #expect(kept.arrive(.init(carried: [], asked: 2, claimedAt: .now, recorded: [], tasks: tasks)).isEmpty)
        #expect(kept.take()?.tasks.map(\.id) == [1, 2])
    }
}

@Suite(.timeLimit(.minutes(10))) struct TaskWorkerReapingTests {
    /// A task whose worker died is taken back by a live worker's periodic reaping and run.
    @Test func aLiveWorkerTakesBackADeadWorkersTask() async throws {
        try await TestDatabase.with { db in
            let shortLease = TaskQueue(client: db.client, logger: db.logger, leaseDuration: .milliseconds(100))
            let ids = try await insertTasks(db, issues: [1])
            _ = try #require(try await shortLease.claim(worker: "dead")) // never completed
            let handler = RecordingHandler()
            let worker = TaskWorker(name: "alive", queue: TaskQueue(client: db.client, logger: db.logger),
                                    signal: WorkSignal(), handler: handler, logger: db.logger,
                                    pollInterval: .milliseconds(50), reapInterval: .milliseconds(200))
            let group = ServiceGroup(services: [worker], logger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let ran = try await poll { handler.ran.withLock { $0 } == ids }
                #expect(ran)
                await group.triggerGracefulShutdown()
            }
            #expect(try await db.scalar("SELECT status::text || ':' || attempts FROM tasks", as: String.self) == "completed:2")
        }
    }
}
