import Foundation
import Yams

/// Holds the bot's own API responses to its OpenAPI 3.1 description (`docs/api/openapi.yaml`): the path
/// and method exist, the status is documented, the content type is one the status lists, and a JSON body
/// validates against the response's schema.
///
/// The schema keywords checked are those the description uses: `type` (one or a list, `"null"` among
/// them), `properties`, `required`, `additionalProperties`, `items`, `minItems`, `maxItems`, `enum`,
/// `const`, `$ref` (within the document), `allOf`, `anyOf`, `oneOf`, `minimum`, `maximum`, `minLength`,
/// `maxLength`, `pattern` and the formats `date-time` (RFC 3339) and `uri`. Others are ignored.
public struct APIConformance: @unchecked Sendable {
    /// The package root, found from this file's path (`Tests/APIConformance/<this file>`).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `docs/api/openapi.yaml` in this package; `ASYNCCODE_API_DESCRIPTION` names another file.
    public static let documentPath: String = ProcessInfo.processInfo.environment["ASYNCCODE_API_DESCRIPTION"]
        ?? packageRoot.appendingPathComponent("docs/api/openapi.yaml").path

    private static let loaded = Result { () throws(LoadError) in try APIConformance(path: documentPath) }

    /// The description at `documentPath`, loaded once per test process; throws a ``LoadError`` naming the
    /// file when it is missing or unreadable.
    public static var shared: APIConformance { get throws(LoadError) { try loaded.get() } }

    /// The description as JSON values: `[String: Any]`, `[Any]`, `String`, `NSNumber` and `NSNull`; never changed
    /// after loading (hence `@unchecked Sendable`).
    public let document: [String: Any]
    private let templates: [(segments: [String], raw: String)]

    /// Why a description could not be loaded.
    public struct LoadError: Error, CustomStringConvertible {
        /// What went wrong, naming the file.
        public var description: String
    }

    /// Loads the description in the YAML file at `path`.
    ///
    /// - Throws: ``LoadError`` when the file is missing, is not YAML, holds values JSON has no
    ///   equivalent of (such as an unquoted timestamp), or has no `paths`.
    public init(path: String = APIConformance.documentPath) throws(LoadError) {
        guard let text = try? String(contentsOf: URL(fileURLWithPath: path), encoding: .utf8) else {
            throw LoadError(description: "cannot read the API description at \(path)")
        }
        try self.init(yaml: text, source: path)
    }

