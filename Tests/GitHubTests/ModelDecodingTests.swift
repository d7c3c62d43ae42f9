import GitHubConformance
import Foundation
import GitHub
import Testing

/// The client's models must decode GitHub's own response examples from the OpenAPI description,
/// not only what the simulator sends.
@Suite(.timeLimit(.minutes(2))) struct ModelDecodingTests {
    func decode<T: Decodable>(_ type: T.Type, example name: String) throws -> T {
        let value = try #require(try OpenAPIConformance.shared.example(name), "no example \(name)")
        let data = try JSONSerialization.data(withJSONObject: value)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(T.self, from: data)
    }

    @Test func appTokenAndDeliveries() throws {
        #expect(try decode(GitHubApp.self, example: "integration").id > 0)
        let token = try decode(InstallationToken.self, example: "installation-token")
        #expect(!token.token.isEmpty)
        #expect(token.permissions?.isEmpty == false)
        #expect(try decode([WebhookDelivery].self, example: "hook-delivery-items").first?.event.isEmpty == false)
    }

    @Test func repositoryIssuesAndComments() throws {
        #expect(try decode(Repository.self, example: "full-repository-default-response").fullName.contains("/"))
        #expect(try decode(CollaboratorPermission.self, example: "repository-collaborator-permission-response-if-user-has-admin-permissions").permission == "admin")
        let issue = try decode(Issue.self, example: "issue")
        #expect(issue.number > 0)
        #expect(try decode(IssueComment.self, example: "issue-comment").id > 0)
        #expect(try decode([IssueComment].self, example: "issue-comment-items").isEmpty == false)
        #expect(try decode(Reaction.self, example: "reaction").content == .heart)
        #expect(try decode([Label].self, example: "label-items").isEmpty == false)
    }

    @Test func pullRequestsReviewsAndContents() throws {
        #expect(try decode(PullRequest.self, example: "pull-request").head.ref.isEmpty == false)
        #expect(try decode([PullRequest].self, example: "pull-request-simple-items").isEmpty == false)
        #expect(try decode(PullRequest.self, example: "pull-request-review-request").number > 0)
        #expect(try decode(PullRequestReview.self, example: "pull-request-review").id > 0)
        let file = try decode(FileContents.self, example: "content-file-response-if-content-is-a-file")
        #expect(file.type == "file")
        #expect(file.encoding == "base64")  // the example's content is a placeholder, not base64
        // GitHub wraps base64 content in lines.
        let wrapped = try JSONDecoder().decode(FileContents.self, from: Data(#"{"type":"file","path":"a","sha":"x","encoding":"base64","content":"SGVs\nbG8=\n"}"#.utf8))
        #expect(wrapped.decodedContent.map { String(decoding: $0, as: UTF8.self) } == "Hello")
    }
}
