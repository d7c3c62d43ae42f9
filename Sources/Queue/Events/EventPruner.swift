import Database
import Logging
import ServiceLifecycle

/// Deletes events older than the retention (`ASYNCCODE_EVENT_RETENTION_DAYS`, default 7) every `interval`,
/// never those of a task still pending or running.
public struct EventPruner: Service {
    let log: EventLog
    let retention: Duration
    let interval: Duration
    let logger: Logger

    public init(log: EventLog, retention: Duration, interval: Duration = .seconds(3600), logger: Logger) {
        self.log = log
        self.retention = retention
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await repeatEvery(interval, logger: logger, failure: "cannot prune old task events") {
                let deleted = try await log.prune(olderThan: retention)
                if deleted > 0 { logger.info("old task events pruned", metadata: ["events.deleted": "\(deleted)"]) }
            }
        }
    }
}
