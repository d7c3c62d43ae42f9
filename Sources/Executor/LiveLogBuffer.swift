#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// One `task.log` event's worth of a task's live output: `stream` is `stdout`, `stderr` or `notice`.
struct LiveLogEntry: Sendable, Equatable {
    var stream: String
    var text: String
    /// For the notice that ends a run with output not shown: how many bytes were not.
    var dropped: Int?
}

/// What ``LiveLog`` holds between the reading of the output and its writing: lines cut from the chunks read,
/// gathered into entries, and what the 2 MB cap lets through. Pure state: the caller gives the time.
///
/// A line waits for its newline (a line longer than `lineBytes` goes in pieces, cut after a space when there is
/// one), so that whatever redacts an entry sees every secret whole; a PEM block spread over lines is replaced
/// whole by `[REDACTED]`. An entry holds one stream's consecutive lines and closes at `batchBytes`, when the
/// other stream prints, or once `interval` old (``take(at:all:)``).
struct LiveLogBuffer: Sendable {
    /// The sizes and the pace of the entries.
    struct Limits: Sendable {
        var batchBytes = 4 * 1024
        var interval: Duration = .milliseconds(250)
        var lineBytes = 16 * 1024
        /// The most text a task shows, across all its runs.
        var cap = 2 * 1024 * 1024
    }

    let limits: Limits
    private var partial: [StandardStream: [UInt8]] = [:]
    private var inKey: Set<StandardStream> = []
    private var open: (entry: LiveLogEntry, since: ContinuousClock.Instant)?
    private var ready: [LiveLogEntry] = []
    /// Bytes of output taken in, across every run of the task.
    private(set) var accepted = 0
    /// Bytes of text let through to be written, across every run of the task.
    private(set) var written = 0
    /// Bytes of output not shown since the last ``takeDropped()``.
    private(set) var dropped = 0
    /// Whether the cap was reached (its notice is then queued, once).
    private(set) var capped = false
    /// Whether the text let through reached the cap (``admit(_:)`` lets nothing more through).
    private var full = false

    init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// When the open entry is due, if one is open.
    var due: ContinuousClock.Instant? { open.map { $0.since + limits.interval } }

    /// Takes in a chunk of `stream`.
    mutating func append(_ stream: StandardStream, _ bytes: UnsafeRawBufferPointer, at now: ContinuousClock.Instant) {
        if capped {
            dropped += bytes.count
            return
        }
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count, !capped {
            let start = base + offset
            let newline = memchr(start, 0x0A, bytes.count - offset)
            let length = newline.map { start.distance(to: UnsafeRawPointer($0)) + 1 } ?? bytes.count - offset
            partial[stream, default: []].append(contentsOf: UnsafeRawBufferPointer(start: start, count: length))
            offset += length
            while let piece = cutLongLine(stream) { emit(stream, piece, at: now) }
            if newline != nil, let line = partial.removeValue(forKey: stream), !line.isEmpty {
                emit(stream, String(decoding: line, as: UTF8.self), at: now)
            }
        }
        if capped { dropped += bytes.count - offset }
    }

    /// Returns the entries ready to write: the closed ones, and the open one once due; with `all`, everything,
    /// the lines still waiting for their newline too (the run ended).
    mutating func take(at now: ContinuousClock.Instant, all: Bool = false) -> [LiveLogEntry] {
        if all {
            for stream in [StandardStream.stdout, .stderr] {
                guard let rest = partial.removeValue(forKey: stream), !rest.isEmpty else { continue }
                emit(stream, String(decoding: rest, as: UTF8.self), at: now)
            }
            inKey.removeAll()
        }
        if let open, all || now >= open.since + limits.interval {
            ready.append(open.entry)
            self.open = nil
        }
        defer { ready.removeAll() }
        return ready
    }

    /// Returns `text` (an entry once redacted) as far as the cap lets it through, and the cap's notice when it
    /// is reached here.
    mutating func admit(_ text: String) -> (text: String, notice: LiveLogEntry?) {
        let size = text.utf8.count
        if !full, written + size <= limits.cap {
            written += size
            return (text, nil)
        }
        let bytes = Array(text.utf8)
        var end = full ? 0 : max(0, limits.cap - written)
        while end > 0, bytes[end] & 0xC0 == 0x80 { end -= 1 }
        written += end
        dropped += size - end
        full = true
        return (String(decoding: bytes[..<end], as: UTF8.self), reachCap())
    }

    /// Counts `bytes` of text let through as not shown after all (their write failed).
    mutating func lose(_ bytes: Int) {
        dropped += bytes
    }

    /// Returns the bytes not shown since the last call, and starts counting again.
    mutating func takeDropped() -> Int {
        defer { dropped = 0 }
        return dropped
    }

    /// Adds a line (or a piece of one) of `stream` to the open entry, unless the cap or a PEM block holds it back.
    private mutating func emit(_ stream: StandardStream, _ line: String, at now: ContinuousClock.Instant) {
        var text = line
        if inKey.contains(stream) {
            if line.contains("-----END ") { inKey.remove(stream) }
            return
        }
        if let begin = line.range(of: "-----BEGIN "), !line[begin.upperBound...].contains("-----END ") {
            inKey.insert(stream)
            text = String(line[..<begin.lowerBound]) + "[REDACTED]" + (line.hasSuffix("\n") ? "\n" : "")
        }
        let size = text.utf8.count
        guard accepted + size <= limits.cap else {
            dropped += line.utf8.count + partial.values.reduce(0) { $0 + $1.count }
            partial.removeAll()
            if let notice = reachCap() { ready.append(notice) }
            return
        }
        accepted += size
        if let current = open, current.entry.stream != stream.rawValue {
            ready.append(current.entry)
            open = nil
        }
        if open == nil { open = (LiveLogEntry(stream: stream.rawValue, text: ""), now) }
        open!.entry.text += text
        if open!.entry.text.utf8.count >= limits.batchBytes {
            ready.append(open!.entry)
            open = nil
        }
    }

    /// Marks the cap reached: closes the open entry and returns the notice, the first time only.
    private mutating func reachCap() -> LiveLogEntry? {
        guard !capped else { return nil }
        capped = true
        if let open { ready.append(open.entry) }
        open = nil
        let cap = limits.cap % (1024 * 1024) == 0 ? "\(limits.cap / 1024 / 1024) MB" : "\(limits.cap) bytes"
        return LiveLogEntry(stream: "notice", text: "… live output is capped at \(cap); the rest is not shown")
    }

    /// Cuts the first `lineBytes` of `stream`'s waiting line when it is longer: after its last space or tab, or
    /// at a character's boundary.
    private mutating func cutLongLine(_ stream: StandardStream) -> String? {
        guard let bytes = partial[stream], bytes.count > limits.lineBytes else { return nil }
        var end = limits.lineBytes
        if let space = bytes[..<end].lastIndex(where: { $0 == 0x20 || $0 == 0x09 }), space > 0 {
            end = space + 1
        } else {
            while end > 1, bytes[end] & 0xC0 == 0x80 { end -= 1 }
        }
        partial[stream] = Array(bytes[end...])
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}
