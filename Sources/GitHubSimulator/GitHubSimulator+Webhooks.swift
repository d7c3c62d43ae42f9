import Foundation

// MARK: Webhooks (beyond issue 3's list: lets the demo and end-to-end tests drive asynccode like GitHub does)

extension GitHubSimulator {
    /// The URL of a built-in receiver that answers 200 (its requests show up in ``requests``).
    public var webhookSinkURL: String { "\(baseURL)/_simulator/webhook-sink" }

    /// Sends later webhooks to `url`, signed with `secret` (`X-Hub-Signature-256`) when given.
    public func configureWebhook(url: String, secret: String?) {
        store.withState { state in
            state.webhookURL = url
            state.webhookSecret = secret
        }
    }

    /// Posts a webhook delivery of `event` with `payload` (adding `installation`) and records it;
    /// returns the delivery with the receiver's status code (0: unreachable or no URL configured).
    @discardableResult
    public func deliverWebhook(event: String, payload: [String: Any], installationID: Int64?, repositoryID: Int64?) async throws -> SimulatedDelivery {
        var payload = payload
        if let installationID { payload["installation"] = ["id": installationID, "node_id": "MDIz\(installationID)"] }
        let bytes = [UInt8](try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys]))
        return await webhooks.send(event: event, action: payload["action"] as? String, payload: bytes,
                                   installationID: installationID, repositoryID: repositoryID, redelivery: false)
    }

    /// Adds a comment by `author` (e.g. `/asynccode fix the flaky test`) and delivers the matching
    /// `issue_comment` `created` webhook, as GitHub does when a user comments.
    @discardableResult
    public func postUserComment(repositoryID: Int64, issueNumber: Int, body: String, author: String = "octocat") async throws -> (comment: SimulatedComment, delivery: SimulatedDelivery) {
        let comment = addComment(repositoryID: repositoryID, issueNumber: issueNumber, body: body, author: author)
        guard let payload = issueCommentPayload(commentID: comment.id, action: "created") else {
            throw SimulatorError("no issue \(issueNumber) in repository \(repositoryID)")
        }
        let installationID = store.withState { $0.repositories[repositoryID]?.installationID }
        let delivery = try await deliverWebhook(event: "issue_comment", payload: payload, installationID: installationID, repositoryID: repositoryID)
        return (comment, delivery)
    }

    /// Returns an `issue_comment` payload (without `installation`) for a comment, shaped like GitHub's.
    public func issueCommentPayload(commentID: Int64, action: String) -> [String: Any]? {
        let api = SimulatorAPI(store: store, configuration: configuration, webhooks: webhooks)
        return store.withState { state -> [String: Any]? in
            guard let comment = state.comments[commentID], let repo = state.repositories[comment.repositoryID],
                  let issue = state.issues[repo.id]?[comment.issueNumber] else { return nil }
            func association(_ login: String) -> String {
                if login.lowercased() == repo.owner.lowercased() { return "OWNER" }
                return repo.collaborators[login] != nil ? "COLLABORATOR" : "NONE"
            }
            var issueJSON = api.issueJSON(issue, repo: repo)
            issueJSON["author_association"] = association(issue.author)
            issueJSON["locked"] = false
            issueJSON["comments"] = state.comments.values.filter { $0.repositoryID == repo.id && $0.issueNumber == issue.number }.count
            var commentJSON = api.commentJSON(comment, repo: repo)
            commentJSON["author_association"] = association(comment.author)
            commentJSON["issue_url"] = "\(baseURL)/repos/\(repo.fullName)/issues/\(issue.number)"
            commentJSON["node_id"] = "IC_\(comment.id)"
            commentJSON["performed_via_github_app"] = NSNull()
            return [
                "action": action, "issue": issueJSON, "comment": commentJSON,
                "repository": api.repositoryJSON(repo), "sender": userJSON(comment.author),
            ]
        }
    }
}
