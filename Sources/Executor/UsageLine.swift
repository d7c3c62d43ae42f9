import Accounting
import Foundation
import Synchronization

/// The line an agent prints to report the tokens it used so far:
/// `{"asynccode_usage": {"input_tokens": 1200, "output_tokens": 340}}`.
///
/// The last such line on standard output counts; the lines are never shown to users.
public enum UsageLine {
    /// The JSON key that marks the line.
    public static let key = "asynccode_usage"
    /// Longer lines are not usage lines.
    static let maxBytes = 4096

    private struct Line: Decodable {
        struct Usage: Decodable {
            var input_tokens: Int64?
            var output_tokens: Int64?
        }
        var asynccode_usage: Usage
    }

    /// Returns the usage `line` reports, or `nil` when it is not a well-formed usage line.
    public static func parse<Text: StringProtocol>(_ line: Text) -> TokenUsage? {
        guard line.utf8.count <= maxBytes, line.contains(key) else { return nil }
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("{"), trimmed.hasSuffix("}"),
              let decoded = try? JSONDecoder().decode(Line.self, from: Data(trimmed.utf8)) else { return nil }
        let input = decoded.asynccode_usage.input_tokens ?? 0
        let output = decoded.asynccode_usage.output_tokens ?? 0
        guard input >= 0, output >= 0, input < 1 << 50, output < 1 << 50 else { return nil }
        return TokenUsage(inputTokens: input, outputTokens: output)
    }

    /// Returns `output` without its usage lines.
    public static func strip(_ output: String) -> String {
        guard output.contains(key) else { return output }
        return output.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { parse($0) == nil }
            .joined(separator: "\n")
    }
}

/// Follows an agent's standard output as it streams: keeps the last usage it reported and says once when
/// it passes the token limit.
final class UsageScanner: Sendable {
    private struct State {
        var partial: [UInt8] = []
        var skipping = false
        var usage: TokenUsage?
        var exceeded = false
    }

    private let state = Mutex(State())
    private let tokenLimit: Int64?
    private let onExceeded: @Sendable () -> Void

    init(tokenLimit: Int64?, onExceeded: @escaping @Sendable () -> Void) {
        self.tokenLimit = tokenLimit
        self.onExceeded = onExceeded
    }

    /// The last usage reported.
    var usage: TokenUsage? { state.withLock { $0.usage } }

    /// Whether the usage passed the limit.
    var exceeded: Bool { state.withLock { $0.exceeded } }

    /// Reads a chunk of output.
    func feed(_ bytes: UnsafeRawBufferPointer) {
        let fire = state.withLock { state -> Bool in
            var fire = false
            for byte in bytes {
                if byte == UInt8(ascii: "\n") {
                    if !state.skipping, let usage = UsageLine.parse(String(decoding: state.partial, as: UTF8.self)) {
                        state.usage = usage
                        if let limit = tokenLimit, usage.total > limit, !state.exceeded {
                            state.exceeded = true
                            fire = true
                        }
                    }
                    state.partial.removeAll(keepingCapacity: true)
                    state.skipping = false
                } else if !state.skipping {
                    state.partial.append(byte)
                    if state.partial.count > UsageLine.maxBytes {
                        state.partial.removeAll(keepingCapacity: true)
                        state.skipping = true
                    }
                }
            }
            return fire
        }
        if fire { onExceeded() }
    }

    /// Reads the last line when the output ended without a newline.
    func finish() {
        feed(UnsafeRawBufferPointer(start: nil, count: 0))
        let fire = state.withLock { state -> Bool in
            guard !state.skipping, !state.partial.isEmpty,
                  let usage = UsageLine.parse(String(decoding: state.partial, as: UTF8.self)) else { return false }
            state.usage = usage
            state.partial.removeAll()
            if let limit = tokenLimit, usage.total > limit, !state.exceeded {
                state.exceeded = true
                return true
            }
            return false
        }
        if fire { onExceeded() }
    }
}
