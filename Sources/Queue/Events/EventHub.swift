import Database
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Follows `task_events` for every stream of this process: one LISTEN connection (reopened with backoff), one
/// reader that advances a final cursor (``EventLog``), and a bounded mailbox per subscriber.
///
/// NOTIFY only wakes the reader: what is delivered is what the table holds past the cursor, so a lost
/// connection or a missed notification delays events (the reader also looks every `pollInterval`) but never
/// loses them. On shutdown every subscription ends, so the streams close cleanly.
public final class EventHub: Service, Sendable {
    private let log: EventLog
    private let url: DatabaseURL
    private let logger: Logger
    private let pollInterval: Duration
    private let capacity: Int
    private let gauge: Gauge
    private let state = Mutex(HubState())
    /// Whether the LISTEN connection is up (the reader looks more often while it is not).
    private let connected = Atomic<Bool>(false)
    private let ready = Mutex<[CheckedContinuation<Void, Never>]?>([])
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    struct HubState {
        var cursor: Int64 = 0
        var subscribers: [ObjectIdentifier: EventSubscription] = [:]
        var stopped = false
    }

    /// - Parameters:
    ///   - pollInterval: how often the table is read without a notification (a safety net).
    ///   - capacity: events a subscriber's mailbox holds before it reads the table instead.
    public init(log: EventLog, url: DatabaseURL, pollInterval: Duration = .seconds(2), capacity: Int = 1000,
                logger: Logger, metrics: MetricsFactory = MetricsSystem.factory) {
        self.log = log
        self.url = url
        self.pollInterval = pollInterval
        self.capacity = capacity
        self.logger = logger
        gauge = Gauge(label: "asynccode_event_streams", factory: metrics)
        (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// The highest id this process has read past; every id up to it is final.
    public var cursor: Int64 { state.withLock { $0.cursor } }

    /// Returns the cursor once it has reached `target` (an id already committed), or after `timeout` whatever it is:
    /// a page rendered then shows every event committed before it was asked for.
    public func caughtUp(to target: Int64, within timeout: Duration) async -> Int64 {
        let deadline = ContinuousClock.now + timeout
        if cursor < target { wake.yield() }
        while cursor < target, ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(2))
        }
        return cursor
    }

    /// Subscribes a stream that has seen every event up to `after` (the hub's cursor when `nil`: only what comes
    /// next). Waits until the hub knows where the table ends.
    public func subscribe(after: Int64?, audience: EventAudience) async -> EventSubscription {
        await waitUntilReady()
        return state.withLock { state in
            let subscription = EventSubscription(after: after ?? state.cursor, hubCursor: state.cursor, audience: audience, capacity: capacity)
            if state.stopped { subscription.finish() } else { state.subscribers[ObjectIdentifier(subscription)] = subscription }
            gauge.record(state.subscribers.count)
            return subscription
        }
    }

    /// Ends and forgets a subscription (its stream closed).
    public func unsubscribe(_ subscription: EventSubscription) {
        subscription.finish()
        state.withLock { state in
            state.subscribers[ObjectIdentifier(subscription)] = nil
            gauge.record(state.subscribers.count)
        }
    }

    /// Waits until the hub has read where the table ends (at start).
    public func waitUntilReady() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = ready.withLock { waiting -> Bool in
                guard waiting != nil else { return true }
                waiting!.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await cancelWhenGracefulShutdown {
                await self.follow()
            }
        } onGracefulShutdown: {
            self.stop()
        }
        stop()
    }

    private func follow() async {
        // Where the table ends now: everything before it is history, not news.
        var failures = 0
        while !Task.isCancelled {
            do {
                let horizon = try await log.horizon()
                state.withLock { $0.cursor = horizon }
                break
            } catch {
                failures += 1
                logger.debug("cannot read where the events end yet", metadata: ["error": "\(DatabaseProbe.reason(error))"])
                try? await Task.sleep(for: min(.milliseconds(100) * (1 << min(failures, 6)), .seconds(5)))
            }
        }
        if Task.isCancelled { return }
        for waiter in ready.withLock({ waiting -> [CheckedContinuation<Void, Never>] in defer { waiting = nil }; return waiting ?? [] }) {
            waiter.resume()
        }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.listen() }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: self.connected.load(ordering: .relaxed) ? self.pollInterval : .milliseconds(250))
                    self.wake.yield()
                }
            }
            for await _ in wakeups {
                if Task.isCancelled { break }
                do {
                    try await readAhead()
                } catch {
                    logger.debug("cannot read events yet", metadata: ["error": "\(DatabaseProbe.reason(error))"])
                }
            }
            group.cancelAll()
        }
    }

    /// Reads the table past the cursor and hands what is final to the subscribers.
    private func readAhead() async throws {
        while true {
            let cursor = self.cursor
            let events = try await log.read(after: cursor, limit: 1000)
            guard let last = events.last else { return }
            var contiguous = 0
            while contiguous < events.count, events[contiguous].id == cursor + Int64(contiguous) + 1 { contiguous += 1 }
            if contiguous == events.count {
                publish(events, through: last.id)
                if events.count < 1000 { return }
                continue
            }
            // A gap: an id still being written, or rolled back. Past the horizon every id below it is final.
            if contiguous > 0 { publish(Array(events[..<contiguous]), through: events[contiguous - 1].id) }
            let horizon = try await log.horizon()
            var after = self.cursor
            while after < horizon {
                let final = try await log.read(after: after, through: horizon, limit: 1000)
                publish(final, through: final.count < 1000 ? horizon : final.last!.id)
                after = self.cursor
            }
            if last.id >= horizon && events.count < 1000 { return }
        }
    }

    private func publish(_ events: [TaskEvent], through horizon: Int64) {
        let subscribers = state.withLock { state -> [EventSubscription] in
            state.cursor = max(state.cursor, horizon)
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.offer(events, through: horizon) }
    }

    private func listen() async {
        await listenContinually(url: url, channel: EventLog.channel, logger: logger, connected: { up in
            self.connected.store(up, ordering: .relaxed)
            // Whatever was written while nobody listened is read now.
            if up { self.wake.yield() }
        }, notified: { self.wake.yield() })
    }

    private func stop() {
        let subscribers = state.withLock { state -> [EventSubscription] in
            state.stopped = true
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
        // Streams waiting for the start get a finished subscription.
        for waiter in ready.withLock({ waiting -> [CheckedContinuation<Void, Never>] in defer { waiting = nil }; return waiting ?? [] }) {
            waiter.resume()
        }
        wake.finish()
        gauge.record(0)
    }
}
