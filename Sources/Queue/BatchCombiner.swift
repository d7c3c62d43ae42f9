import Synchronization

/// Runs concurrent requests of one kind as batches: one statement answers everyone who asked while the
/// previous one was in flight.
///
/// There is no background task. A caller that finds fewer than `maxInFlight` batches running runs a batch
/// of one (itself); callers arriving while none can start wait, and when a batch ends the first of them runs
/// the next batch for all of them. An idle system therefore pays no wait, and a busy one pays one round trip per batch instead of
/// one per request. At most `maxInFlight` batches run at once, except that a batch still running at its
/// deadline (a database call that never returns) answers its waiters with ``BatchDeadlineExceeded`` and
/// hands the next batch to them: one stuck call can hold up only the caller that made it.
public final class BatchCombiner<Request: Sendable, Response: Sendable>: Sendable {
    /// Runs one batch; returns one response per request, in order.
    public typealias Execute = @Sendable ([Request]) async throws -> [Response]

    private enum Turn: Sendable {
        case answered(Response)
        case failed(any Error)
        /// It is this waiter's turn to run the next batch.
        case lead
    }

    private struct Waiter: Sendable {
        var request: Request
        var continuation: CheckedContinuation<Turn, Never>
    }

    private struct State: Sendable {
        var running = 0
        var waiting: [Waiter] = []
    }

    private let maxBatch: Int
    private let maxInFlight: Int
    private let deadline: Duration
    private let execute: Execute
    private let state = Mutex(State())

    /// Creates a combiner that runs at most `maxBatch` requests per call of `execute` and at most
    /// `maxInFlight` calls at once; a batch still running after `deadline` fails its waiters (not its leader,
    /// which waits for its own call).
    public init(maxBatch: Int, maxInFlight: Int = 1, deadline: Duration = .seconds(15), execute: @escaping Execute) {
        self.maxBatch = max(1, maxBatch)
        self.maxInFlight = max(1, maxInFlight)
        self.deadline = deadline
        self.execute = execute
    }

    /// How many requests wait for the batch in flight to end.
    var waitingCount: Int { state.withLock { $0.waiting.count } }

    /// Returns the response to `request`, run in a batch with whatever else was asked meanwhile.
    public func submit(_ request: Request) async throws -> Response {
        let leads = state.withLock { state -> Bool in
            if state.running >= maxInFlight { return false }
            state.running += 1
            return true
        }
        if leads { return try await runBatches(first: request) }
        let turn = await withCheckedContinuation { (continuation: CheckedContinuation<Turn, Never>) in
            let leadsNow = state.withLock { state -> Bool in
                if state.running < maxInFlight {
                    state.running += 1
                    return true
                }
                state.waiting.append(Waiter(request: request, continuation: continuation))
                return false
            }
            if leadsNow { continuation.resume(returning: .lead) }
        }
        switch turn {
        case .answered(let response): return response
        case .failed(let error): throw error
        case .lead: return try await runBatches(first: request)
        }
    }

    /// Runs a batch led by `first` and whoever waits; hands the next batch to the first of the newcomers.
    private func runBatches(first: Request) async throws -> Response {
        let others = state.withLock { state -> [Waiter] in
            let count = min(maxBatch - 1, state.waiting.count)
            defer { state.waiting.removeFirst(count) }
            return Array(state.waiting.prefix(count))
        }
        let requests = [first] + others.map(\.request)
        let settled = Mutex(false)
        // Answers the waiters and hands the next batch on, once: when the batch ends or at its deadline.
        let settle: @Sendable (Result<[Response], any Error>) -> Void = { result in
            let first = settled.withLock { done -> Bool in
                defer { done = true }
                return !done
            }
            guard first else { return }
            let next = self.state.withLock { state -> Waiter? in
                guard !state.waiting.isEmpty else {
                    state.running -= 1
                    return nil
                }
                return state.waiting.removeFirst()
            }
            switch result {
            case .success(let responses):
                for (waiter, response) in zip(others, responses.dropFirst()) {
                    waiter.continuation.resume(returning: .answered(response))
                }
            case .failure(let error):
                for waiter in others { waiter.continuation.resume(returning: .failed(error)) }
            }
            next?.continuation.resume(returning: .lead)
        }
        let execute = self.execute
        let deadline = self.deadline
        let result = await withTaskGroup(of: Result<[Response], any Error>?.self) { group in
            group.addTask {
                do {
                    let responses = try await execute(requests)
                    guard responses.count == requests.count else {
                        return .failure(BatchCountMismatch(expected: requests.count, got: responses.count))
                    }
                    return .success(responses)
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                try? await Task.sleep(for: deadline)
                return nil
            }
            while let next = await group.next() {
                if let result = next {
                    group.cancelAll()
                    return result
                }
                // The deadline passed first: the waiters are answered, this caller waits for its own call.
                if !Task.isCancelled { settle(.failure(BatchDeadlineExceeded(deadline: deadline))) }
            }
            return .failure(CancellationError())
        }
        settle(result)
        return try result.get()[0]
    }
}

/// A batch that had not ended by its combiner's deadline.
public struct BatchDeadlineExceeded: Error, CustomStringConvertible {
    public var deadline: Duration
    public var description: String { "the database did not answer within \(deadline)" }
}

/// A batch function that answered a different number of requests than it was given.
struct BatchCountMismatch: Error, CustomStringConvertible {
    var expected: Int
    var got: Int
    var description: String { "a batch of \(expected) requests returned \(got) responses" }
}
