import Synchronization

/// One stream's place in the event feed: a bounded mailbox the ``EventHub`` fills, and where the stream is.
///
/// A subscription starts behind (it first reads what it missed from the table, ``Next/catchUp(after:through:)``)
/// and falls behind again when its mailbox overflows (a slow client): it then reads the table again instead of
/// holding more in memory. Either way it never gets an event twice or skips one.
public final class EventSubscription: Sendable {
    /// What the stream does next.
    public enum Next: Sendable, Equatable {
        /// Send these (already checked against the audience).
        case events([TaskEvent])
        /// Read the table for ids in `after + 1 ... through` (final ids) and send what the audience may see.
        case catchUp(after: Int64, through: Int64)
        /// Nothing happened within the timeout (time for a heartbeat).
        case idle
        /// The server is stopping, or the subscription was cancelled.
        case finished
    }

    struct State {
        var audience: EventAudience
        var buffer: [TaskEvent] = []
        /// The last id handed to the stream (or read past in a catch-up).
        var position: Int64
        /// The hub's final id when it last offered events.
        var offeredThrough: Int64
        var behind = true
        var finished = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    /// How many events may wait in the mailbox before the stream falls behind.
    public let capacity: Int
    private let state: Mutex<State>

    init(after position: Int64, hubCursor: Int64, audience: EventAudience, capacity: Int) {
        self.capacity = capacity
        state = Mutex(State(audience: audience, position: position, offeredThrough: hubCursor))
    }

    /// The audience checked for each event (narrowed or widened as the user's access changes).
    public var audience: EventAudience {
        get { state.withLock { $0.audience } }
        set { state.withLock { $0.audience = newValue } }
    }

    /// Returns what to do next, waiting at most `timeout` for events.
    public func next(timeout: Duration) async -> Next {
        if let ready = take() { return ready }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: timeout)
                self.wake()
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { state -> Bool in
                        if state.finished || state.behind || !state.buffer.isEmpty { return true }
                        state.waiter = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                self.wake()
            }
            group.cancelAll()
        }
        if Task.isCancelled { return .finished }
        return take() ?? .idle
    }

    private func take() -> Next? {
        state.withLock { state in
            if state.finished { return .finished }
            if state.behind {
                state.behind = false
                let after = state.position
                state.position = max(state.position, state.offeredThrough)
                return after < state.offeredThrough ? .catchUp(after: after, through: state.offeredThrough) : nil
            }
            guard let last = state.buffer.last else { return nil }
            let events = state.buffer
            state.buffer.removeAll(keepingCapacity: true)
            state.position = last.id
            return .events(events)
        }
    }

    /// Called by the hub with a batch of final events, all ids up to `horizon` being final.
    func offer(_ events: [TaskEvent], through horizon: Int64) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.finished else { return nil }
            state.offeredThrough = max(state.offeredThrough, horizon)
            if !state.behind {
                let floor = max(state.position, state.buffer.last?.id ?? 0)
                let visible = events.filter { $0.id > floor && state.audience.allows($0) }
                if state.buffer.count + visible.count > capacity {
                    state.buffer.removeAll()
                    state.behind = true
                } else {
                    state.buffer.append(contentsOf: visible)
                }
            }
            guard state.behind || !state.buffer.isEmpty else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Ends the subscription: the stream's next ``next(timeout:)`` answers ``Next/finished``.
    public func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    private func wake() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}

