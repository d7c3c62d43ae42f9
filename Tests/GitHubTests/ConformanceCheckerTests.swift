import GitHubConformance
import Foundation
import Testing

@Suite(.timeLimit(.minutes(2))) struct ConformanceCheckerTests {
    let headers = ["accept": "application/vnd.github+json", "x-github-api-version": "2022-11-28", "user-agent": "asynccode/test"]
    var checker: OpenAPIConformance { OpenAPIConformance.shared }

    @Test func acceptsAGoodRequest() {
        let body = Array(#"{"title":"t","head":"b","base":"main","draft":true}"#.utf8)
        #expect(checker.violations(method: "POST", path: "/repos/o/r/pulls", queryItems: [], headers: headers, body: body).isEmpty)
    }

    @Test func rejectsWhatGitHubWouldReject() {
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
}
