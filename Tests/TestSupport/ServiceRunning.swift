import Logging
import ServiceLifecycle

/// A service that was still stopping when its shutdown limit passed (and was then cancelled).
public struct ShutdownOverrun: Error, CustomStringConvertible {
    public var limit: Duration
    public var description: String { "the service had not stopped \(limit) after its graceful shutdown began" }
}

/// Runs `service` while `body` runs, then stops it the way SIGTERM does: a graceful shutdown, in which a
/// service group stops its services in reverse order, so the database pools stop after the workers using
/// them. Only a shutdown still going after `shutdownLimit` is cancelled, and then reported as an error.
///
/// Cancelling first would close database connections under queries still in flight, and PostgresNIO can
/// leave such a query unanswered for good, which holds the service, and the test, forever.
public func withRunning<Result: Sendable>(
    _ service: some Service, logger: Logger, shutdownLimit: Duration = .seconds(60),
    _ body: () async throws -> Result
) async throws -> Result {
    let group = ServiceGroup(configuration: .init(services: [.init(service: service)], logger: logger))
    return try await withThrowingTaskGroup(of: Bool.self) { tasks in
        tasks.addTask {
            try await group.run()
            return true
        }
        let outcome: Swift.Result<Result, any Error>
        do {
            outcome = .success(try await body())
        } catch {
            outcome = .failure(error)
        }
        await group.triggerGracefulShutdown()
        tasks.addTask {
            try? await Task.sleep(for: shutdownLimit)
            return false
        }
        var overran = false
        do {
            overran = try await tasks.next() == false
        } catch {
            // The service ended with an error of its own; the test's checks say what matters.
            logger.debug("the service ended with an error", metadata: ["error": "\(error)"])
        }
        tasks.cancelAll()
        let result = try outcome.get()
        if overran { throw ShutdownOverrun(limit: shutdownLimit) }
        return result
    }
}
