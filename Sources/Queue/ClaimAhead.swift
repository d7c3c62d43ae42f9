import Synchronization

/// A worker's claim of its next tasks, made while it still runs the ones in hand (see ``RunAhead``), and
/// the hand-off of what it got: to the worker when it needs them, or back to the queue when the task in
/// hand turned out slow meanwhile.
///
/// The claim runs in a child task; whichever of the claim's arrival and a give-back comes second returns the
/// tasks to give back, so they are given back exactly once and never also run.
final class ClaimAhead: Sendable {
    /// What the claim brought: the completions it carried and which of them were recorded (`nil`: the
    /// statement failed), and the tasks it claimed.
    struct Arrival: Sendable {
        var carried: [ClaimedTask]
        /// How many tasks the claim asked for.
        var asked: Int
        /// When the claim was made: the tasks are held from then.
        var claimedAt: ContinuousClock.Instant
        var recorded: Set<Int64>?
        var tasks: [ClaimedTask] = []
        var error: (any Error)?
    }

    private enum State: Sendable {
        case idle
        case inFlight
        /// A give-back was asked while the claim was in flight: its tasks go back when it arrives.
        case givingBack
        case arrived(Arrival)
    }

    private let state = Mutex(State.idle)

    /// Whether a claim was made and its arrival not yet taken.
    var isPending: Bool {
        state.withLock { state in
            if case .idle = state { return false }
            return true
        }
    }

    /// Marks a claim made.
    func start() {
        state.withLock { $0 = .inFlight }
    }

    /// Records the claim's result; returns the tasks to give back when a give-back came first.
    func arrive(_ arrival: Arrival) -> [ClaimedTask] {
        state.withLock { state in
            if case .givingBack = state {
                var kept = arrival
                kept.tasks = []
                state = .arrived(kept)
                return arrival.tasks
            }
            state = .arrived(arrival)
            return []
        }
    }

    /// Asks for the claimed tasks back; returns those to give back now (the claim arrived), or none (it is in
    /// flight, and its child gives them back on arrival).
    func giveBack() -> [ClaimedTask] {
        state.withLock { state in
            switch state {
            case .idle, .givingBack: return []
            case .inFlight:
                state = .givingBack
                return []
            case .arrived(var arrival):
                defer {
                    arrival.tasks = []
                    state = .arrived(arrival)
                }
                return arrival.tasks
            }
        }
    }

    /// Takes the arrival once the claim's child has ended, and makes room for the next claim.
    func take() -> Arrival? {
        state.withLock { state in
            defer { state = .idle }
            if case .arrived(let arrival) = state { return arrival }
            return nil
        }
    }
}
