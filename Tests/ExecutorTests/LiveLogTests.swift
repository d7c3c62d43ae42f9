@testable import Executor
import Foundation
import Logging
import Synchronization
import Testing

/// One `task.log` event as a writer received it.
struct LogEvent: Sendable, Equatable {
    var stream: String
    var source: String
    var text: String
    var dropped: Int?
}

/// Keeps the events written; fails the first `failures` writes and takes `delay` over each.
final class RecordingWriter: LiveLogWriter {
    let events = Mutex<[LogEvent]>([])
    let failures: Mutex<Int>
    let delay: Duration?

    init(failures: Int = 0, delay: Duration? = nil) {
        self.failures = Mutex(failures)
        self.delay = delay
    }

    var written: [LogEvent] { events.withLock { $0 } }
    /// The text of the events of `stdout` and `stderr`, in order.
    var output: String { written.filter { $0.stream != "notice" }.map(\.text).joined() }

    func appendLog(taskID: Int64, dataJSON: String) async throws {
        if let delay { try await Task.sleep(for: delay) }
        if failures.withLock({ failures in defer { failures -= 1 }; return failures > 0 }) { throw CancellationError() }
        let object = try #require(try JSONSerialization.jsonObject(with: Data(dataJSON.utf8)) as? [String: Any])
        let event = LogEvent(stream: object["stream"] as? String ?? "?", source: object["source"] as? String ?? "?",
                             text: object["text"] as? String ?? "?", dropped: object["dropped"] as? Int)
        events.withLock { $0.append(event) }
    }
}

