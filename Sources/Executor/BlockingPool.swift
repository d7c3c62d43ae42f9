import NIOPosix

/// Blocking work (walks of a checkout's files) run on NIO's blocking thread pool, so the event loops that
/// serve webhooks and run Swift concurrency are not held by it.
enum BlockingPool {
    /// Runs `body` on the pool and returns its result. It runs even when the calling task is cancelled:
    /// what is run here is cleanup that must happen. A pool already shut down runs it on the caller's thread.
    static func run<Result: Sendable>(_ body: @escaping @Sendable () -> Result) async -> Result {
        await withCheckedContinuation { continuation in
            NIOThreadPool.singleton.submit { _ in continuation.resume(returning: body()) }
        }
    }
}
