import Database
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import OpenSSLCrypto
import PostgresNIO
import Prometheus

/// The process's metrics: a Prometheus registry and the swift-metrics factory that feeds it, with
/// histogram buckets sized for what each timer measures.
public struct AppMetrics: Sendable {
    /// Where every metric lands; `GET /metrics` prints it.
    public let registry: PrometheusCollectorRegistry
    /// What the components record through (swift-metrics API).
    public let factory: PrometheusMetricsFactory

    /// Creates an empty registry and its factory.
    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            "asynccode_webhook_duration_seconds": [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                                                   .milliseconds(10), .milliseconds(20), .milliseconds(50), .milliseconds(100),
                                                   .milliseconds(250), .seconds(1)],
            "asynccode_queue_wait_seconds": [.milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
                                             .milliseconds(500), .seconds(1), .seconds(5), .seconds(30), .seconds(60),
                                             .seconds(300), .seconds(1800)],
            "asynccode_task_duration_seconds": [.seconds(1), .seconds(5), .seconds(15), .seconds(30), .seconds(60), .seconds(120),
                                                .seconds(300), .seconds(600), .seconds(1200), .seconds(1800), .seconds(3600)],
        ]
        self.registry = registry
        self.factory = factory
    }
}

/// `GET /metrics`: the Prometheus text format. Samples the queue from PostgreSQL at each scrape (tasks
/// pending and running, the oldest runnable task's wait), within `sampleTimeout`: a database that does not
/// answer makes `asynccode_database_up 0`, not a scrape that hangs. When `ASYNCCODE_METRICS_TOKEN` is set,
/// asks for `Authorization: Bearer <token>`.
struct MetricsController: Sendable {
    let metrics: AppMetrics
    let client: PostgresClient
    let token: String?
    let logger: Logger
    var sampleTimeout: Duration = .seconds(5)

    func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/metrics") { request, _ in await self.scrape(request) }
    }

    func scrape(_ request: Request) async -> Response {
        if let token {
            let given = request.headers[.authorization].map { Array($0.utf8) } ?? []
            guard ConstantTime.equals(given, Array("Bearer \(token)".utf8)) else {
                var headers = HTTPFields()
                headers[.wwwAuthenticate] = "Bearer"
                return Response(status: .unauthorized, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "metrics need the bearer token\n")))
            }
        }
        await sampleQueue()
        var buffer: [UInt8] = []
        metrics.registry.emit(into: &buffer)
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
    }

    /// Records the queue's state as gauges; `asynccode_database_up` says whether the sample worked.
    func sampleQueue() async {
        let factory = metrics.factory
        do {
            let rows = try await BoundedClient(client, timeout: sampleTimeout).query("""
                SELECT count(*) FILTER (WHERE status = 'pending'),
                       count(*) FILTER (WHERE status = 'pending' AND run_after <= now()),
                       count(*) FILTER (WHERE status = 'running'),
                       COALESCE(extract(epoch FROM now() - min(GREATEST(created_at, run_after))
                                FILTER (WHERE status = 'pending' AND run_after <= now())), 0)::float8
                FROM tasks WHERE status IN ('pending', 'running')
                """, logger: logger)
            for try await (pending, runnable, running, oldest) in rows.decode((Int64, Int64, Int64, Double).self) {
                Gauge(label: "asynccode_tasks", dimensions: [("status", "pending")], factory: factory).record(pending)
                Gauge(label: "asynccode_tasks", dimensions: [("status", "running")], factory: factory).record(running)
                Gauge(label: "asynccode_queue_depth", factory: factory).record(runnable)
                Gauge(label: "asynccode_queue_oldest_wait_seconds", factory: factory).record(oldest)
            }
            Gauge(label: "asynccode_database_up", factory: factory).record(1)
        } catch {
            logger.debug("metrics: cannot sample the queue", metadata: ["error": "\(describe(error))"])
            Gauge(label: "asynccode_database_up", factory: factory).record(0)
        }
    }
}
