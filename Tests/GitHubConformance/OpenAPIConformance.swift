import Foundation
import GitHubSimulator

/// Checks requests against GitHub's OpenAPI description: path template, method, path and query
/// parameters (required, declared, type, enum), request body (required, required fields, types,
/// enums, no unknown fields where the schema forbids them) and the GitHub headers.
public final class OpenAPIConformance: @unchecked Sendable {
    /// The package root, found from this file's path (`Tests/GitHubConformance/<this file>`).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The trimmed description kept in the repository (`Tests/Fixtures/README.md` says where it came
    /// from); `GITHUB_OPENAPI_SPEC` names another one, such as GitHub's full description.
    public static let specPath: String = ProcessInfo.processInfo.environment["GITHUB_OPENAPI_SPEC"]
        ?? packageRoot.appendingPathComponent("Tests/Fixtures/github-openapi/api.github.com.trimmed.json").path

    private static let loaded = Result { () throws(CheckerError) in try OpenAPIConformance(path: specPath) }

    /// The description at `specPath`, loaded once per test process; a test using it fails, saying
    /// which file could not be loaded, when it is missing or unreadable.
    public static var shared: OpenAPIConformance {
        get throws(CheckerError) { try loaded.get() }
    }

    private let spec: [String: Any]
    private let templates: [(segments: [String], item: [String: Any], raw: String)]

