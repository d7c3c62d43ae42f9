import APIConformance
import Foundation
import Testing
import TestSupport

/// `docs/api/openapi.yaml` is a sound OpenAPI 3.1 description of the API, and the APIConformance validator
/// accepts bodies that follow it and names the JSON path of what does not. (That `GET /api/openapi.yaml`
/// serves the file is tested in AsyncCodeAppTests/APIDescriptionTests.swift.)
@Suite(.timeLimit(.minutes(5))) struct APIDescriptionTests {
    let api: APIConformance

    init() throws { api = try APIConformance.shared }

    func check(_ method: String, _ path: String, _ status: Int, _ json: String, contentType: String? = "application/json") -> [String] {
        api.violations(method: method, path: path, status: status, contentType: contentType, body: Array(json.utf8))
    }

    // MARK: - The document

    /// Whether `openapi-spec-validator` (Python; Debian and pip ship it) is installed here.
    static let externalValidator: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import openapi_spec_validator"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    /// An independent validator agrees that the document is valid OpenAPI 3.1.
    @Test(.enabled(if: externalValidator, "openapi-spec-validator (python3 -m openapi_spec_validator) is not installed on this machine"))
    func anIndependentValidatorAcceptsTheDocument() async throws {
        let result = try await TestSupport.run(["python3", "-m", "openapi_spec_validator", APIConformance.documentPath])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("OK"))
    }

    @Test func isOpenAPI31AndPlainJSON() throws {
        let version = try #require(api.document["openapi"] as? String)
        #expect(version.wholeMatch(of: /3\.1\.[0-9]+/) != nil, "openapi is \(version)")
        // Nothing YAML-only (timestamps, binary) that a JSON tool would choke on.
        #expect(JSONSerialization.isValidJSONObject(api.document))
        let info = try #require(api.document["info"] as? [String: Any])
        let description = try #require(info["description"] as? String)
        #expect(description.contains("404") && description.contains("never `403`") && description.contains("push"))
        let schemes = try #require((api.document["components"] as? [String: Any])?["securitySchemes"] as? [String: [String: Any]])
        #expect(schemes["session"]?["in"] as? String == "cookie" && schemes["session"]?["name"] as? String == "asynccode_session")
        #expect(schemes["bearer"]?["type"] as? String == "http" && schemes["bearer"]?["scheme"] as? String == "bearer")
    }

    @Test func everyReferenceResolves() {
        var references: [(at: String, to: String)] = []
        func walk(_ value: Any, _ location: String) {
            if let object = value as? [String: Any] {
                if let reference = object["$ref"] as? String { references.append((location, reference)) }
                for (key, child) in object { walk(child, location + "/" + key) }
            } else if let array = value as? [Any] {
                for (index, child) in array.enumerated() { walk(child, location + "/\(index)") }
            }
        }
        walk(api.document, "#")
        #expect(references.count > 50)
        for reference in references {
            #expect(reference.to.hasPrefix("#/components/") && api.resolve(reference.to) != nil, "\(reference.at): \(reference.to)")
        }
    }

    @Test func theOperationsAndTheirErrors() throws {
        let expected = [
            "GET /api/openapi.yaml", "GET /api/auth/user", "PUT /api/auth/user", "GET /api/repositories",
            "POST /api/repositories/sync", "GET /api/repositories/{id}/branches", "GET /api/tasks", "POST /api/tasks", "GET /api/tasks/{id}",
            "PUT /api/tasks/{id}/cancel", "GET /api/tasks/{id}/results", "GET /api/pull-requests", "GET /api/credits",
            "GET /api/credits/{account}/transactions", "POST /api/webhooks/github", "GET /api/events", "GET /api/tasks/{id}/events",
        ]
        #expect(Set(api.operations.map { "\($0.method) \($0.path)" }) == Set(expected))
        let ids = api.operations.compactMap { $0.operation["operationId"] as? String }
        #expect(ids.count == api.operations.count && Set(ids).count == ids.count, "every operation has its own operationId")
        let defaultSecurity = try #require(api.document["security"] as? [Any])
        #expect(defaultSecurity.count == 2)
        for (method, path, operation) in api.operations {
            let label = "\(method) \(path)"
            let responses = try #require(operation["responses"] as? [String: Any], "\(label) has responses")
            #expect(responses.keys.contains { $0.hasPrefix("2") }, "\(label) documents a success")
            let security = operation["security"] as? [Any] ?? defaultSecurity
            if path == "/api/openapi.yaml" || path == "/api/webhooks/github" {
                #expect(security.isEmpty, "\(label) needs no sign-in")
                continue
            }
            #expect(!security.isEmpty, "\(label) needs a sign-in")
            for status in ["401", "429", "503"] {
                #expect(problem(responses[status]), "\(label) documents \(status) as a problem")
            }
            let rateLimit = api.resolve((responses["429"] as? [String: Any])?["$ref"] as? String ?? "") as? [String: Any]
            #expect((rateLimit?["headers"] as? [String: Any])?["Retry-After"] != nil, "\(label): 429 has Retry-After")
            if operation["requestBody"] != nil {
                #expect(problem(responses["400"]) && problem(responses["413"]), "\(label) takes a body: 400 and 413")
            }
            if path.contains("{") { #expect(problem(responses["404"]), "\(label) has a path parameter: 404") }
            if method != "GET" { #expect(problem(responses["403"]), "\(label) changes something: 403 for cross-site") }
        }
    }

    /// Whether `response` is documented as an `application/problem+json` Problem.
    func problem(_ response: Any?) -> Bool {
        guard let reference = (response as? [String: Any])?["$ref"] as? String,
              let content = (api.resolve(reference) as? [String: Any])?["content"] as? [String: Any] else { return false }
        return ((content["application/problem+json"] as? [String: Any])?["schema"] as? [String: Any])?["$ref"] as? String
            == "#/components/schemas/Problem"
    }

    @Test func aTaskHasEveryFieldOfItsSummary() throws {
        let schemas = try #require((api.document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let summary = try #require(schemas["TaskSummary"] as? [String: Any])
        let task = try #require(schemas["Task"] as? [String: Any])
        let summaryFields = try #require(summary["properties"] as? [String: Any])
        let taskFields = try #require(task["properties"] as? [String: Any])
        func canonical(_ value: Any?) -> String {
            value.flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]) }.map { String(decoding: $0, as: UTF8.self) } ?? "missing"
        }
        for (name, schema) in summaryFields where name != "prompt" {
            #expect(canonical(schema) == canonical(taskFields[name]), "Task.\(name)")
        }
        #expect(Set(task["required"] as? [String] ?? []) == Set(summary["required"] as? [String] ?? []).union(["requester", "error", "steps"]))
    }

    // MARK: - Bodies that conform

    static let user = #"{"id": 1, "github_id": 583231, "login": "octocat", "display_name": null, "avatar_url": "https://avatars.githubusercontent.com/u/583231"}"#
    static let repository = #"{"id": 7, "github_id": 1296269, "full_name": "octo-org/hello-world", "private": false, "default_branch": "main", "html_url": "https://github.com/octo-org/hello-world", "permission": "write"}"#
    static let summary = #"""
        {"id": 12, "repository": {"id": 7, "full_name": "octo-org/hello-world"}, "kind": "code", "status": "completed",
         "agent": null, "prompt": "Fix the typo", "issue_number": 3, "pull_request": {"number": 4, "url": "https://github.com/octo-org/hello-world/pull/4"},
         "credits_used": "12.5000", "created_at": "2025-01-31T09:30:00Z", "started_at": "2025-01-31T09:30:01.250Z", "completed_at": "2025-01-31T09:31:00+00:00"}
        """#
    static let task = #"""
        {"id": 13, "repository": {"id": 7, "full_name": "octo-org/hello-world"}, "kind": "ask", "status": "pending",
         "agent": "claude", "prompt": "What does this do?", "issue_number": null, "pull_request": null,
         "credits_used": "0.0000", "created_at": "2025-01-31T09:30:00Z", "started_at": null, "completed_at": null,
         "requester": "octocat", "error": null, "steps": [{"step": "queued", "detail": "waiting for a worker", "at": "2025-01-31T09:30:00Z"}]}
        """#
    static let notSignedIn = #"{"type": "https://asynccode.dev/problems/not-signed-in", "title": "Not signed in", "status": 401, "detail": "sign in at /login"}"#

    @Test func acceptsBodiesThatFollowTheDescription() throws {
        let yaml = Array(try Data(contentsOf: URL(fileURLWithPath: APIConformance.documentPath)))
        let cases: [(String, String, Int, String)] = [
            ("GET", "/api/auth/user", 200, Self.user),
            ("PUT", "/api/auth/user", 200, Self.user.replacingOccurrences(of: "null", with: #""Mona""#)),
            ("GET", "/api/repositories", 200, #"{"repositories": [\#(Self.repository)]}"#),
            ("POST", "/api/repositories/sync", 200, #"{"repositories": [], "synced_at": "2025-01-31T09:30:00.123456Z"}"#),
            ("GET", "/api/tasks?status=completed&limit=1", 200, #"{"tasks": [\#(Self.summary)], "next_cursor": "eyJpZCI6MTJ9"}"#),
            ("GET", "/api/tasks", 200, #"{"tasks": [], "next_cursor": null}"#),
            ("POST", "/api/tasks", 201, Self.task),
            ("GET", "/api/tasks/13", 200, Self.task),
            ("PUT", "/api/tasks/13/cancel", 200, Self.task.replacingOccurrences(of: #""pending""#, with: #""cancelled""#)),
            ("GET", "/api/tasks/12/results", 200, #"{"summary": "Fixed it.", "diff_stat": " a | 2 +-", "patch": "--- a/a\n+++ b/a\n", "files": [{"path": "a", "additions": 1, "deletions": 1}], "checks": [{"name": "tests", "passed": true, "status": "exit status 0", "seconds": 1.5, "round": 2}]}"#),
            ("GET", "/api/tasks/13/results", 200, #"{"summary": null, "diff_stat": null, "patch": null, "files": [], "checks": []}"#),
            ("GET", "/api/pull-requests", 200, #"{"pull_requests": [{"id": 2, "repository": {"id": 7, "full_name": "octo-org/hello-world"}, "number": 4, "title": "Fix the typo", "state": "merged", "url": null, "task_id": 12, "created_at": "2025-01-31T09:31:00Z"}]}"#),
            ("GET", "/api/credits", 200, #"{"accounts": [{"account": "octo-org", "balance": "87.5000", "reserved": "10.0000", "used": "12.5000"}]}"#),
            ("GET", "/api/credits/octo-org/transactions", 200, #"{"transactions": [{"id": 3, "amount": "-12.5000", "kind": "usage", "reason": null, "task_id": 12, "created_at": "2025-01-31T09:31:00Z"}]}"#),
            ("POST", "/api/webhooks/github", 202, #"{"status": "queued", "tasks": [12], "commands": []}"#),
            ("POST", "/api/webhooks/github", 401, #"{"error": "signature does not match"}"#),
        ]
        for (method, path, status, body) in cases {
            #expect(check(method, path, status, body) == [], "\(method) \(path)")
        }
        for (method, path) in [("GET", "/api/auth/user"), ("POST", "/api/tasks"), ("GET", "/api/tasks/99"), ("GET", "/api/credits/someone/transactions")] {
            #expect(check(method, path, 401, Self.notSignedIn, contentType: "application/problem+json; charset=utf-8") == [])
        }
        #expect(check("POST", "/api/tasks", 429, Self.notSignedIn.replacingOccurrences(of: "401", with: "429"), contentType: "application/problem+json") == [])
        #expect(api.violations(method: "GET", path: "/api/openapi.yaml", status: 200, contentType: "application/yaml", body: yaml) == [])
        #expect(api.operationID(method: "PUT", path: "/api/tasks/12/cancel?x=1") == "cancelTask")
        #expect(api.operationID(method: "POST", path: "/api/repositories/sync") == "syncRepositories")
    }

    // MARK: - Bodies that do not

    @Test func namesTheJSONPathOfEachViolation() {
        func expectViolation(_ found: [String], _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(found.count == 1 && fragments.allSatisfy { found.first?.contains($0) == true }, "\(found)", sourceLocation: sourceLocation)
        }
        let list = { (task: String) in #"{"tasks": [\#(task)], "next_cursor": null}"# }
        // Wrong type.
        expectViolation(check("GET", "/api/tasks", 200, list(Self.summary.replacingOccurrences(of: #""id": 12"#, with: #""id": "12""#))),
                        "GET /api/tasks → 200: ", "$.tasks[0].id: ", "expected integer, got string")
        expectViolation(check("GET", "/api/tasks/12", 200, Self.task.replacingOccurrences(of: #""0.0000""#, with: "0")), "$.credits_used: expected string")
        expectViolation(check("GET", "/api/repositories", 200, #"{"repositories": [\#(Self.repository.replacingOccurrences(of: "false", with: "0"))]}"#),
                        "$.repositories[0].private: expected boolean, got integer")
        expectViolation(check("GET", "/api/auth/user", 200, Self.user.replacingOccurrences(of: "583231,", with: "true,")), "$.github_id: expected integer, got boolean")
        // Missing required (null is present: a missing key is not).
        expectViolation(check("GET", "/api/auth/user", 200, Self.user.replacingOccurrences(of: #", "display_name": null"#, with: "")), "$.display_name: required but missing")
        expectViolation(check("GET", "/api/tasks/13", 200, Self.task.replacingOccurrences(of: #""created_at": "2025-01-31T09:30:00Z","#, with: "")), "$.created_at: required")
        // Extra property.
        expectViolation(check("GET", "/api/auth/user", 200, Self.user.replacingOccurrences(of: "{", with: #"{"token": "ghu_x", "#)), "$.token: ", "additionalProperties is false")
        expectViolation(check("GET", "/api/tasks/13", 200, Self.task.replacingOccurrences(of: #""step": "queued""#, with: #""step": "queued", "pid": 1"#)), "$.steps[0].pid: ")
        // Bad enum.
        expectViolation(check("GET", "/api/tasks", 200, list(Self.summary.replacingOccurrences(of: #""completed""#, with: #""done""#))),
                        "$.tasks[0].status: ", #""done" is not one of "pending", "running""#)
        expectViolation(check("GET", "/api/repositories", 200, #"{"repositories": [\#(Self.repository.replacingOccurrences(of: #""write""#, with: #""push""#))]}"#),
                        "$.repositories[0].permission: ")
        // Bad date-time.
        expectViolation(check("GET", "/api/tasks/13", 200, Self.task.replacingOccurrences(of: "2025-01-31T09:30:00Z\", \"started_at", with: "2025-02-30T09:30:00Z\", \"started_at")),
                        #"$.created_at: "2025-02-30T09:30:00Z" is not an RFC 3339 date-time"#)
        expectViolation(check("GET", "/api/tasks", 200, list(Self.summary.replacingOccurrences(of: "2025-01-31T09:31:00+00:00", with: "1738315860"))),
                        "$.tasks[0].completed_at: ", "RFC 3339")
        // Null where not allowed, and inside a nullable reference (anyOf).
        expectViolation(check("GET", "/api/tasks", 200, list(Self.summary.replacingOccurrences(of: #""prompt": "Fix the typo""#, with: #""prompt": null"#))),
                        "$.tasks[0].prompt: expected string, got null")
        expectViolation(check("GET", "/api/tasks", 200, list(Self.summary.replacingOccurrences(of: #""number": 4"#, with: #""number": "4""#))),
                        "$.tasks[0].pull_request.number: expected integer")
        // Patterns and limits.
        expectViolation(check("GET", "/api/credits", 200, #"{"accounts": [{"account": "octo-org", "balance": "87.5", "reserved": "0.0000", "used": "0.0000"}]}"#),
                        #"$.accounts[0].balance: "87.5" does not match"#)
        expectViolation(check("GET", "/api/tasks/12/results", 200, #"{"summary": null, "diff_stat": null, "patch": null, "files": [{"path": "a", "additions": -1, "deletions": 0}], "checks": []}"#),
                        "$.files[0].additions: -1 is less than 0")
        expectViolation(check("GET", "/api/auth/user", 401, #"{"type": "about:blank", "title": "Not signed in", "status": 401}"#, contentType: "application/problem+json"),
                        "$.type: ")
        expectViolation(check("GET", "/api/tasks", 200, list(Self.summary.replacingOccurrences(of: "Fix the typo", with: String(repeating: "é", count: 201)))),
                        "$.tasks[0].prompt: longer than 200 characters")
    }

    @Test func checksThePathTheStatusAndTheContentType() {
        #expect(check("GET", "/api/tasks/12", 418, "{}").first?.contains("getTask does not document 418") == true)
        #expect(check("DELETE", "/api/tasks/12", 200, "{}").first?.contains("/api/tasks/{id} has no DELETE operation") == true)
        #expect(check("GET", "/api/nothing", 200, "{}").first?.contains("no such path") == true)
        #expect(check("GET", "/api/auth/user", 401, Self.notSignedIn, contentType: "application/json").first?.contains("content type application/json is not one of application/problem+json") == true)
        #expect(check("GET", "/api/auth/user", 200, Self.user, contentType: nil).first?.contains("content type missing") == true)
        #expect(check("GET", "/api/auth/user", 200, "{\"id\": ", contentType: "application/json").first?.contains("not JSON") == true)
        #expect(check("GET", "/api/auth/user", 200, "[]").first?.contains("$: expected object, got array") == true)
    }

    @Test func dateTimesFollowRFC3339() {
        let schema: [String: Any] = ["type": "string", "format": "date-time"]
        for good in ["2025-01-31T09:30:00Z", "2024-02-29T23:59:60.123456+05:30", "2025-01-31t09:30:00z", "2000-02-29T00:00:00-12:00"] {
            #expect(api.validate(good, schema: schema) == [], "\(good)")
        }
        for bad in ["2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2025-01-31T24:00:00Z", "2025-01-31T09:30Z", "2025-01-31", "2025-01-31T09:30:00",
                    "2025-01-31 09:30:00Z", "2025-13-01T00:00:00Z", "2025-01-31T09:30:00+24:00", "٢٠٢٥-01-31T09:30:00Z", " 2025-01-31T09:30:00Z"] {
            #expect(api.validate(bad, schema: schema, at: "$.at") == [#"$.at: \#(String(data: try! JSONSerialization.data(withJSONObject: bad, options: .fragmentsAllowed), encoding: .utf8)!) is not an RFC 3339 date-time"#], "\(bad)")
        }
    }

    @Test func schemaKeywordsTheDescriptionMayUse() throws {
        let oneOf: [String: Any] = ["oneOf": [["type": "integer"], ["type": "number"]]]
        #expect(api.validate(NSNumber(value: 1.5), schema: oneOf) == [])
        #expect(api.validate(NSNumber(value: 2), schema: oneOf) == ["$: matches 2 of oneOf's schemas instead of one"])
        let list: [String: Any] = ["type": "array", "minItems": 1, "maxItems": 2, "items": ["type": ["string", "null"], "enum": ["a", NSNull()]]]
        #expect(api.validate([NSNull(), "a"], schema: list) == [])
        #expect(api.validate([] as [Any], schema: list) == ["$: fewer than 1 items"])
        #expect(api.validate(["a", "b", "a"], schema: list) == ["$: more than 2 items", #"$[1]: "b" is not one of "a", null"#])
        #expect(api.validate("x", schema: ["$ref": "#/components/schemas/Nothing"]) == ["$: $ref #/components/schemas/Nothing does not resolve"])
        #expect(api.validate("https://example.com/a", schema: ["format": "uri"]) == [])
        #expect(api.validate("/a", schema: ["format": "uri"]) == [#"$: "/a" is not an absolute URI"#])
        #expect(throws: APIConformance.LoadError.self) { try APIConformance(yaml: "paths: {}\nx: 2025-01-31T09:30:00Z\n") }
        #expect(throws: APIConformance.LoadError.self) { try APIConformance(yaml: "openapi: '3.1.0'\n") }
        #expect(throws: APIConformance.LoadError.self) { try APIConformance(path: "/no/such/openapi.yaml") }
    }
}
