import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Whether the setup wizard has registered the App: one registration at a time, finished once.
final class SetupCompletion: Sendable {
    private struct State {
        var configuration: AppConfiguration?
        var finishing = false
        var stopped = false
        var waiters: [CheckedContinuation<AppConfiguration?, Never>] = []
    }

    private let state = Mutex(State())

    /// Returns whether the App is registered.
    var isComplete: Bool { state.withLock { $0.configuration != nil } }

    /// Claims the right to finish a registration; false when one is finishing or finished.
    func beginFinishing() -> Bool {
        state.withLock { state in
            guard state.configuration == nil, !state.finishing else { return false }
            state.finishing = true
            return true
        }
    }

    /// Gives the claim back after a registration failed.
    func abandonFinishing() {
        state.withLock { $0.finishing = false }
    }

    /// Records the registered App's configuration and wakes the waiting services.
    func complete(with configuration: AppConfiguration) {
        let waiters = state.withLock { state in
            state.configuration = configuration
            state.finishing = false
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: configuration) }
    }

    /// Wakes the waiting services with nothing (the process is stopping).
    func stop() {
        let waiters = state.withLock { state in
            state.stopped = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: nil) }
    }

    /// Returns the registered App's configuration once there is one, or nil when the process stops first.
    func wait() async -> AppConfiguration? {
        await withCheckedContinuation { continuation in
            let now: AppConfiguration?? = state.withLock { state in
                if let configuration = state.configuration { return .some(configuration) }
                if state.stopped { return .some(nil) }
                state.waiters.append(continuation)
                return .none
            }
            if let now { continuation.resume(returning: now) }
        }
    }
}

/// Starts the workers and delivery recovery once the setup wizard has registered the App, without a
/// restart; they stop with the process like the other services.
struct DeferredAppServices: Service, CustomStringConvertible {
    let completion: SetupCompletion
    let migrated: StartGate
    let client: PostgresClient
    let logger: Logger
    let metrics: any MetricsFactory
    var description: String { "DeferredAppServices" }

    func run() async throws {
        let configuration = await withGracefulShutdownHandler {
            await completion.wait()
        } onGracefulShutdown: {
            completion.stop()
        }
        guard let configuration else { return }
        await migrated.wait()
        let services = try await makeAppServices(configuration: configuration, client: client, logger: logger, metrics: metrics)
        guard !services.isEmpty else { return }
        logger.info("GitHub App registered: starting the workers", metadata: ["workers": "\(configuration.workers)"])
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, logger: logger))
        try await withThrowingTaskGroup(of: Bool.self) { tasks in
            tasks.addTask {
                try await group.run()
                return true
            }
            tasks.addTask {
                try? await gracefulShutdown()
                await group.triggerGracefulShutdown()
                return false
            }
            while let groupEnded = try await tasks.next() {
                if groupEnded { tasks.cancelAll() }
            }
        }
    }
}
