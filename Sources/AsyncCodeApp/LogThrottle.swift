import Synchronization

/// Lets at most `limit` log lines through per `interval` and counts the ones it holds back, so a flood of
/// refused requests (garbage on the webhook port) cannot fill the disk or cost a log write each.
public final class LogThrottle: Sendable {
    private struct Window {
        var start: ContinuousClock.Instant
        var used = 0
        var held = 0
    }

    private let limit: Int
    private let interval: Duration
    private let window: Mutex<Window>

    /// Creates a throttle passing `limit` lines per `interval`.
    public init(limit: Int = 20, interval: Duration = .seconds(60), now: ContinuousClock.Instant = .now) {
        self.limit = max(1, limit)
        self.interval = interval
        window = Mutex(Window(start: now))
    }

    /// Returns `nil` when the line is to be held back; otherwise how many lines were held back since the
    /// last one let through (to say so in it).
    public func admit(now: ContinuousClock.Instant = .now) -> Int? {
        window.withLock { window in
            if now - window.start >= interval {
                window.start = now
                window.used = 0
            }
            guard window.used < limit else {
                window.held += 1
                return nil
            }
            window.used += 1
            defer { window.held = 0 }
            return window.held
        }
    }
}
