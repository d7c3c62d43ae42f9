import ServiceLifecycle

/// Runs a simulator as a swift-service-lifecycle `Service` (for the demo): starts it, hands it to
/// `onStarted` (e.g. to seed an App and repositories and print the URL), and shuts it down on
/// graceful shutdown or cancellation.
public struct GitHubSimulatorService: Service {
    let configuration: GitHubSimulator.Configuration
    let onStarted: @Sendable (GitHubSimulator) async throws -> Void

    /// Creates the service.
    public init(configuration: GitHubSimulator.Configuration = GitHubSimulator.Configuration(),
                onStarted: @escaping @Sendable (GitHubSimulator) async throws -> Void) {
        self.configuration = configuration
        self.onStarted = onStarted
    }

    public func run() async throws {
        let simulator = try await GitHubSimulator.start(configuration: configuration)
        do {
            try await onStarted(simulator)
            // Sleeps until graceful shutdown (or cancellation) ends it.
            try? await gracefulShutdown()
        } catch {
            await simulator.shutdown()
            throw error
        }
        await simulator.shutdown()
    }
}
