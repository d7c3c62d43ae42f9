import Foundation
@testable import Intake
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(10))) struct JSONProbeTests {
    func probe(_ text: String) -> JSONProbe.Fields? {
        Array(text.utf8).withUnsafeBytes { JSONProbe.probe($0) }
    }

    func foundationAccepts(_ bytes: [UInt8]) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
    }

    @Test func readsTheFilingFields() {
        let fields = probe(#" {"zen":"x","action":"created","installation":{"node_id":"a","id":42},"#
            + #""repository":{"owner":{"id":9},"id":186853002,"name":"r"},"nested":{"action":"no","id":1}} "#)
        #expect(fields == JSONProbe.Fields(isObject: true, action: "created", installationID: 42, repositoryID: 186853002))
        #expect(probe("[1,2]") == JSONProbe.Fields(isObject: false))
        #expect(probe(#""text""#)?.isObject == false)
    }

    @Test func readsIDsThatAreWholeNumbersOnly() {
        // Valid JSON whatever the ids hold: a string, a fraction, a number past 64 bits, a negative, escapes.
        #expect(probe(#"{"installation":{"id":"42"},"repository":{"id":1.5}}"#)
            == JSONProbe.Fields(isObject: true))
        #expect(probe(#"{"installation":{"id":9223372036854775808},"repository":{"id":-9223372036854775808}}"#)
            == JSONProbe.Fields(isObject: true, repositoryID: .min))
        #expect(probe(#"{"installation":{"id":9223372036854775807},"repository":{"\u0069d":7}}"#)
            == JSONProbe.Fields(isObject: true, installationID: .max))
        #expect(probe(#"{"actions":"x","action":"\u0063losed","installation":[1]}"#) == JSONProbe.Fields(isObject: true))
        #expect(probe(#"{"action":"labeled","installation":{"id":null,"ids":5}}"#)
            == JSONProbe.Fields(isObject: true, action: "labeled"))
    }

    @Test(arguments: [
        "", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[01]", "[1.]", "[.5]", "[1e]", "[-]",
        "[tru]", "[nul]", "{'a':1}", "{\"a\":1}x", "\"\\x\"", "\"\\u12G4\"", "\"a\u{01}b\"", "[\"\\ud800\"]x",
        String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
    ])
    func refusesWhatIsNotJSON(_ text: String) {
        #expect(probe(text) == nil, "\(text.prefix(40))")
    }

    @Test func refusesMalformedUTF8() {
        for bytes: [UInt8] in [[0x22, 0xC3, 0x22], [0x22, 0xE0, 0x80, 0x80, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22],
                               [0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], [0x22, 0xFF, 0x22]] {
            #expect(bytes.withUnsafeBytes { JSONProbe.probe($0) } == nil)
            #expect(!foundationAccepts(bytes))
        }
        #expect(probe("\"héllo ☃ 𝄞\"") != nil)
    }

    func hasTrailingComma(_ bytes: [UInt8]) -> Bool {
        var lastSignificant: UInt8 = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            if byte == UInt8(ascii: "\"") { inString = true }
            if (byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]")) && lastSignificant == UInt8(ascii: ",") { return true }
            if ![0x20, 0x0A, 0x0D, 0x09].contains(byte) { lastSignificant = byte }
        }
        return false
    }

    func hasHugeExponent(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        return text.range(of: #"[0-9][eE][+-]?[0-9]{3,}"#, options: .regularExpression) != nil
    }

    @Test func foundationIsLenientAboutTrailingCommasButTheProbeIsNot() {
        #expect(probe("[1,]") == nil)
        #expect(hasTrailingComma(Array("[1,]".utf8)))
        #expect(!hasTrailingComma(Array("[\",]\"]".utf8)))
    }

    /// Mutations of a real payload: the probe and Foundation agree on every one.
    @Test func agreesWithFoundationOnMutatedPayloads() throws {
        let original = try TestEnvironment.fixture("webhooks/issue_comment/created.with-installation.payload.json")
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("{}[]\":,\\0123456789-+.eEtrufalsn \n\t".utf8) + [0x00, 0x7F, 0xC3, 0xFF]
        var disagreements: [String] = []
        for round in 0..<2_000 {
            var bytes = original
            var position = 0
            for _ in 0..<(1 + round % 3) {
                position = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[position] = alphabet.randomElement(using: &generator)!
                case 1: bytes.remove(at: position)
                default: bytes.insert(alphabet.randomElement(using: &generator)!, at: position)
                }
            }
            let ours = bytes.withUnsafeBytes { JSONProbe.probe($0) } != nil
            // Foundation accepts trailing commas (`[1,]`), which RFC 8259 does not: there the probe is stricter.
            // Foundation refuses numbers beyond a Double's range (`2E1067`), which RFC 8259 allows: there the
            // probe is the lenient one (and a delivery that needs decoding still meets Foundation).
            let foundation = foundationAccepts(bytes)
            if ours != foundation, ours ? !hasHugeExponent(bytes) : !hasTrailingComma(bytes) {
                let window = bytes[max(0, position - 30)..<min(bytes.count, position + 30)]
                disagreements.append("probe \(ours ? "accepts" : "refuses"): \(Array(window))")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(3))")
    }
}

@Suite(.timeLimit(.minutes(10))) struct WordScanTests {
    /// Every placement and case of the word, and near misses, against a plain search.
    @Test func findsTheWordWhereverItIs() {
        let needle = Array("asynccode".utf8)
        var generator = SystemRandomNumberGenerator()
        for length in 0..<40 {
            for _ in 0..<50 {
                var bytes = (0..<length).map { _ in Array("xyYasncode /\u{7f}".utf8).randomElement(using: &generator)! }
                if length >= needle.count, Bool.random(using: &generator) {
                    let start = Int.random(in: 0...(length - needle.count), using: &generator)
                    for (offset, byte) in needle.enumerated() {
                        bytes[start + offset] = Bool.random(using: &generator) ? byte & ~0x20 : byte
                    }
                }
                let expected = String(decoding: bytes, as: UTF8.self).lowercased().contains("asynccode")
                let found = bytes.withUnsafeBytes { WordScan.containsCaseInsensitive($0, lowercaseNeedle: needle) }
                #expect(found == expected, "\(bytes)")
            }
        }
    }

    @Test func stringScanStopsAtEverySpecialByte() {
        for special: UInt8 in [0x22, 0x5C, 0x00, 0x1F, 0x80, 0xFF] {
            for position in 0..<20 {
                var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: 20)
                bytes[position] = special
                let found = bytes.withUnsafeBytes { WordScan.nextSpecialInString($0, from: 0) }
                #expect(found == position)
            }
        }
        let plain = [UInt8](repeating: UInt8(ascii: "~"), count: 19)
        #expect(plain.withUnsafeBytes { WordScan.nextSpecialInString($0, from: 3) } == 19)
    }
}