    /// Loads the description at `path`; throws a `CheckerError` naming the file when it is missing,
    /// not JSON, or has no paths.
    public init(path: String) throws(CheckerError) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw CheckerError("cannot read GitHub's OpenAPI description at \(path) (Tests/Fixtures/README.md says where it comes from): \(error.localizedDescription)")
        }
        guard let spec = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let paths = spec["paths"] as? [String: Any] else { throw CheckerError("no OpenAPI paths in \(path)") }
        self.spec = spec
        self.templates = paths.compactMap { raw, item in
            guard let item = item as? [String: Any] else { return nil }
            return (raw.split(separator: "/").map(String.init), item, raw)
        }
    }

    public struct CheckerError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Returns what GitHub would reject in `request` (empty: conforms).
    public func violations(method: String, path: String, queryItems: [(name: String, value: String)], headers: [String: String], body: [UInt8]) -> [String] {
        let label = "\(method) \(path)"
        var problems: [String] = []
        if headers["accept"] != "application/vnd.github+json" { problems.append("\(label): Accept is \(headers["accept"] ?? "missing")") }
        if headers["x-github-api-version"] != "2022-11-28" { problems.append("\(label): X-GitHub-Api-Version is \(headers["x-github-api-version"] ?? "missing")") }
        if !(headers["user-agent"] ?? "").hasPrefix("asynccode/") { problems.append("\(label): User-Agent is \(headers["user-agent"] ?? "missing")") }

        let segments = path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        guard let (template, pathValues) = match(segments) else {
            return problems + ["\(label): no such path in GitHub's API (as described in \(URL(fileURLWithPath: Self.specPath).lastPathComponent); scripts/trim-openapi keeps the operations the client calls)"]
        }
        guard let operation = template.item[method.lowercased()] as? [String: Any] else {
            return problems + ["\(label): \(template.raw) has no \(method) operation"]
        }
        let operationID = operation["operationId"] as? String ?? template.raw
        let parameters = ((template.item["parameters"] as? [Any] ?? []) + (operation["parameters"] as? [Any] ?? []))
            .compactMap { resolve($0) }
        // Path parameters.
        for parameter in parameters where parameter["in"] as? String == "path" {
            guard let name = parameter["name"] as? String else { continue }
            guard let value = pathValues[name], !value.isEmpty else { problems.append("\(operationID): path parameter \(name) missing"); continue }
            if let schema = parameter["schema"] {
                problems += validate(scalar: value, schema: schema, at: "\(operationID) path \(name)")
            }
        }
        // Query parameters.
        let declared = Dictionary(parameters.filter { $0["in"] as? String == "query" }.compactMap { p in (p["name"] as? String).map { ($0, p) } },
                                  uniquingKeysWith: { a, _ in a })
        for (name, parameter) in declared where parameter["required"] as? Bool == true {
            if !queryItems.contains(where: { $0.name == name }) { problems.append("\(operationID): required query parameter \(name) missing") }
        }
        for item in queryItems {
            guard let parameter = declared[item.name] else { problems.append("\(operationID): undeclared query parameter \(item.name)"); continue }
            if let schema = parameter["schema"] { problems += validate(scalar: item.value, schema: schema, at: "\(operationID) query \(item.name)") }
        }
        // Body.
        let requestBody = operation["requestBody"].flatMap { resolve($0) }
        if let requestBody {
            let schema = ((requestBody["content"] as? [String: Any])?["application/json"] as? [String: Any])?["schema"]
            if body.isEmpty {
                let requiredFields = schema.flatMap { resolve($0) }?["required"] as? [String] ?? []
                if requestBody["required"] as? Bool == true || !requiredFields.isEmpty {
                    problems.append("\(operationID): request body required (fields \(requiredFields))")
                }
            } else if let schema {
                guard let json = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) else {
                    return problems + ["\(operationID): body is not JSON"]
                }
                problems += validate(json, schema: schema, at: "\(operationID) body")
            }
        } else if !body.isEmpty {
            problems.append("\(operationID): sends a body the operation does not take")
        }
        return problems
    }

    /// Returns the violations of every REST request asynccode's client sent, and of every status the
    /// simulator answered them with (not injected failures) that GitHub's description does not list.
    public func violations(in requests: [RecordedRequest]) -> [String] {
        // Git over HTTP, the simulator's own routes (the log storage a job log redirects to) and GitHub's OAuth web
        // paths (`/login/oauth/authorize`, `/login/oauth/access_token`) are not the REST API.
        requests.filter {
            !$0.isGit && !$0.path.hasPrefix("/_simulator/") && !$0.path.hasPrefix("/login/oauth/")
                && ($0.headers["user-agent"] ?? "").hasPrefix("asynccode/")
        }.flatMap { request in
            violations(method: request.method, path: request.path, queryItems: request.queryItems, headers: request.headers, body: request.body)
                + (request.injected ? [] : statusViolations(method: request.method, path: request.path, status: request.status))
        }
    }

    /// Returns a violation when `status` is not among the operation's documented responses.
    public func statusViolations(method: String, path: String, status: Int) -> [String] {
        let segments = path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        guard let (template, _) = match(segments),
              let operation = template.item[method.lowercased()] as? [String: Any],
              let responses = operation["responses"] as? [String: Any] else { return [] }
        // 401 (bad credentials) and 404 (unknown or hidden resource) can come from any endpoint.
        if responses[String(status)] != nil || responses["default"] != nil || status == 401 || status == 404 { return [] }
        return ["simulator answered \(method) \(path) with \(status); GitHub documents \(responses.keys.sorted())"]
    }

    /// Returns the JSON of a named example in `components/examples`.
    public func example(_ name: String) -> Any? {
        ((spec["components"] as? [String: Any])?["examples"] as? [String: Any]).flatMap { ($0[name] as? [String: Any])?["value"] }
    }

    private func match(_ segments: [String]) -> ((segments: [String], item: [String: Any], raw: String), [String: String])? {
        var best: ((segments: [String], item: [String: Any], raw: String), [String: String], Int)? = nil
        for template in templates {
            var values: [String: String] = [:]
            var literals = 0
            var ok = true
            var index = 0
            for (position, part) in template.segments.enumerated() {
                let isLast = position == template.segments.count - 1
                guard index < segments.count else { ok = false; break }
                if part.hasPrefix("{") && part.hasSuffix("}") {
                    let name = String(part.dropFirst().dropLast())
                    if isLast && name == "path" {
                        values[name] = segments[index...].joined(separator: "/")
                        index = segments.count
                    } else {
                        values[name] = segments[index]
                        index += 1
                    }
                } else if part == segments[index] {
                    literals += 1
                    index += 1
                } else {
                    ok = false
                    break
                }
            }
            guard ok, index == segments.count else { continue }
            if best == nil || literals > best!.2 { best = (template, values, literals) }
        }
        return best.map { ($0.0, $0.1) }
    }

    private func resolve(_ value: Any) -> [String: Any]? {
        guard var object = value as? [String: Any] else { return nil }
        var hops = 0
        while let reference = object["$ref"] as? String, hops < 10 {
            var target: Any? = spec
            for part in reference.dropFirst(2).split(separator: "/") {
                let key = String(part).replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
                target = (target as? [String: Any])?[key]
            }
            guard let next = target as? [String: Any] else { return nil }
            object = next
            hops += 1
        }
        return object
    }

    private func validate(scalar text: String, schema: Any, at location: String) -> [String] {
        guard let schema = resolve(schema) else { return [] }
        let type = schema["type"] as? String
        let value: Any
        switch type {
        case "integer":
            guard let number = Int(text) else { return ["\(location): \(text) is not an integer"] }
            value = NSNumber(value: number)
        case "boolean":
            guard text == "true" || text == "false" else { return ["\(location): \(text) is not a boolean"] }
            value = NSNumber(value: text == "true")
        default:
            value = text
        }
        return validate(value, schema: schema, at: location)
    }

    private func isBool(_ number: NSNumber) -> Bool {
        let type = String(cString: number.objCType)
        return type == "c" || type == "B"
    }

    public func validate(_ value: Any, schema rawSchema: Any, at location: String) -> [String] {
        guard let schema = resolve(rawSchema) else { return [] }
        if value is NSNull {
            return schema["nullable"] as? Bool == true || schema.isEmpty ? [] : ["\(location): null is not allowed"]
        }
        if let all = schema["allOf"] as? [Any] {
            return all.flatMap { validate(value, schema: $0, at: location) }
        }
        for key in ["oneOf", "anyOf"] {
            if let options = schema[key] as? [Any] {
                let results = options.map { validate(value, schema: $0, at: location) }
                if results.contains(where: \.isEmpty) { return [] }
                return results.min { $0.count < $1.count } ?? []
            }
        }
        var problems: [String] = []
        if let allowed = schema["enum"] as? [Any] {
            let text = "\(value)"
            if !allowed.contains(where: { "\($0)" == text }) {
                problems.append("\(location): \(text) is not one of \(allowed.map { "\($0)" })")
            }
        }
        switch schema["type"] as? String {
        case "object":
            guard let object = value as? [String: Any] else { return problems + ["\(location): expected an object"] }
            for name in schema["required"] as? [String] ?? [] where object[name] == nil {
                problems.append("\(location): required field \(name) missing")
            }
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for (name, child) in object {
                if let childSchema = properties[name] {
                    problems += validate(child, schema: childSchema, at: "\(location).\(name)")
                } else if let additional = schema["additionalProperties"] {
                    if additional as? Bool == false {
                        problems.append("\(location): unknown field \(name)")
                    } else if let additionalSchema = additional as? [String: Any] {
                        problems += validate(child, schema: additionalSchema, at: "\(location).\(name)")
                    }
                } else if !properties.isEmpty {
                    problems.append("\(location): field \(name) is not in GitHub's schema")
                }
            }
        case "array":
            guard let array = value as? [Any] else { return problems + ["\(location): expected an array"] }
            if let items = schema["items"] {
                for (index, item) in array.enumerated() { problems += validate(item, schema: items, at: "\(location)[\(index)]") }
            }
        case "string":
            if !(value is String) { problems.append("\(location): expected a string") }
        case "integer":
            guard let number = value as? NSNumber, !isBool(number), number.doubleValue == number.doubleValue.rounded() else {
                return problems + ["\(location): expected an integer"]
            }
        case "number":
            guard let number = value as? NSNumber, !isBool(number) else { return problems + ["\(location): expected a number"] }
        case "boolean":
            guard let number = value as? NSNumber, isBool(number) || number == 0 || number == 1 else {
                return problems + ["\(location): expected a boolean"]
            }
        default:
            break
        }
        return problems
    }
}
