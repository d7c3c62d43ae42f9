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

extension GitHubSimulator {
    /// Adds `label` to an issue and delivers the `issues` `labeled` webhook, as GitHub does.
    @discardableResult
    public func postLabel(repositoryID: Int64, issueNumber: Int, label: String, sender: String = "octocat") async throws -> SimulatedDelivery {
        let api = SimulatorAPI(store: store, configuration: configuration, webhooks: webhooks)
        let found = store.withState { state -> (issue: [String: Any], repo: [String: Any], installationID: Int64)? in
            guard let repo = state.repositories[repositoryID], var issue = state.issues[repositoryID]?[issueNumber] else { return nil }
            if !issue.labels.contains(label) { issue.labels.append(label) }
            state.issues[repositoryID]?[issueNumber] = issue
            return (api.issueJSON(issue, repo: repo), api.repositoryJSON(repo), repo.installationID)
        }
        guard let found else { throw SimulatorError("no issue \(issueNumber) in repository \(repositoryID)") }
        let payload: [String: Any] = [
            "action": "labeled", "issue": found.issue, "label": api.labelJSON(label), "repository": found.repo,
            "sender": userJSON(sender),
        ]
        return try await deliverWebhook(event: "issues", payload: payload, installationID: found.installationID, repositoryID: repositoryID)
    }

    /// Records a review by `author` on a pull request and delivers the `pull_request_review` `submitted`
    /// webhook. `state` is GitHub's webhook spelling: `commented`, `changes_requested` or `approved`.
    @discardableResult
    public func postReview(
        repositoryID: Int64, pullNumber: Int, state reviewState: String, body: String?, author: String = "octocat"
    ) async throws -> SimulatedDelivery {
        let api = SimulatorAPI(store: store, configuration: configuration, webhooks: webhooks)
        let base = baseURL
        let found = store.withState { state -> (payload: [String: Any], installationID: Int64)? in
            guard let repo = state.repositories[repositoryID], let pull = state.pullRequests[repositoryID]?[pullNumber] else { return nil }
            let review = SimulatedReview(id: state.makeID(), repositoryID: repositoryID, pullNumber: pullNumber, author: author,
                                         state: reviewState.uppercased(), body: body, commitID: pull.headSHA)
            state.reviews.append(review)
            let reviewJSON: [String: Any] = [
                "id": review.id, "node_id": "PRR_\(review.id)", "body": nullable(body), "state": reviewState.lowercased(),
                "user": userJSON(author), "commit_id": pull.headSHA, "author_association": "COLLABORATOR",
                "html_url": "\(base)/\(repo.fullName)/pull/\(pullNumber)#pullrequestreview-\(review.id)",
                "submitted_at": ISO8601DateFormatter().string(from: Date()),
            ]
            return ([
                "action": "submitted", "review": reviewJSON, "pull_request": api.pullJSON(pull, repo: repo),
                "repository": api.repositoryJSON(repo), "sender": userJSON(author),
            ], repo.installationID)
        }
        guard let found else { throw SimulatorError("no pull request \(pullNumber) in repository \(repositoryID)") }
        return try await deliverWebhook(event: "pull_request_review", payload: found.payload, installationID: found.installationID,
                                        repositoryID: repositoryID)
    }
}

extension GitHubSimulator {
    /// `POST /_simulator/comments` with `{"repository": "owner/name", "issue": N, "body": "...", "author": "login"}`:
    /// a user's comment and its webhook, for the demo's `--keep` mode (answers the delivery's status).
    func postCommentAsUser(_ body: [UInt8]) async -> SimResponse {
        guard let fields = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any],
              let fullName = fields["repository"] as? String, let number = fields["issue"] as? Int,
              let text = fields["body"] as? String else {
            return .message(422, "expected {\"repository\": \"owner/name\", \"issue\": N, \"body\": \"...\", \"author\": \"login\"}")
        }
        let parts = fullName.split(separator: "/").map(String.init)
        guard parts.count == 2, let repo = repository(owner: parts[0], name: parts[1]), issue(repositoryID: repo.id, number: number) != nil else {
            return .notFound
        }
        guard let posted = try? await postUserComment(
            repositoryID: repo.id, issueNumber: number, body: text, author: fields["author"] as? String ?? "octocat") else {
            return .notFound
        }
        return .json(201, ["comment_id": posted.comment.id, "delivery_status": posted.delivery.statusCode])
    }
}
