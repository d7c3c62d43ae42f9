import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// Runs `body` with `router` served on 127.0.0.1 at a free port (`body` gets its base URL), and stops the server
/// once `body` is done, however it ends.
func withLocalServer<T: Sendable>(
    _ router: Router<BasicRequestContext>, label: String, _ body: @Sendable (String) async throws -> T
) async throws -> T {
    let port = Mutex<Int?>(nil)
    var logger = Logger(label: label)
    logger.logLevel = .error
    let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                          onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } }, logger: logger)
    let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
    return try await withThrowingTaskGroup(of: T?.self) { tasks in
        tasks.addTask { try await group.run(); return nil }
        while port.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(5)) }
        let result: Result<T, any Error>
        do { result = .success(try await body("http://127.0.0.1:\(port.withLock { $0 }!)")) } catch { result = .failure(error) }
        await group.triggerGracefulShutdown()
        while let _ = try await tasks.next() {}
        return try result.get()
    }
}
