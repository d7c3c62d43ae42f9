import Foundation
import Logging
import Queue
import Synchronization

/// Where a task's live output goes: one `task.log` event per call (``TaskQueue`` in production).
public protocol LiveLogWriter: Sendable {
    /// Appends a `task.log` event (step `log`) to the task's events; `dataJSON` is a JSON object.
    func appendLog(taskID: Int64, dataJSON: String) async throws
}

extension TaskQueue: LiveLogWriter {
    public func appendLog(taskID: Int64, dataJSON: String) async throws {
        try await appendLiveEvent(taskID: taskID, kind: "task.log", step: "log", dataJSON: dataJSON)
    }
}

/// A task's output, live: what its agent, setup commands and checks print, written as `task.log` events while
/// they run, for the task's page to follow.
///
/// ``streaming(_:redacting:_:)`` hands a run an ``OutputObserver`` that only buffers (the pipes never wait on
/// the database) and writes from a flusher that runs beside the run as a child task, in order and one event at
/// a time: each event holds one stream's whole lines, about 4 KB of them or what 250 ms brought (a line over
/// 16 KB goes in pieces), redacted as the stored output is (``SecretRedactor``, without usage lines). What was
/// buffered is written before the run returns. A write that fails is logged at debug and dropped with what
/// was waiting behind it; the task goes on.
///
/// A task shows at most 2 MB of output across all its runs: past that one notice says so, and each run that
/// had output not shown ends with a notice of how many bytes. The data of each event:
/// `{"stream": "stdout" | "stderr" | "notice", "source": "agent" | "setup" | "check", "text": "…"}`, with
/// `"dropped": <bytes>` on a run's closing notice.
///
/// One per task, shared by its runs, which take turns.
public final class LiveLog: Sendable {
    /// What printed the output.
    public enum Source: String, Sendable {
        case agent, setup, check
    }

    private struct State {
        var buffer: LiveLogBuffer
        var ending = false
    }

    public let taskID: Int64
    private let writer: any LiveLogWriter
    private let logger: Logger
    private let state: Mutex<State>

    public convenience init(taskID: Int64, writer: any LiveLogWriter, logger: Logger) {
        self.init(taskID: taskID, writer: writer, logger: logger, limits: LiveLogBuffer.Limits())
    }

    init(taskID: Int64, writer: any LiveLogWriter, logger: Logger, limits: LiveLogBuffer.Limits) {
        self.taskID = taskID
        self.writer = writer
        self.logger = logger
        state = Mutex(State(buffer: LiveLogBuffer(limits: limits)))
    }

    /// Runs `body` with an observer for the output of the program it runs, writing that output as it comes
    /// (attributed to `source`, with `secrets` redacted); returns once all of it is written.
    public func streaming<T>(
        _ source: Source, redacting secrets: [String], _ body: (_ observer: @escaping OutputObserver) async throws -> T
    ) async throws -> T {
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        state.withLock { $0.ending = false }
        let observer: OutputObserver = { [self] stream, bytes in
            state.withLock { $0.buffer.append(stream, bytes, at: .now) }
            wake.yield()
        }
        async let flushed: Void = flush(wakes, source: source, secrets: secrets)
        let result: Result<T, any Error>
        do {
            result = .success(try await body(observer))
        } catch {
            result = .failure(error)
        }
        state.withLock { $0.ending = true }
        wake.yield()
        wake.finish()
        await flushed
        return try result.get()
    }

    /// Writes what is due each time the observer signals, until the run ends; then the run's closing notice.
    private func flush(_ wakes: AsyncStream<Void>, source: Source, secrets: [String]) async {
        for await _ in wakes {
            while true {
                let (entries, due, ending) = state.withLock { state in
                    (state.buffer.take(at: .now, all: state.ending), state.buffer.due, state.ending)
                }
                var failed = false
                for entry in entries {
                    if failed {
                        state.withLock { $0.buffer.lose(entry.text.utf8.count) }
                    } else if !(await write(entry, source: source, secrets: secrets)) {
                        failed = true
                    }
                }
                if !entries.isEmpty { continue }
                guard let due, !ending else { break }
                do { try await Task.sleep(until: due) } catch { break }
            }
        }
        let dropped = state.withLock { $0.buffer.takeDropped() }
        if dropped > 0 {
            _ = await send(LiveLogEntry(stream: "notice", text: "\(dropped) bytes of output were not shown", dropped: dropped),
                           source: source)
        }
    }

    /// Redacts an entry and writes what the cap lets through; returns whether the writes succeeded.
    private func write(_ entry: LiveLogEntry, source: Source, secrets: [String]) async -> Bool {
        guard entry.stream != "notice" else { return await send(entry, source: source) }
        let text = entry.stream == StandardStream.stdout.rawValue ? UsageLine.strip(entry.text) : entry.text
        let (admitted, notice) = state.withLock { $0.buffer.admit(SecretRedactor.redact(text, also: secrets)) }
        var entry = entry
        entry.text = admitted
        if !admitted.isEmpty, !(await send(entry, source: source)) {
            state.withLock { $0.buffer.lose(admitted.utf8.count) }
            return false
        }
        if let notice { return await send(notice, source: source) }
        return true
    }

    private func send(_ entry: LiveLogEntry, source: Source) async -> Bool {
        do {
            try await writer.appendLog(taskID: taskID, dataJSON: Self.json(entry, source: source))
            return true
        } catch {
            logger.debug("cannot write the task's live output", metadata: ["task.id": "\(taskID)", "error": "\(error)"])
            return false
        }
    }

    /// Returns an event's data (PostgreSQL's `jsonb` holds no NUL: it becomes U+FFFD).
    static func json(_ entry: LiveLogEntry, source: Source) -> String {
        var object: [String: Any] = [
            "stream": entry.stream, "source": source.rawValue,
            "text": entry.text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}"),
        ]
        if let dropped = entry.dropped { object["dropped"] = dropped }
        let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
