import Database
import Logging
import Models
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Records verified deliveries and the work they ask for, committing many deliveries per transaction.
///
/// Each ``record(_:)`` call waits until its delivery is committed and then returns its own outcome. While
/// one transaction commits, new deliveries gather, so under load one commit answers many requests: the
/// intake is not bounded by one fsync per delivery. A batch that fails on the server is retried one
/// delivery at a time, so one bad delivery cannot fail its neighbours.
public final class DeliveryStore: Service, Sendable {
    /// Why a delivery could not be recorded.
    public struct StoreError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    private struct Pending: Sendable {
        var plan: DeliveryPlan
        var reply: Reply
    }

    /// Answers one ``record(_:)`` call, once: by its batch's result or, when the batch is stuck, at the deadline.
    private final class Reply: Sendable {
        private let continuation: Mutex<CheckedContinuation<DeliveryOutcome, any Error>?>

        init(_ continuation: CheckedContinuation<DeliveryOutcome, any Error>) {
            self.continuation = Mutex(continuation)
        }

        func resume(with result: Result<DeliveryOutcome, any Error>) {
            continuation.withLock { $0.take() }?.resume(with: result)
        }
    }

    private struct State: Sendable {
        var pending: [Pending] = []
        var idleFlushers: [CheckedContinuation<Void, Never>] = []
        var stopped = false
        /// Flushers started in place of stuck ones.
        var replaced = 0
    }

    private let client: PostgresClient
    private let fallbackURL: DatabaseURL?
    private let writer: DeliveryWriter
    private let logger: Logger
    private let maxBatch: Int
    private let flushers: Int
    private let commitTimeout: Duration
    private let leaseBudget: Duration
    private let state = Mutex(State())
    private let replacements = AsyncStream<Void>.makeStream()

    /// Creates a store writing through `client`.
    ///
    /// - Parameters:
    ///   - maxBatch: the most deliveries committed in one transaction.
    ///   - flushers: how many transactions may be in flight at once.
    ///   - commitTimeout: how long a batch may wait for the database before its deliveries fail (and GitHub
    ///     is answered 503, so it can deliver again), well inside GitHub's 10 s webhook timeout.
    ///   - fallbackURL: where to open a connection of its own when the pool cannot lend one (after an outage
    ///     the pool waits up to a minute between attempts; the database may be back long before).
    ///   - leaseBudget: how long to wait for the pool before using the fallback.
    public init(client: PostgresClient, logger: Logger, maxBatch: Int = 64, flushers: Int = 2,
                commitTimeout: Duration = .seconds(7), fallbackURL: DatabaseURL? = nil,
                leaseBudget: Duration = .seconds(2)) {
        self.client = client
        self.fallbackURL = fallbackURL
        self.writer = DeliveryWriter(logger: logger)
        self.logger = logger
        self.maxBatch = max(1, maxBatch)
        self.flushers = max(1, flushers)
        self.commitTimeout = commitTimeout
        self.leaseBudget = leaseBudget
    }

    /// Records `plan` and returns what came of it once it is committed.
    ///
    /// - Throws: ``StoreError`` when the store is stopped, or the database error when the commit failed.
    public func record(_ plan: DeliveryPlan) async throws -> DeliveryOutcome {
        try await withCheckedThrowingContinuation { continuation in
            enum Enqueued { case stopped, queued(CheckedContinuation<Void, Never>?) }
            let enqueued = state.withLock { state -> Enqueued in
                guard !state.stopped else { return .stopped }
                state.pending.append(Pending(plan: plan, reply: Reply(continuation)))
                return .queued(state.idleFlushers.popLast())
            }
            switch enqueued {
            case .stopped:
                continuation.resume(throwing: StoreError(description: "the delivery store is shutting down"))
            case .queued(let flusher):
                flusher?.resume()
            }
        }
    }

