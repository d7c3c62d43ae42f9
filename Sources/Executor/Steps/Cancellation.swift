import Queue

/// Sets `flag` once the task is asked to cancel (`/asynccode cancel`); returns then, or when cancelled.
func watchForCancel(taskID: Int64, flag: Flag, queue: TaskQueue, every interval: Duration) async {
    while !Task.isCancelled {
        if (try? await queue.isCancelRequested(taskID: taskID)) == true {
            flag.set()
            return
        }
        try? await Task.sleep(for: interval)
    }
}

/// Runs `operation`, cancelling it once `flag` is set; then throws ``CancelledOnRequest`` unless the
/// operation returned a value anyway (an agent run reports its own cancellation).
func cancellable<T: Sendable>(_ flag: Flag, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    if flag.isSet { throw CancelledOnRequest() }
    let result: Result<T, any Error> = await withTaskGroup(of: Result<T, any Error>?.self) { group in
        group.addTask {
            do { return .success(try await operation()) } catch { return .failure(error) }
        }
        group.addTask {
            while !flag.isSet, !Task.isCancelled { try? await Task.sleep(for: .milliseconds(100)) }
            return nil
        }
        defer { group.cancelAll() }
        while let next = await group.next() {
            if let next { return next }
            // The flag was set: stop the operation and take what it ends with.
            group.cancelAll()
        }
        return .failure(CancellationError())
    }
    switch result {
    case .success(let value):
        return value
    case .failure(let error):
        if flag.isSet { throw CancelledOnRequest() }
        throw error
    }
}
