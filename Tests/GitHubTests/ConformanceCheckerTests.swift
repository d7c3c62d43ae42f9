import GitHubConformance
import Foundation
import Testing

@Suite(.timeLimit(.minutes(2))) struct ConformanceCheckerTests {
    let headers = ["accept": "application/vnd.github+json", "x-github-api-version": "2022-11-28", "user-agent": "asynccode/test"]
    var checker: OpenAPIConformance { get throws { try OpenAPIConformance.shared } }

    @Test func acceptsAGoodRequest() throws {
        let body = Array(#"{"title":"t","head":"b","base":"main","draft":true}"#.utf8)
        #expect(try checker.violations(method: "POST", path: "/repos/o/r/pulls", queryItems: [], headers: headers, body: body).isEmpty)
    }

    @Test func rejectsWhatGitHubWouldReject() throws {
        let checker = try checker
        func problems(_ method: String, _ path: String, query: [(name: String, value: String)] = [], headers: [String: String]? = nil, body: String = "") -> [String] {
            checker.violations(method: method, path: path, queryItems: query, headers: headers ?? self.headers, body: Array(body.utf8))
        }
        #expect(!problems("GET", "/repos/o/r/no-such-thing").isEmpty)
        #expect(!problems("PUT", "/repos/o/r/issues/1").isEmpty)
        #expect(!problems("POST", "/repos/o/r/issues/1/comments").isEmpty, "missing required body")
        #expect(!problems("POST", "/repos/o/r/issues/1/comments", body: #"{"text":"x"}"#).isEmpty, "missing required field")
        #expect(!problems("POST", "/repos/o/r/issues/comments/1/reactions", body: #"{"content":"smile"}"#).isEmpty, "enum")
        #expect(!problems("POST", "/repos/o/r/pulls/1/reviews", body: #"{"event":"LGTM"}"#).isEmpty, "enum")
        #expect(!problems("GET", "/repos/o/r/pulls", query: [("state", "merged")]).isEmpty, "query enum")
        #expect(!problems("GET", "/repos/o/r/issues/abc").isEmpty, "integer path parameter")
        #expect(!problems("GET", "/repos/o/r/issues/1/comments", query: [("per_page", "ten")]).isEmpty, "integer query")
        #expect(!problems("POST", "/app/installations/1/access_tokens", body: #"{"repository_ids":["x"]}"#).isEmpty, "array items")
        #expect(!problems("POST", "/app/installations/1/access_tokens", body: #"{"permissions":{"issues":"admin"}}"#).isEmpty, "permission enum")
        #expect(!problems("GET", "/repos/o/r", headers: ["accept": "application/json"]).isEmpty, "headers")
        #expect(problems("GET", "/repos/o/r/contents/a/b/c.txt", query: [("ref", "main")]).isEmpty, "multi-segment path")
    }

    /// The description is the repository's own copy: a clone needs nothing beside it.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["GITHUB_OPENAPI_SPEC"] == nil, "GITHUB_OPENAPI_SPEC names another description"))
    func theDescriptionIsInTheRepository() throws {
        let root = OpenAPIConformance.packageRoot.standardizedFileURL.path + "/"
        let path = URL(fileURLWithPath: OpenAPIConformance.specPath).standardizedFileURL.path
        #expect(path.hasPrefix(root), "\(path) is outside the repository \(root)")
        #expect(FileManager.default.fileExists(atPath: path))
        _ = try OpenAPIConformance.shared
    }

    /// A missing description is an error naming the file (a failed test), not a stopped test process.
    @Test func aMissingDescriptionIsAnErrorNamingTheFile() {
        let missing = "/nonexistent/asynccode/api.github.com.json"
        let error = #expect(throws: OpenAPIConformance.CheckerError.self) { try OpenAPIConformance(path: missing) }
        #expect(error?.description.contains(missing) == true)
        #expect(error?.description.contains("Tests/Fixtures/README.md") == true)
    }

    /// Every operation the client names (`route: "METHOD /template"` in Sources/GitHub) is in the
    /// trimmed description; when one is missing, add it to scripts/trim-openapi and run it again.
    @Test func everyRouteTheClientNamesIsDescribed() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: OpenAPIConformance.specPath))
        let paths = try #require((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["paths"] as? [String: Any])
        let sources = OpenAPIConformance.packageRoot.appendingPathComponent("Sources/GitHub")
        let files = try FileManager.default.contentsOfDirectory(atPath: sources.path).filter { $0.hasSuffix(".swift") }
        var routes: [String] = []
        for file in files {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            for match in text.matches(of: /route: "([A-Z]+) (\/[^"\\]*)"/) { routes.append("\(match.1) \(match.2)") }
        }
        #expect(routes.count >= 20, "found \(routes.count) routes in Sources/GitHub")
        for route in routes {
            let parts = route.split(separator: " ", maxSplits: 1).map(String.init)
            let item = paths[parts[1]] as? [String: Any]
            #expect(item?[parts[0].lowercased()] != nil, "\(route) is not in \(OpenAPIConformance.specPath)")
        }
    }
}
