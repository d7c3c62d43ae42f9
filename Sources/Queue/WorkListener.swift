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
            // Work queued while nobody listened is found by the workers' next look.
            await listenContinually(url: url, channel: WorkNotifications.channel, logger: logger,
                                    connected: { if $0 { signal.notify() } }, notified: { signal.notify() })
        }
    }
}

/// Listens on `channel` on a connection of its own until the task is cancelled, and opens it again with backoff
/// (100 ms, doubling to 5 s) whenever it is lost: `connected(true)` once it listens (what was sent while nobody
/// listened is for the caller to look up), `notified()` for each notification, `connected(false)` when it is lost.
public func listenContinually(
    url: DatabaseURL, channel: String, logger: Logger,
    connected: (Bool) -> Void = { _ in }, notified: () -> Void
) async {
    var failures = 0
    while !Task.isCancelled {
        do {
            let connection = try await PostgresConnection.connect(
                configuration: url.connectionConfiguration(connectTimeout: .seconds(5)), id: 0, logger: logger)
            do {
                try await connection.listen(on: channel) { notifications in
                    failures = 0
                    connected(true)
                    for try await _ in notifications { notified() }
                }
                try? await connection.close()
            } catch {
                try? await connection.close()
                throw error
            }
        } catch {
            connected(false)
            if Task.isCancelled { return }
            failures += 1
            logger.debug("listener reconnecting", metadata: ["db.channel": "\(channel)", "error": "\(DatabaseProbe.reason(error))"])
            try? await Task.sleep(for: min(.milliseconds(100) * (1 << min(failures, 6)), .seconds(5)))
        }
    }
}
