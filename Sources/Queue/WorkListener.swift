import Database
import Logging
import PostgresNIO
import ServiceLifecycle

/// Listens on ``WorkNotifications/channel`` on a connection of its own and wakes idle workers.
///
/// A lost connection is opened again with backoff; meanwhile workers fall back to polling.
public struct WorkListener: Service {
    private let url: DatabaseURL
    private let signal: WorkSignal
    private let logger: Logger

    public init(url: DatabaseURL, signal: WorkSignal, logger: Logger) {
        self.url = url
        self.signal = signal
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var failures = 0
            while !Task.isCancelled {
                do {
                    let connection = try await PostgresConnection.connect(
                        configuration: url.connectionConfiguration(connectTimeout: .seconds(5)), id: 0, logger: logger)
                    do {
                        try await connection.listen(on: WorkNotifications.channel) { notifications in
                            failures = 0
                            // Work queued while we were not listening is found by the workers' next look.
                            signal.notify()
                            for try await _ in notifications { signal.notify() }
                        }
                        try? await connection.close()
                    } catch {
                        try? await connection.close()
                        throw error
                    }
                } catch {
                    if Task.isCancelled { return }
                    failures += 1
                    logger.debug("work listener reconnecting", metadata: ["error": "\(DatabaseProbe.reason(error))"])
                    let delay = min(Duration.milliseconds(100) * (1 << min(failures, 6)), .seconds(5))
                    try? await Task.sleep(for: delay)
                }
            }
        }
    }
}