/// Polls `condition` until it holds or `timeout` passes.
func poll(_ what: String, timeout: Duration = .seconds(20), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting until \(what)")
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

func feed(_ observer: OutputObserver, _ text: String, on stream: StandardStream = .stdout) {
    Array(text.utf8).withUnsafeBytes { observer(stream, $0) }
}

extension LiveLogBuffer {
    mutating func append(_ text: String, on stream: StandardStream = .stdout, at now: ContinuousClock.Instant) {
        Array(text.utf8).withUnsafeBytes { append(stream, $0, at: now) }
    }
}

@Suite(.timeLimit(.minutes(10))) struct LiveLogTests {
    let start = ContinuousClock.now

    func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    @Test func batchesBySizeThenByTime() {
        var buffer = LiveLogBuffer()
        let line = String(repeating: "a", count: 99) + "\n"
        for _ in 0..<100 { buffer.append(line, at: at(0)) }
        let bySize = buffer.take(at: at(0))
        #expect(bySize.count == 2)
        #expect(bySize.allSatisfy { $0.text.utf8.count >= 4096 && $0.text.utf8.count < 4096 + 100 && $0.stream == "stdout" })
        #expect(buffer.due == at(250))
        #expect(buffer.take(at: at(249)).isEmpty)
        let byTime = buffer.take(at: at(250))
        #expect(byTime.count == 1)
        #expect((bySize + byTime).map(\.text).joined() == String(repeating: line, count: 100))
        #expect(buffer.due == nil)
    }

    @Test func keepsAPartialLineUntilItsNewline() {
        var buffer = LiveLogBuffer()
        buffer.append("hel", at: at(0))
        #expect(buffer.take(at: at(10_000)).isEmpty)
        buffer.append("lo\nwor", at: at(10_000))
        #expect(buffer.take(at: at(10_250)).map(\.text) == ["hello\n"])
        #expect(buffer.take(at: at(20_000)).isEmpty)
        #expect(buffer.take(at: at(20_000), all: true).map(\.text) == ["wor"])
    }

    @Test func keepsTheStreamsApartInOrder() {
        var buffer = LiveLogBuffer()
        buffer.append("one\n", on: .stdout, at: at(0))
        buffer.append("two\n", on: .stderr, at: at(0))
        buffer.append("three\n", on: .stdout, at: at(0))
        let entries = buffer.take(at: at(0), all: true)
        #expect(entries.map(\.stream) == ["stdout", "stderr", "stdout"])
        #expect(entries.map(\.text) == ["one\n", "two\n", "three\n"])
    }

    @Test func cutsALongLineAfterASpace() {
        var buffer = LiveLogBuffer()
        let words = (0..<5000).map { "word\($0)" }.joined(separator: " ")
        buffer.append(words + "\n", at: at(0))
        let entries = buffer.take(at: at(0), all: true)
        #expect(entries.count >= 3)
        #expect(entries.allSatisfy { $0.text.utf8.count <= 16 * 1024 })
        #expect(entries.dropLast().allSatisfy { $0.text.hasSuffix(" ") })
        #expect(entries.map(\.text).joined() == words + "\n")
    }

    @Test func dropsAPEMBlockSpreadOverEntries() {
        var buffer = LiveLogBuffer(limits: .init(batchBytes: 10))
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecretline1\nMIIEsecretline2\n-----END RSA PRIVATE KEY-----\n"
        buffer.append("before\nkey: " + key + "after\n", at: at(0))
        let text = buffer.take(at: at(0), all: true).map(\.text).joined()
        #expect(text == "before\nkey: [REDACTED]\nafter\n")
    }

    @Test func capsTheOutputWithOneNotice() {
        var buffer = LiveLogBuffer(limits: .init(cap: 1000))
        let line = String(repeating: "x", count: 99) + "\n"
        for _ in 0..<30 { buffer.append(line, at: at(0)) }
        let entries = buffer.take(at: at(0), all: true)
        #expect(entries.filter { $0.stream == "notice" }.count == 1)
        #expect(entries.last?.text == "… live output is capped at 1000 bytes; the rest is not shown")
        #expect(entries.filter { $0.stream == "stdout" }.map(\.text).joined() == String(repeating: line, count: 10))
        #expect(buffer.takeDropped() == 2000)
        buffer.append(line, at: at(1))
        #expect(buffer.take(at: at(1), all: true).isEmpty)
        #expect(buffer.takeDropped() == 100)
    }

    @Test func admitsNoMoreThanTheCapOnceRedacted() {
        var buffer = LiveLogBuffer(limits: .init(cap: 10))
        #expect(buffer.admit("12345678").text == "12345678")
        let (cut, notice) = buffer.admit("aéz")
        #expect(cut == "a")
        #expect(notice?.stream == "notice")
        #expect(buffer.admit("more").text.isEmpty)
        #expect(buffer.admit("").notice == nil)
        #expect(buffer.takeDropped() == 7)
        #expect(buffer.written == 9)
    }
}

/// ``LiveLog`` with its flusher, a writer that records, and the real clock.
@Suite(.timeLimit(.minutes(10))) struct LiveLogFlushTests {
    let logger = Logger(label: "test")

    @Test func writesWhileTheRunGoesOn() async throws {
        let writer = RecordingWriter()
        let log = LiveLog(taskID: 1, writer: writer, logger: logger)
        try await log.streaming(.agent, redacting: []) { observer in
            feed(observer, "working on it\n")
            try await poll("the line is written during the run") { writer.output == "working on it\n" }
            feed(observer, "a warning\n", on: .stderr)
        }
        #expect(writer.written == [
            LogEvent(stream: "stdout", source: "agent", text: "working on it\n"),
            LogEvent(stream: "stderr", source: "agent", text: "a warning\n"),
        ])
    }

    @Test func redactsSecretsSplitAcrossChunks() async throws {
        let writer = RecordingWriter()
        let log = LiveLog(taskID: 1, writer: writer, logger: logger, limits: .init(interval: .milliseconds(10)))
        let token = "ghs_" + String(repeating: "A1b2C3", count: 6)
        try await log.streaming(.setup, redacting: ["hunter2-secret"]) { observer in
            feed(observer, "first\npassword hunter2-")
            try await poll("the first line is written") { writer.output == "first\n" }
            feed(observer, "secret and \(token.prefix(20))")
            try await Task.sleep(for: .milliseconds(50))
            feed(observer, "\(token.dropFirst(20)) done\n{\"asynccode_usage\": {\"input_tokens\": 1}}\n")
        }
        #expect(writer.output == "first\npassword [REDACTED] and [REDACTED] done\n")
        #expect(writer.written.allSatisfy { $0.source == "setup" })
    }

    @Test func capsAcrossRunsWithOneNoticeAndTheDroppedCounts() async throws {
        let writer = RecordingWriter()
        let log = LiveLog(taskID: 1, writer: writer, logger: logger, limits: .init(cap: 64 * 1024))
        let line = String(repeating: "y", count: 99) + "\n"
        let chunk = String(repeating: line, count: 100)
        for source in [LiveLog.Source.agent, .check] {
            try await log.streaming(source, redacting: []) { observer in
                for _ in 0..<100 { feed(observer, chunk) }
            }
        }
        let notices = writer.written.filter { $0.stream == "notice" }
        #expect(notices.filter { $0.text == "… live output is capped at 65536 bytes; the rest is not shown" }.count == 1)
        let shown = writer.output.utf8.count
        #expect(shown <= 64 * 1024)
        #expect(shown == 655 * 100)
        let closing = notices.filter { $0.dropped != nil }
        #expect(closing.map(\.source) == ["agent", "check"])
        #expect(closing.map(\.dropped) == [1_000_000 - shown, 1_000_000])
        #expect(writer.written.last == closing.last)
        #expect(writer.written.firstIndex { $0.source == "check" } == writer.written.count - 1)
        #expect(writer.output == String(repeating: line, count: 655))
    }

    @Test func keepsTheOrderWithASlowWriterAndFlushesBeforeReturning() async throws {
        let writer = RecordingWriter(delay: .milliseconds(2))
        let log = LiveLog(taskID: 1, writer: writer, logger: logger, limits: .init(batchBytes: 64))
        let lines = (0..<2000).map { "line \($0)\n" }
        try await log.streaming(.agent, redacting: []) { observer in
            for line in lines { feed(observer, line) }
        }
        #expect(writer.output == lines.joined())
        #expect(writer.written.count > 100)
    }

    @Test func aFailedWriteIsDroppedAndTheRunGoesOn() async throws {
        let writer = RecordingWriter(failures: 1)
        let log = LiveLog(taskID: 1, writer: writer, logger: logger)
        let value = try await log.streaming(.agent, redacting: []) { observer in
            feed(observer, "lost\n")
            try await poll("the first write was tried") { writer.failures.withLock { $0 } <= 0 }
            feed(observer, "kept\n")
            return 42
        }
        #expect(value == 42)
        #expect(writer.output == "kept\n")
        #expect(writer.written.last == LogEvent(stream: "notice", source: "agent", text: "5 bytes of output were not shown", dropped: 5))
    }

    @Test func followsARealAgentsStreams() async throws {
        let (folder, script) = try agentScript("""
            echo "to stdout"
            echo "to stderr" >&2
            echo '{"asynccode_usage": {"input_tokens": 10, "output_tokens": 2}}'
            """)
        let writer = RecordingWriter()
        let log = LiveLog(taskID: 1, writer: writer, logger: logger)
        let result = try await log.streaming(.agent, redacting: []) { observer in
            try await AgentRunner().run(AgentCommand(name: "t", command: [script]), prompt: "", workingDirectory: folder,
                                        environment: ["PATH": "/usr/bin:/bin"], observer: observer)
        }
        #expect(result.ending == .exited(0))
        #expect(result.usage?.inputTokens == 10)
        let byStream = Dictionary(grouping: writer.written, by: \.stream).mapValues { $0.map(\.text).joined() }
        #expect(byStream == ["stdout": "to stdout\n", "stderr": "to stderr\n"])
    }
}