    /// Loads a description from YAML (or JSON) text; `source` names it in errors.
    ///
    /// - Throws: ``LoadError`` as ``init(path:)`` does.
    public init(yaml: String, source: String = "the API description") throws(LoadError) {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: yaml) } catch { throw LoadError(description: "\(source) is not YAML: \(error)") }
        guard let loaded, let document = try Self.json(loaded, at: "$", source: source) as? [String: Any],
              let paths = document["paths"] as? [String: Any] else {
            throw LoadError(description: "\(source) has no OpenAPI paths")
        }
        self.document = document
        templates = paths.keys.sorted().map { ($0.split(separator: "/").map(String.init), $0) }
    }

    /// Every operation in the description, by path and then method.
    /// A validator for the schemas of a JSON Schema document of definitions (`$defs`, such as Kubernetes'); it has
    /// no operations: use ``validate(_:schema:at:)`` with `["$ref": "#/$defs/<name>"]`.
    public init(schemaDocument: [String: Any]) {
        document = schemaDocument
        templates = []
    }

    public var operations: [(method: String, path: String, operation: [String: Any])] {
        let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
        let paths = document["paths"] as? [String: Any] ?? [:]
        return paths.keys.sorted().flatMap { path in
            methods.compactMap { method in
                ((paths[path] as? [String: Any])?[method] as? [String: Any]).map { (method.uppercased(), path, $0) }
            }
        }
    }

    /// Returns the `operationId` of the operation that answers `method` on `path` (a request path such as
    /// `/api/tasks/12?x=1`), or nil when the description has none.
    public func operationID(method: String, path: String) -> String? {
        lookup(method, path)?.operation?["operationId"] as? String
    }

    /// Returns what in a response does not conform to the description (empty: it conforms). Each entry
    /// starts with `METHOD path → status:` and, for the body, names the JSON path (`$.tasks[0].status`).
    ///
    /// - Parameters:
    ///   - method: the request's method, such as `GET`.
    ///   - path: the request's path, with or without its query string.
    ///   - status: the response's status code.
    ///   - contentType: the response's `Content-Type` (parameters such as `charset` are ignored).
    ///   - body: the response's body.
    public func violations(method: String, path: String, status: Int, contentType: String?, body: [UInt8]) -> [String] {
        let label = "\(method.uppercased()) \(path) → \(status)"
        guard let (template, found) = lookup(method, path) else { return ["\(label): no such path in the API description"] }
        guard let operation = found else { return ["\(label): \(template) has no \(method.uppercased()) operation"] }
        let name = operation["operationId"] as? String ?? "\(method.uppercased()) \(template)"
        let responses = operation["responses"] as? [String: Any] ?? [:]
        guard let declared = responses[String(status)] ?? responses["\(status / 100)XX"] ?? responses["default"],
              let response = resolved(declared) else {
            return ["\(label): \(name) does not document \(status) (it documents \(responses.keys.sorted().joined(separator: ", ")))"]
        }
        let content = response["content"] as? [String: Any] ?? [:]
        if content.isEmpty {
            return body.isEmpty ? [] : ["\(label): \(name) documents no body for \(status), got \(body.count) bytes"]
        }
        let mediaType = contentType.map { $0.split(separator: ";").first.map(String.init) ?? "" }?
            .trimmingCharacters(in: .whitespaces).lowercased()
        guard let mediaType, let media = content[mediaType] as? [String: Any] else {
            return ["\(label): content type \(contentType ?? "missing") is not one of \(content.keys.sorted().joined(separator: ", "))"]
        }
        guard mediaType == "application/json" || mediaType.hasSuffix("+json"), let schema = media["schema"] else { return [] }
        guard let json = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) else {
            return ["\(label): the body is not JSON"]
        }
        return validate(json, schema: schema).map { "\(label): \($0)" }
    }

    /// Returns where `value` (a JSON value as `JSONSerialization` makes it) breaks `schema`, each entry
    /// starting with its JSON path below `location`.
    public func validate(_ value: Any, schema: Any, at location: String = "$") -> [String] {
        if let allowed = schema as? NSNumber, Self.isBool(allowed) {
            return allowed.boolValue ? [] : ["\(location): not allowed here"]
        }
        guard var schema = schema as? [String: Any] else { return [] }
        var problems: [String] = []
        if let reference = schema.removeValue(forKey: "$ref") as? String {
            guard let target = resolve(reference) else { return ["\(location): $ref \(reference) does not resolve"] }
            problems += validate(value, schema: target, at: location)
        }
        for subschema in schema["allOf"] as? [Any] ?? [] { problems += validate(value, schema: subschema, at: location) }
        for key in ["anyOf", "oneOf"] {
            guard let options = schema[key] as? [Any] else { continue }
            let results = options.map { validate(value, schema: $0, at: location) }
            let passing = results.filter(\.isEmpty).count
            if passing == 0 {
                problems += results.min { $0.count < $1.count } ?? []
            } else if key == "oneOf" && passing > 1 {
                problems.append("\(location): matches \(passing) of oneOf's schemas instead of one")
            }
        }
        if let allowed = schema["enum"] as? [Any], !allowed.contains(where: { Self.same($0, value) }) {
            problems.append("\(location): \(Self.show(value)) is not one of \(allowed.map(Self.show).joined(separator: ", "))")
        }
        if let constant = schema["const"], !Self.same(constant, value) {
            problems.append("\(location): \(Self.show(value)) is not \(Self.show(constant))")
        }
        let types = (schema["type"] as? String).map { [$0] } ?? schema["type"] as? [String] ?? []
        let kind = Self.kind(of: value)
        if !types.isEmpty && !types.contains(kind) && !(kind == "integer" && types.contains("number")) {
            return problems + ["\(location): expected \(types.joined(separator: " or ")), got \(kind)"]
        }
        switch value {
        case let object as [String: Any]:
            for name in schema["required"] as? [String] ?? [] where object[name] == nil {
                problems.append("\(location).\(name): required but missing")
            }
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for name in object.keys.sorted() {
                if let property = properties[name] {
                    problems += validate(object[name]!, schema: property, at: "\(location).\(name)")
                } else if let additional = schema["additionalProperties"] {
                    let found = validate(object[name]!, schema: additional, at: "\(location).\(name)")
                    problems += (additional as? NSNumber).map { _ in found.map { $0 + " (additionalProperties is false)" } } ?? found
                }
            }
        case let array as [Any]:
            if let least = Self.number(schema["minItems"]), Double(array.count) < least { problems.append("\(location): fewer than \(Int(least)) items") }
            if let most = Self.number(schema["maxItems"]), Double(array.count) > most { problems.append("\(location): more than \(Int(most)) items") }
            if let items = schema["items"] {
                for (index, item) in array.enumerated() { problems += validate(item, schema: items, at: "\(location)[\(index)]") }
            }
        case let text as String:
            let length = Double(text.unicodeScalars.count)
            if let least = Self.number(schema["minLength"]), length < least { problems.append("\(location): shorter than \(Int(least)) characters") }
            if let most = Self.number(schema["maxLength"]), length > most { problems.append("\(location): longer than \(Int(most)) characters") }
            if let pattern = schema["pattern"] as? String {
                if let expression = try? NSRegularExpression(pattern: pattern) {
                    if expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) == nil {
                        problems.append("\(location): \(Self.show(text)) does not match \(pattern)")
                    }
                } else {
                    problems.append("\(location): the pattern \(pattern) does not compile")
                }
            }
            switch schema["format"] as? String {
            case "date-time" where !Self.isDateTime(text):
                problems.append("\(location): \(Self.show(text)) is not an RFC 3339 date-time")
            case "uri" where URL(string: text)?.scheme == nil:
                problems.append("\(location): \(Self.show(text)) is not an absolute URI")
            default: break
            }
        case let number as NSNumber where !Self.isBool(number):
            if let least = schema["minimum"] as? NSNumber, number.doubleValue < least.doubleValue { problems.append("\(location): \(number) is less than \(least)") }
            if let most = schema["maximum"] as? NSNumber, number.doubleValue > most.doubleValue { problems.append("\(location): \(number) is more than \(most)") }
        default:
            break
        }
        return problems
    }

    /// Returns the value a local reference (`#/components/schemas/User`) points at, or nil.
    public func resolve(_ reference: String) -> Any? {
        guard reference.hasPrefix("#") else { return nil }
        var target: Any? = document
        for part in reference.dropFirst().split(separator: "/") {
            let key = String(part).replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            target = (target as? [String: Any])?[key.removingPercentEncoding ?? key]
        }
        return target
    }

    // MARK: - Helpers

    /// Follows `$ref`s from an object such as a response.
    private func resolved(_ value: Any) -> [String: Any]? {
        var object = value as? [String: Any]
        for _ in 0..<10 {
            guard let reference = object?["$ref"] as? String else { break }
            object = resolve(reference) as? [String: Any]
        }
        return object
    }

    /// Returns the path template that `path` matches and its operation for `method`, if any.
    private func lookup(_ method: String, _ path: String) -> (template: String, operation: [String: Any]?)? {
        guard let template = match(path) else { return nil }
        return (template, ((document["paths"] as? [String: Any])?[template] as? [String: Any])?[method.lowercased()] as? [String: Any])
    }

    /// Returns the template of `path`, preferring the one with the most literal segments.
    private func match(_ path: String) -> String? {
        let bare = path.prefix { $0 != "?" && $0 != "#" }
        let segments = bare.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        return templates.filter { template in
            template.segments.count == segments.count && zip(template.segments, segments).allSatisfy { part, segment in
                (part.hasPrefix("{") && part.hasSuffix("}") && !segment.isEmpty) || part == segment
            }
        }.max { $0.segments.filter { !$0.hasPrefix("{") }.count < $1.segments.filter { !$0.hasPrefix("{") }.count }?.raw
    }

    /// Turns what Yams loaded into JSON values, refusing what JSON has no equivalent of.
    private static func json(_ value: Any, at location: String, source: String) throws(LoadError) -> Any {
        switch value {
        case let map as [AnyHashable: Any]:
            let pairs = try map.map { (key, child) throws(LoadError) in ("\(key.base)", try json(child, at: "\(location).\(key.base)", source: source)) }
            return Dictionary(pairs, uniquingKeysWith: { first, _ in first })
        case let list as [Any]:
            return try list.enumerated().map { (index, child) throws(LoadError) in try json(child, at: "\(location)[\(index)]", source: source) }
        case let flag as Bool: return NSNumber(value: flag)
        case let integer as Int: return NSNumber(value: integer)
        case let real as Double: return NSNumber(value: real)
        case is String, is NSNull: return value
        default: throw LoadError(description: "\(source): \(location) is a \(type(of: value)), not a JSON value; quote it")
        }
    }

    private static func isBool(_ number: NSNumber) -> Bool { String(cString: number.objCType) == "c" }

    private static func number(_ value: Any?) -> Double? { (value as? NSNumber).flatMap { isBool($0) ? nil : $0.doubleValue } }

    /// The JSON Schema type of a JSON value (`integer` for whole numbers).
    private static func kind(of value: Any) -> String {
        switch value {
        case is NSNull: "null"
        case let number as NSNumber: isBool(number) ? "boolean" : number.doubleValue.rounded() == number.doubleValue ? "integer" : "number"
        case is String: "string"
        case is [Any]: "array"
        case is [String: Any]: "object"
        default: "\(type(of: value))"
        }
    }

    private static func same(_ a: Any, _ b: Any) -> Bool {
        guard kind(of: a) == kind(of: b) else { return false }
        switch (a, b) {
        case let (a as String, b as String): return a == b
        case let (a as NSNumber, b as NSNumber): return a.doubleValue == b.doubleValue
        case (is NSNull, is NSNull): return true
        default: return show(a) == show(b)
        }
    }

    private static func show(_ value: Any) -> String {
        let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes])
        let text = data.map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
        return text.count > 80 ? String(text.prefix(77)) + "…" : text
    }

    /// Whether `text` is an RFC 3339 `date-time` (section 5.6), its fields in range.
    private static func isDateTime(_ text: String) -> Bool {
        let form = /([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?(?:[Zz]|[+-]([0-9]{2}):([0-9]{2}))/
        guard let parts = text.wholeMatch(of: form)?.output else { return false }
        let (year, month, day) = (Int(parts.1)!, Int(parts.2)!, Int(parts.3)!)
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(month), (1...days[month - 1]).contains(day) else { return false }
        guard Int(parts.4)! < 24, Int(parts.5)! < 60, Int(parts.6)! <= 60 else { return false }
        if let hours = parts.7, let minutes = parts.8 { return Int(hours)! < 24 && Int(minutes)! < 60 }
        return true
    }
}
