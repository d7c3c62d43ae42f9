import Foundation
import Models

/// How the pages write values: times, statuses, links and agent output.
enum PageFormat {
    static let statuses = APIController.statuses
    static let kinds = TaskKind.allCases.map(\.rawValue)

    /// "Running" for `running`.
    static func statusLabel(_ status: String) -> String {
        status.prefix(1).uppercased() + status.dropFirst()
    }

    /// Returns an API timestamp (`2026-12-06T16:00:00.123Z`) as the pages show it before the script puts it in the
    /// reader's time zone: `2026-12-06 16:00:00 UTC`.
    static func time(_ iso: String) -> String {
        var text = iso.replacingOccurrences(of: "T", with: " ")
        if let dot = text.firstIndex(of: ".") { text = String(text[..<dot]) }
        if text.hasSuffix("Z") { text.removeLast() }
        return text + " UTC"
    }

    static func time(_ date: Date) -> String { time(APIStore.timestamp(date)) }

    /// Returns `url` when it is an http(s) address (links to GitHub), else nil: no `javascript:` in an `href`.
    static func safeURL(_ url: String) -> String? {
        let lowered = url.lowercased()
        return lowered.hasPrefix("https://") || lowered.hasPrefix("http://") ? url : nil
    }

    /// The first line of a prompt, at most `limit` characters.
    static func firstLine(_ text: String, limit: Int = 100) -> String {
        let line = text.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? ""
        return line.count > limit ? String(line.prefix(limit - 1)) + "…" : line
    }

    /// Removes terminal escape sequences (colours, cursor moves, titles) from agent output.
    static func stripANSI(_ text: String) -> String {
        guard text.contains("\u{1B}") || text.contains("\u{9B}") else { return text }
        return text.replacing(ansi, with: "")
    }

    // CSI (ESC [ … final byte, or the one-byte 0x9B), OSC (ESC ] … BEL or ESC \), and two-byte escapes.
    nonisolated(unsafe) private static let ansi = /\x{1B}\[[0-?]*[ -\/]*[@-~]|\x{9B}[0-?]*[ -\/]*[@-~]|\x{1B}\][^\x{07}\x{1B}]*(?:\x{07}|\x{1B}\\)?|\x{1B}[@-_]/
}
