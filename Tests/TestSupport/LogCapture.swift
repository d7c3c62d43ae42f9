import Logging
import Synchronization

/// Collects every log line (level, message, metadata, error) a logger writes, for checks that no secret
/// reaches the logs.
public final class LogCapture: Sendable {
    private let storage = Mutex<[String]>([])

    public init() {}

    /// The lines so far.
    public var lines: [String] { storage.withLock { $0 } }

    /// Returns a logger writing here at `level`.
    public func logger(label: String = "test", level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: label) { _ in Handler(capture: self, logLevel: level) }
        logger.logLevel = level
        return logger
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level

        init(capture: LogCapture, logLevel: Logger.Level) {
            self.capture = capture
            self.logLevel = logLevel
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let error = event.error.map { " error=\($0)" } ?? ""
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            capture.storage.withLock { $0.append("\(event.level) \(event.message) \(fields)\(error)") }
        }
    }
}
