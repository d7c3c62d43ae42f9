/// Lets one operation at a time run per key (here: mutating calls per installation), in arrival order.
actor KeyedSerialGate<Key: Hashable & Sendable> {
    private var busy: Set<Key> = []
    private var waiters: [Key: [CheckedContinuation<Void, Never>]] = [:]

    func withTurn<T: Sendable>(for key: Key, _ body: @Sendable () async throws -> T) async throws -> T {
        await acquire(key)
        do {
            let value = try await body()
            release(key)
            return value
        } catch {
            release(key)
            throw error
        }
    }

    private func acquire(_ key: Key) async {
        if busy.contains(key) {
            await withCheckedContinuation { continuation in
                waiters[key, default: []].append(continuation)
            }
        } else {
            busy.insert(key)
        }
    }

    private func release(_ key: Key) {
        if var queue = waiters[key], !queue.isEmpty {
            let next = queue.removeFirst()
            waiters[key] = queue.isEmpty ? nil : queue
            next.resume()  // the turn passes straight to the next waiter; `busy` stays set
        } else {
            busy.remove(key)
        }
    }
}
