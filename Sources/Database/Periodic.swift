import Logging

/// Runs `pass` every `interval` (the first one after an interval) until the task is cancelled; a pass that throws
/// is logged as an error with `failure` and the next one comes as usual. The loop of the services that repair or
/// recover something in the background (comment repair, delivery recovery).
public func repeatEvery(_ interval: Duration, logger: Logger, failure: Logger.Message, _ pass: () async throws -> Void) async {
    while !Task.isCancelled {
        do {
            try await Task.sleep(for: interval)
        } catch {
            return
        }
        do {
            try await pass()
        } catch {
            logger.error(failure, metadata: ["error": "\(error)"])
        }
    }
}
