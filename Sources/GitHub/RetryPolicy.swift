/// How the client retries failures and waits out rate limits.
public struct RetryPolicy: Sendable {
    /// Tries in all for a request that fails with 5xx or a connection error (1 = no retry).
    public var maxAttempts: Int = 4
    /// The first backoff; each later one doubles.
    public var baseDelay: Duration = .milliseconds(500)
    /// The longest backoff.
    public var maxDelay: Duration = .seconds(30)
    /// How many rate-limit answers in a row the client waits out before it gives up.
    public var maxRateLimitRetries: Int = 3
    /// The longest single rate-limit wait; a longer one fails with ``GitHubError/Code/rateLimited``
    /// so that the caller can reschedule instead of holding a worker.
    public var maxRateLimitWait: Duration = .seconds(15 * 60)
    /// The wait after a secondary rate limit that names no `Retry-After`.
    public var secondaryRateLimitWait: Duration = .seconds(60)

    /// Creates the default policy.
    public init() {}

    /// Returns the backoff before retry number `retry` (1-based): `baseDelay · 2^(retry−1)`,
    /// capped at `maxDelay`, with "equal jitter" (uniform in the upper half).
    public func backoff(retry: Int, random: Double = Double.random(in: 0...1)) -> Duration {
        let exponent = min(max(retry - 1, 0), 30)
        let full = min(baseDelay.seconds * Double(1 << exponent), maxDelay.seconds)
        let jittered = full / 2 + full / 2 * random
        return .milliseconds(Int64((jittered * 1000).rounded()))
    }
}