    /// Runs the flushers until graceful shutdown, then drains what is pending and returns.
    ///
    /// A flusher whose write is still running at its deadline (a database call that never returns) answers
    /// its deliveries 503 and is replaced, so the intake keeps its capacity; the stuck one ends with its call.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            for _ in 0..<flushers {
                group.addTask { await self.flush() }
            }
            group.addTask {
                try? await gracefulShutdown()
                self.stop()
            }
            for await _ in replacements.stream {
                group.addTask { await self.flush() }
            }
        }
    }

    /// How many stuck flushers may be replaced over the store's life (each holds one connection).
    var maxReplacements: Int { flushers * 4 }

    /// Stops taking deliveries; pending ones are still written.
    public func stop() {
        replacements.continuation.finish()
        let idle = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.stopped = true
            defer { state.idleFlushers = [] }
            return state.idleFlushers
        }
        idle.forEach { $0.resume() }
    }

    private func flush() async {
        while let batch = await nextBatch() {
            // A flusher that was replaced while stuck ends once its write returns.
            guard await writeAnswering(batch) else { return }
        }
    }

    /// Writes `batch`; if it has not ended by the answer deadline, answers its deliveries with an error and
    /// asks for a replacement flusher. Returns whether the write ended in time.
    private func writeAnswering(_ batch: [Pending]) async -> Bool {
        let answerDeadline = commitTimeout + .seconds(1)
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.write(batch)
                return true
            }
            group.addTask {
                try? await Task.sleep(for: answerDeadline)
                return false
            }
            var inTime = true
            while let ended = await group.next() {
                if ended {
                    group.cancelAll()
                    break
                }
                if Task.isCancelled { continue }
                inTime = false
                let error = StoreError(description: "the database did not answer within \(answerDeadline)")
                for item in batch { item.reply.resume(with: .failure(error)) }
                let replace = state.withLock { state -> Bool in
                    guard state.replaced < maxReplacements else { return false }
                    state.replaced += 1
                    return true
                }
                logger.error("a database write did not return; its deliveries were answered 503", metadata: [
                    "batch.size": "\(batch.count)", "flusher.replaced": "\(replace)",
                ])
                if replace { replacements.continuation.yield() } else { inTime = true }
            }
            return inTime
        }
    }

    private func nextBatch() async -> [Pending]? {
        while true {
            enum Step { case batch([Pending]), finished, wait }
            let step = state.withLock { state -> Step in
                if !state.pending.isEmpty {
                    let count = min(maxBatch, state.pending.count)
                    let batch = Array(state.pending.prefix(count))
                    state.pending.removeFirst(count)
                    return .batch(batch)
                }
                return state.stopped ? .finished : .wait
            }
            switch step {
            case .batch(let batch): return batch
            case .finished: return nil
            case .wait:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        if !state.pending.isEmpty || state.stopped { return true }
                        state.idleFlushers.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    private func write(_ batch: [Pending]) async {
        do {
            let outcomes = try await commit(batch.map(\.plan))
            for (item, outcome) in zip(batch, outcomes) { item.reply.resume(with: .success(outcome)) }
        } catch where batch.count > 1 && Self.isServerRefusal(error) {
            // The server refused something in the batch: isolate it by writing one delivery at a time.
            logger.debug("batch refused, retrying one by one", metadata: ["batch.size": "\(batch.count)"])
            for item in batch {
                do {
                    let outcome = try await commit([item.plan])
                    item.reply.resume(with: .success(outcome[0]))
                } catch {
                    item.reply.resume(with: .failure(error))
                }
            }
        } catch {
            for item in batch { item.reply.resume(with: .failure(error)) }
        }
    }

    private struct LeaseTimeout: Error {}

    /// Writes `plans` on a pooled connection; when the pool cannot lend one within `leaseBudget` (the
    /// database is down, or back but the pool is still backing off), on a connection of its own instead.
    private func writeBatch(_ plans: [DeliveryPlan], deadline: NIODeadline) async throws -> [DeliveryOutcome] {
        do {
            return try await writePooled(plans, deadline: deadline)
        } catch where !Self.isServerRefusal(error) && !Task.isCancelled {
            guard let fallbackURL else { throw error }
            // Safe to repeat: a batch that did commit meets its own GUIDs and answers duplicate.
            logger.debug("pool cannot lend a connection, using a direct one", metadata: [
                "error": "\(DatabaseProbe.reason(error))",
            ])
            let connection = try await PostgresConnection.connect(
                configuration: fallbackURL.connectionConfiguration(connectTimeout: .seconds(2)), id: -1, logger: logger)
            do {
                let outcomes = try await write(plans, on: connection, deadline: deadline)
                try? await connection.close()
                return outcomes
            } catch {
                try? await connection.close()
                throw error
            }
        }
    }

    private func writePooled(_ plans: [DeliveryPlan], deadline: NIODeadline) async throws -> [DeliveryOutcome] {
        guard fallbackURL != nil else {
            return try await client.withConnection { try await self.write(plans, on: $0, deadline: deadline) }
        }
        let leased = Flag()
        return try await withThrowingTaskGroup(of: [DeliveryOutcome]?.self) { group in
            group.addTask {
                try await self.client.withConnection { connection in
                    leased.set()
                    return try await self.write(plans, on: connection, deadline: deadline)
                }
            }
            group.addTask {
                try await Task.sleep(for: self.leaseBudget)
                return nil
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let outcomes = result { return outcomes }
                // The budget passed: give up only on a lease still waiting, never on a running write.
                if !leased.isSet { throw LeaseTimeout() }
            }
            throw LeaseTimeout()
        }
    }

    /// Writes `plans`: in a transaction when any of them changes more than its own delivery row; otherwise
    /// with the single INSERT of the delivery rows, atomic by itself, saving BEGIN and COMMIT round trips.
    /// Every statement must answer by `deadline` (a query PostgresNIO never answers cannot hold the batch).
    private func write(_ plans: [DeliveryPlan], on connection: PostgresConnection, deadline: NIODeadline) async throws -> [DeliveryOutcome] {
        let session = Session(connection: connection, deadline: deadline)
        guard plans.contains(where: \.hasEffects) else {
            return try await writer.write(plans, on: session)
        }
        return try await connection.transaction(logger: logger, deadline: deadline) {
            try await self.writer.write(plans, on: session)
        }
    }

    /// Returns whether the server refused a statement (as opposed to being unreachable).
    static func isServerRefusal(_ error: any Error) -> Bool {
        if let error = error as? PostgresTransactionError {
            return [error.closureError, error.commitError].contains { $0.map(isServerRefusal) ?? false }
        }
        // A statement that refuses a delivery (an upsert that found no row): isolate it too.
        if error is UpsertFoundNoRow { return true }
        return (error as? PSQLError)?.serverInfo != nil
    }

    private func commit(_ plans: [DeliveryPlan]) async throws -> [DeliveryOutcome] {
        // Waiting for a connection is cancellable: a database that is down fails the batch at the deadline.
        // A commit already sent may still land; GitHub's redelivery then meets the GUID and is a duplicate.
        let deadline = NIODeadline.now() + TimeAmount(commitTimeout)
        return try await withThrowingTaskGroup(of: [DeliveryOutcome].self) { group in
            group.addTask { try await self.writeBatch(plans, deadline: deadline) }
            group.addTask {
                try await Task.sleep(for: self.commitTimeout)
                throw StoreError(description: "the database did not answer within \(self.commitTimeout)")
            }
            defer { group.cancelAll() }
            guard let outcomes = try await group.next() else {
                throw StoreError(description: "the commit was cancelled")
            }
            return outcomes
        }
    }
}
