@testable import Queue
import Synchronization
import Testing

/// A gate a test opens once.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct BatchCombinerTests {
    @Test func requestsArrivingDuringABatchShareTheNextOne() async throws {
        let batches = Mutex<[[Int]]>([])
        let firstGate = Gate()
        let combiner = BatchCombiner<Int, Int>(maxBatch: 64) { requests in
            let isFirst = batches.withLock { batches -> Bool in
                batches.append(requests)
                return batches.count == 1
            }
            if isFirst { await firstGate.wait() }
            return requests.map { $0 * 10 }
        }
        let answers = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            group.addTask { (0, try await combiner.submit(0)) }
            #expect(try await poll { batches.withLock { $0.count } == 1 })
            for value in 1...9 { group.addTask { (value, try await combiner.submit(value)) } }
            #expect(try await poll { combiner.waitingCount == 9 })
            firstGate.open()
            var answers: [Int: Int] = [:]
            for try await (value, answer) in group { answers[value] = answer }
            return answers
        }
        #expect(answers == Dictionary(uniqueKeysWithValues: (0...9).map { ($0, $0 * 10) }))
        // One batch for the first request, one for the nine that waited for it.
        #expect(batches.withLock { $0.map(\.count) } == [1, 9])
    }

    @Test func twoBatchesInFlightThenTheWaitersShareOne() async throws {
        let batches = Mutex<[[Int]]>([])
        let gate = Gate()
        let combiner = BatchCombiner<Int, Int>(maxBatch: 64, maxInFlight: 2) { requests in
            batches.withLock { $0.append(requests) }
            await gate.wait()
            return requests.map { $0 + 100 }
        }
        let answers = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            group.addTask { (0, try await combiner.submit(0)) }
            #expect(try await poll { batches.withLock { $0.count } == 1 })
            group.addTask { (1, try await combiner.submit(1)) }
            #expect(try await poll { batches.withLock { $0.count } == 2 }, "a second batch starts beside the first")
            for value in 2...5 { group.addTask { (value, try await combiner.submit(value)) } }
            #expect(try await poll { combiner.waitingCount == 4 })
            gate.open()
            var answers: [Int: Int] = [:]
            for try await (value, answer) in group { answers[value] = answer }
            return answers
        }
        #expect(answers == Dictionary(uniqueKeysWithValues: (0...5).map { ($0, $0 + 100) }))
        let sizes = batches.withLock { $0.map(\.count) }
        #expect(sizes.prefix(2) == [1, 1])
        #expect(sizes.reduce(0, +) == 6)
        #expect(sizes.count <= 4, "the four waiters went in at most two batches: \(sizes)")
    }

    @Test func aBatchPastItsDeadlineAnswersItsWaitersAndHandsOn() async throws {
        let first = Gate()
        let stuck = Gate()
        let calls = Mutex(0)
        // Long enough that the first batch, held while the test lines up its waiters, is not itself past it
        // on a loaded machine.
        let combiner = BatchCombiner<Int, Int>(maxBatch: 64, deadline: .seconds(2)) { requests in
            let call = calls.withLock { calls -> Int in
                calls += 1
                return calls
            }
            if call == 1 { await first.wait() }
            if call == 2 { await stuck.wait() } // a database call that does not return
            return requests
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let answer = try await combiner.submit(1)
                #expect(answer == 1)
            }
            #expect(try await poll { calls.withLock { $0 } == 1 })
            // 2 leads the second batch, which gets stuck; 3 waits in it.
            group.addTask {
                let answer = try await combiner.submit(2)
                #expect(answer == 2)
            }
            #expect(try await poll { combiner.waitingCount == 1 })
            group.addTask {
                await #expect(throws: BatchDeadlineExceeded.self) { _ = try await combiner.submit(3) }
            }
            #expect(try await poll { combiner.waitingCount == 2 })
            first.open()
            // 3 is answered at the deadline, and the combiner goes on while the stuck call still runs.
            #expect(try await poll { calls.withLock { $0 } == 2 })
            let started = ContinuousClock.now
            #expect(try await combiner.submit(4) == 4)
            // Answered once the stuck batch's deadline handed on, not when the stuck call returns (never, here).
            #expect(ContinuousClock.now - started < .seconds(20))
            #expect(calls.withLock { $0 } == 3)
            stuck.open()
            try await group.waitForAll()
        }
    }

    @Test func aFailedBatchFailsEveryoneInIt() async throws {
        struct Refused: Error {}
        let gate = Gate()
        let calls = Mutex(0)
        let combiner = BatchCombiner<Int, Int>(maxBatch: 64) { requests in
            let call = calls.withLock { calls -> Int in
                calls += 1
                return calls
            }
            if call == 1 {
                await gate.wait()
                return requests
            }
            throw Refused()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { _ = try await combiner.submit(0) }
            #expect(try await poll { calls.withLock { $0 } == 1 })
            for value in 1...3 {
                group.addTask { await #expect(throws: Refused.self) { _ = try await combiner.submit(value) } }
            }
            #expect(try await poll { combiner.waitingCount == 3 })
            gate.open()
            try await group.waitForAll()
        }
        #expect(calls.withLock { $0 } == 2)
    }
}
