import Foundation

/// The time source and sleeper the GitHub layer waits with, so tests can check waits without sleeping.
public protocol GitHubClock: Sendable {
    /// Returns the current wall-clock time.
    func now() -> Date
    /// Suspends for `duration` (or throws on cancellation).
    func sleep(for duration: Duration) async throws
}

/// The real clock: `Date()` and `Task.sleep`.
public struct SystemGitHubClock: GitHubClock {
    /// Creates the system clock.
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
