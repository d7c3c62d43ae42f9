import Database
import GitHub
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle

/// What delivery recovery asks of GitHub: the App's delivery log and redelivery.
public protocol DeliveryLog: Sendable {
    /// One page of the App's webhook deliveries, newest first, and the cursor of the next page.
    func listWebhookDeliveries(perPage: Int, cursor: String?) async throws -> (deliveries: [WebhookDelivery], nextCursor: String?)
    /// Asks GitHub to send a delivery again (same GUID, same body).
    func redeliverWebhookDelivery(id: Int64) async throws
}

extension GitHubClient: DeliveryLog {}

/// What one recovery pass did.
public struct RecoveryReport: Sendable, Hashable {
    /// Deliveries read from GitHub's log.
    public var listed = 0
    /// Failed deliveries whose GUID was never recorded here.
    public var missing = 0
    /// Redeliveries asked for.
    public var redelivered = 0
    /// Redeliveries GitHub refused or that could not be asked for.
    public var failed = 0
}

/// Finds webhook deliveries that GitHub could not hand to us (the server was down, the database refused
/// them with 503) and asks GitHub to send them again: GitHub never does so by itself. Runs inside `serve`
/// every `interval`; a redelivery keeps its GUID, so one that did arrive after all is answered `duplicate`.
public struct DeliveryRecovery<Log: DeliveryLog>: Service, CustomStringConvertible {
    let log: Log
    /// Bounds the one lookup per pass, so a database that stops answering cannot stop recovery for good.
    let database: BoundedClient
    let logger: Logger
    public let interval: Duration
    /// Pages of 100 deliveries read per pass (GitHub keeps three days of them).
    public let maxPages: Int
    /// Redeliveries asked for per pass.
    public let maxRedeliveries: Int

    let metrics: any MetricsFactory

    public init(
        log: Log, client: PostgresClient, logger: Logger, interval: Duration = .seconds(300), maxPages: Int = 10,
        maxRedeliveries: Int = 50, metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) {
        self.metrics = metrics
        self.log = log
        database = BoundedClient(client)
        self.logger = logger
        self.interval = interval
        self.maxPages = maxPages
        self.maxRedeliveries = maxRedeliveries
    }

    public var description: String { "DeliveryRecovery(every \(interval))" }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: interval)
                } catch {
                    return
                }
                do {
                    let report = try await recoverOnce()
                    Counter(label: "asynccode_recovery_redeliveries_total", dimensions: [("result", "asked")], factory: metrics)
                        .increment(by: report.redelivered)
                    Counter(label: "asynccode_recovery_redeliveries_total", dimensions: [("result", "refused")], factory: metrics)
                        .increment(by: report.failed)
                    if report.redelivered > 0 || report.failed > 0 {
                        logger.notice("asked GitHub to redeliver failed webhook deliveries", metadata: [
                            "recovery.listed": "\(report.listed)", "recovery.missing": "\(report.missing)",
                            "recovery.redelivered": "\(report.redelivered)", "recovery.failed": "\(report.failed)",
                        ])
                    }
                } catch {
                    logger.error("cannot recover webhook deliveries", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// One pass: reads the log, finds failed deliveries never recorded here, asks for them again.
    public func recoverOnce() async throws -> RecoveryReport {
        var report = RecoveryReport()
        var failed: [String: WebhookDelivery] = [:]
        var succeeded: Set<String> = []
        var cursor: String?
        for _ in 0..<maxPages {
            let page = try await log.listWebhookDeliveries(perPage: 100, cursor: cursor)
            report.listed += page.deliveries.count
            for delivery in page.deliveries {
                if (200..<300).contains(delivery.statusCode) {
                    succeeded.insert(delivery.guid)
                } else if failed[delivery.guid] == nil {
                    // The newest attempt of a GUID comes first: redeliver that one.
                    failed[delivery.guid] = delivery
                }
            }
            guard let next = page.nextCursor, !page.deliveries.isEmpty else { break }
            cursor = next
        }
        let candidates = failed.filter { !succeeded.contains($0.key) }
        guard !candidates.isEmpty else { return report }
        let recorded = try await recordedGUIDs(Array(candidates.keys))
        let missing = candidates.values.filter { !recorded.contains($0.guid) }.sorted { $0.id < $1.id }
        report.missing = missing.count
        for delivery in missing.prefix(maxRedeliveries) {
            do {
                try await log.redeliverWebhookDelivery(id: delivery.id)
                report.redelivered += 1
                logger.debug("redelivery asked", metadata: ["github.delivery": "\(delivery.guid)", "github.event": "\(delivery.event)"])
            } catch {
                report.failed += 1
                logger.debug("redelivery refused", metadata: ["github.delivery": "\(delivery.guid)", "error": "\(error)"])
            }
        }
        return report
    }

    private func recordedGUIDs(_ guids: [String]) async throws -> Set<String> {
        let rows = try await database.query("""
            SELECT delivery_guid FROM webhook_deliveries WHERE delivery_guid = ANY(\(guids))
            """, logger: logger)
        var found: Set<String> = []
        for try await guid in rows.decode(String.self) { found.insert(guid) }
        return found
    }
}
