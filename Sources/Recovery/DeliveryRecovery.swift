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

/// Which deliveries recovery asks for again, and the lock its passes hold.
public enum RedeliveryPolicy {
    /// Whether a delivery we answered with `statusCode` can succeed when sent again: no answer (0, a
    /// timeout), 408, 429 or 5xx. Any other 4xx was our considered refusal and would be refused again.
    public static func isRedeliverable(statusCode: Int) -> Bool {
        statusCode <= 0 || statusCode == 408 || statusCode == 429 || (500..<600).contains(statusCode)
    }

    /// The PostgreSQL advisory lock a pass holds, on the session that runs it.
    static let lockKey: Int64 = 0x6173_796e_6372_6376 // "asyncrcv"
}

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
    /// Missing deliveries not asked for again because they cannot succeed (our answer was 4xx: a webhook
    /// secret that no longer matches, a body too large or malformed).
    public var unrecoverable = 0
    /// Whether the pass was skipped because another process was running one.
    public var skipped = false
}

/// Finds webhook deliveries that GitHub could not hand to us (the server was down, the database refused
/// them with 503) and asks GitHub to send them again: GitHub never does so by itself. Runs inside `serve`
/// every `interval`; a redelivery keeps its GUID, so one that did arrive after all is answered `duplicate`.
///
/// Only deliveries that can succeed when sent again are asked for (no response, 408, 429, 5xx); one we
/// refused with another 4xx (401 after a webhook secret was rotated, 400, 413, 415) would only be refused
/// again. One process at a time runs a pass: a pass holds a PostgreSQL advisory lock, and a process that
/// cannot take it skips its pass.
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
            await repeatEvery(interval, logger: logger, failure: "cannot recover webhook deliveries") {
                let report = try await recoverOnce()
                if report.skipped { return }
                Counter(label: "asynccode_recovery_redeliveries_total", dimensions: [("result", "asked")], factory: metrics)
                    .increment(by: report.redelivered)
                Counter(label: "asynccode_recovery_redeliveries_total", dimensions: [("result", "refused")], factory: metrics)
                    .increment(by: report.failed)
                if report.redelivered > 0 || report.failed > 0 || report.unrecoverable > 0 {
                    logger.notice("asked GitHub to redeliver failed webhook deliveries", metadata: [
                        "recovery.listed": "\(report.listed)", "recovery.missing": "\(report.missing)",
                        "recovery.redelivered": "\(report.redelivered)", "recovery.failed": "\(report.failed)",
                        "recovery.unrecoverable": "\(report.unrecoverable)",
                    ])
                }
            }
        }
    }

    /// One pass, unless another process is running one (the report says `skipped` then): reads the log,
    /// finds failed deliveries never recorded here that can succeed, asks for them again.
    public func recoverOnce() async throws -> RecoveryReport {
        if let report = try await withPassLock({ try await pass() }) { return report }
        logger.info("another process is running delivery recovery; skipping this pass")
        return RecoveryReport(skipped: true)
    }

    /// Runs `body` holding the pass lock on a session of its own; returns `nil` at once when another
    /// session holds it. The lock goes with the session if this process dies.
    private func withPassLock(_ body: () async throws -> RecoveryReport) async throws -> RecoveryReport? {
        try await database.client.withConnection { connection in
            let taken = try await connection.rows(
                "SELECT pg_try_advisory_lock(\(RedeliveryPolicy.lockKey))", logger: logger, deadline: .now() + .seconds(30)
            ).decode(Bool.self).first ?? false
            guard taken else { return nil }
            let result: Result<RecoveryReport, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            do {
                _ = try await connection.rows(
                    "SELECT pg_advisory_unlock(\(RedeliveryPolicy.lockKey))", logger: logger, deadline: .now() + .seconds(30))
            } catch {
                // A session that may still hold the lock must not go back to the pool.
                logger.warning("cannot release the delivery-recovery lock; closing its connection", metadata: ["error": "\(error)"])
                try? await connection.close()
            }
            return try result.get()
        }
    }

    private func pass() async throws -> RecoveryReport {
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
                    // The newest attempt of a GUID comes first: its answer decides, and it is the one redelivered.
                    failed[delivery.guid] = delivery
                }
            }
            guard let next = page.nextCursor, !page.deliveries.isEmpty else { break }
            cursor = next
        }
        let candidates = failed.filter { !succeeded.contains($0.key) }
        guard !candidates.isEmpty else { return report }
        let recorded = try await recordedGUIDs(Array(candidates.keys))
        let notRecorded = candidates.values.filter { !recorded.contains($0.guid) }
        let missing = notRecorded.filter { RedeliveryPolicy.isRedeliverable(statusCode: $0.statusCode) }.sorted { $0.id < $1.id }
        report.missing = missing.count
        report.unrecoverable = notRecorded.count - missing.count
        for delivery in notRecorded where !RedeliveryPolicy.isRedeliverable(statusCode: delivery.statusCode) {
            logger.debug("not asking again for a delivery we refused", metadata: [
                "github.delivery": "\(delivery.guid)", "github.event": "\(delivery.event)", "http.status": "\(delivery.statusCode)",
            ])
        }
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
