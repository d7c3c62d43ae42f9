import Foundation
import Hummingbird
import NIOCore

/// Token buckets per client address and per signed-in user for the API: each holds `perMinute` requests and
/// refills at that rate; an empty bucket answers 429 with `Retry-After`.
actor RateLimiter {
    struct Limits: Sendable {
        /// Requests a minute for one signed-in user (and the burst they may spend at once).
        var perUser: Int
        /// Requests a minute from one address (anyone, signed in or not).
        var perAddress: Int
    }

    let limits: Limits
    private var buckets: [String: (tokens: Double, at: ContinuousClock.Instant)] = [:]

    init(_ limits: Limits) {
        self.limits = limits
    }

    /// Takes one request from `key`'s bucket; returns how long to wait when it is empty.
    func take(_ key: String, perMinute: Int) -> Duration? {
        let now = ContinuousClock.now
        let rate = Double(perMinute) / 60
        var (tokens, at) = buckets[key] ?? (Double(perMinute), now)
        let elapsed = now - at
        tokens = min(Double(perMinute), tokens + (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) * rate)
        if buckets.count > 100_000 { buckets.removeAll(keepingCapacity: true) }
        guard tokens >= 1 else {
            buckets[key] = (tokens, now)
            return .seconds(max(1, Int(((1 - tokens) / rate).rounded(.up))))
        }
        buckets[key] = (tokens - 1, now)
        return nil
    }

    func user(_ accountID: Int64) -> Duration? { take("user:\(accountID)", perMinute: limits.perUser) }
    func address(_ address: String) -> Duration? { take("address:\(address)", perMinute: limits.perAddress) }
}

extension Problem {
    static func tooManyRequests(_ wait: Duration) -> Problem {
        let seconds = max(1, Int(wait.components.seconds))
        return Problem(slug: "rate-limited", title: "Too many requests", status: .tooManyRequests,
                       detail: "try again in \(seconds) s", headers: [.retryAfter: String(seconds)])
    }
}

/// The server's request context: Hummingbird's, with the client's address (for per-address rate limits).
struct AppRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
