import Foundation
import Intake
import Models
import Testing
import TestSupport

let handledExamples = TestEnvironment.handledWebhookExamples()

/// Returns a fixture as a JSON object, edited by `edit`.
func editedFixture(_ path: String, _ edit: (inout [String: Any]) -> Void) throws -> [UInt8] {
    var object = try JSONSerialization.jsonObject(with: Data(TestEnvironment.fixture("webhooks/" + path))) as! [String: Any]
    edit(&object)
    return Array(try JSONSerialization.data(withJSONObject: object))
}

func setPath(_ object: inout [String: Any], _ keys: [String], _ value: Any) {
    guard let first = keys.first else { return }
    if keys.count == 1 {
        object[first] = value
        return
    }
    var child = object[first] as? [String: Any] ?? [:]
    setPath(&child, Array(keys.dropFirst()), value)
    object[first] = child
}

@Suite(.timeLimit(.minutes(10))) struct WebhookDecoderTests {
    let decoder = WebhookDecoder()

    @Test func everyHandledEventHasExamples() {
        #expect(handledExamples.count >= 70)
    }

    @Test(arguments: handledExamples)
    func decodesEveryExample(_ path: String) throws {
        let event = String(path.split(separator: "/")[0])
        let body = try TestEnvironment.fixture("webhooks/" + path)
        let plan = try decoder.plan(event: event, deliveryID: "d-1", body: body)
        #expect(plan.event == event)
        #expect(plan.payload == body)
        if event != "ping" {
            let action = String(path.split(separator: "/")[1].split(separator: ".")[0])
            #expect(plan.action == action)
        }
        // No example holds a command: none may queue work.
        #expect(plan.tasks.isEmpty)
        #expect(plan.controls.isEmpty)
    }

    @Test func commentWithCommandMakesTask() throws {
        let body = try editedFixture("issue_comment/created.with-installation.payload.json") {
            setPath(&$0, ["comment", "body"], "Thanks!\n/asynccode --agent codex fix readme\nmore context")
        }
        let plan = try decoder.plan(event: "issue_comment", deliveryID: "guid-1", body: body)
        #expect(plan.tasks.count == 1)
        let task = try #require(plan.tasks.first)
        #expect(task.kind == .code)
        #expect(task.agent == "codex")
        #expect(task.prompt == "fix readme\n\nmore context")
        #expect(task.origin.installationID == 1)
        #expect(task.origin.repository.fullName == "Codertocat/Hello-World")
        #expect(task.origin.repository.cloneURL == "https://github.com/Codertocat/Hello-World.git")
        #expect(task.origin.repository.defaultBranch == "master")
        #expect(task.origin.requester.login == "Codertocat")
        #expect(task.origin.issueNumber == 1)
        #expect(task.origin.isPullRequest == false)
        #expect(task.origin.source == .issueComment)
        #expect(task.origin.commentID == 492700400)
        #expect(task.origin.commandIndex == 0)
        #expect(plan.installationID == 1)
        #expect(plan.repositoryID == 186853002)
    }

    @Test func controlAndInvalidCommandsAreRecorded() throws {
        let body = try editedFixture("issue_comment/created.with-installation.payload.json") {
            setPath(&$0, ["comment", "body"], "/asynccode cancel\n/asynccode --priority asap go\n/asynccode ask why")
        }
        let plan = try decoder.plan(event: "issue_comment", deliveryID: "guid-1", body: body)
        #expect(plan.controls.map(\.verb) == [.cancel, .invalid])
        #expect(plan.controls.map(\.origin.commandIndex) == [0, 1])
        #expect(plan.tasks.map(\.origin.commandIndex) == [2])
        #expect(plan.tasks.first?.kind == .ask)
    }

    @Test func overLimitCommandsAreReported() throws {
        let body = try editedFixture("issue_comment/created.with-installation.payload.json") {
            setPath(&$0, ["comment", "body"], "/asynccode a\n/asynccode b\n/asynccode c\n/asynccode d")
        }
        let plan = try decoder.plan(event: "issue_comment", deliveryID: "guid-1", body: body)
        #expect(plan.tasks.count == 3)
        #expect(plan.controls.count == 1)
        #expect(plan.controls.first?.verb == .invalid)
        #expect(plan.controls.first?.argument.contains("only 3 commands") == true)
    }

    @Test func commentOnPullRequestIsMarked() throws {
        let body = try editedFixture("issue_comment/created.with-installation.payload.json") {
            setPath(&$0, ["comment", "body"], "/asynccode address the review")
            setPath(&$0, ["issue", "pull_request"], ["url": "https://api.github.com/repos/o/r/pulls/1"])
        }
        let plan = try decoder.plan(event: "issue_comment", deliveryID: "g", body: body)
        #expect(plan.tasks.first?.origin.isPullRequest == true)
    }

    @Test func botsAreIgnored() throws {
        for (keys, value) in [(["sender", "type"], "Bot"), (["comment", "user", "type"], "Bot"),
                              (["sender", "login"], "asynccode[bot]")] {
            let body = try editedFixture("issue_comment/created.with-installation.payload.json") {
                setPath(&$0, ["comment", "body"], "/asynccode fix")
                setPath(&$0, keys, value)
            }
            let plan = try decoder.plan(event: "issue_comment", deliveryID: "g", body: body)
            #expect(plan.tasks.isEmpty)
            #expect(plan.ignoredReason?.contains("bot") == true)
        }
    }

    @Test func editedCommentsDoNotStartWork() throws {
        let body = try editedFixture("issue_comment/edited.payload.json") {
            setPath(&$0, ["comment", "body"], "/asynccode fix")
            setPath(&$0, ["installation"], ["id": 1])
        }
        let plan = try decoder.plan(event: "issue_comment", deliveryID: "g", body: body)
        #expect(plan.tasks.isEmpty)
        #expect(plan.ignoredReason == "issue_comment edited does not start work")
    }

    @Test func commandWithoutInstallationIsIgnored() throws {
        let body = try editedFixture("issue_comment/created.payload.json") {
            setPath(&$0, ["comment", "body"], "/asynccode fix")
        }
        let plan = try decoder.plan(event: "issue_comment", deliveryID: "g", body: body)
        #expect(plan.tasks.isEmpty)
        #expect(plan.ignoredReason?.contains("not an App delivery") == true)
    }

    @Test func anyLabelGoesToTheExecutorToCheckAgainstTheRepositorysTrigger() throws {
        let body = try editedFixture("issues/labeled.payload.json") {
            setPath(&$0, ["label", "name"], "AsyncCode")
            setPath(&$0, ["installation"], ["id": 7])
        }
        let plan = try decoder.plan(event: "issues", deliveryID: "g", body: body)
        #expect(plan.tasks.isEmpty)
        let control = try #require(plan.controls.first)
        #expect(control.verb == .label)
        #expect(control.argument == "AsyncCode")
        #expect(control.origin.source == .label)
        #expect(control.origin.commentID == nil)
        #expect(control.origin.installationID == 7)
        #expect(control.origin.issueNumber == 1)
        // The repository's owner is known, so the installation's paying account can be recorded.
        #expect(control.origin.repository.owner?.login == "Codertocat")

        let unlabeled = try editedFixture("issues/labeled.payload.json") {
            setPath(&$0, ["installation"], ["id": 7])
            setPath(&$0, ["action"], "unlabeled")
        }
        #expect(try decoder.plan(event: "issues", deliveryID: "g", body: unlabeled).controls.isEmpty)
        let byBot = try editedFixture("issues/labeled.payload.json") {
            setPath(&$0, ["installation"], ["id": 7])
            setPath(&$0, ["sender", "type"], "Bot")
        }
        #expect(try decoder.plan(event: "issues", deliveryID: "g", body: byBot).controls.isEmpty)
    }

    @Test func reviewAndReviewCommentCommands() throws {
        let review = try editedFixture("pull_request_review/submitted.payload.json") {
            setPath(&$0, ["review", "body"], "/asynccode handle the nits")
        }
        let reviewPlan = try decoder.plan(event: "pull_request_review", deliveryID: "g", body: review)
        #expect(reviewPlan.tasks.first?.origin.source == .review)
        #expect(reviewPlan.tasks.first?.origin.isPullRequest == true)
        #expect(reviewPlan.tasks.first?.origin.issueNumber == 2)

        let comment = try editedFixture("pull_request_review_comment/created.payload.json") {
            setPath(&$0, ["comment", "body"], "/asynccode rename this")
            setPath(&$0, ["installation"], ["id": 1])
        }
        let commentPlan = try decoder.plan(event: "pull_request_review_comment", deliveryID: "g", body: comment)
        #expect(commentPlan.tasks.first?.origin.source == .reviewComment)
        // The fixture's comment is on README.md line 265: the prompt says so.
        #expect(commentPlan.tasks.first?.prompt.hasPrefix("rename this\n\n(A review comment on `README.md` line 265)") == true)
    }

    @Test func pullRequestStates() throws {
        func state(_ path: String) throws -> PullRequestUpdate.State? {
            let plan = try decoder.plan(event: "pull_request", deliveryID: "g", body: TestEnvironment.fixture("webhooks/" + path))
            if case .pullRequestUpdated(let update)? = plan.stateChanges.first { return update.state }
            return nil
        }
        #expect(try state("pull_request/closed.payload.json") == .closed)
        #expect(try state("pull_request/closed.merged.payload.json") == .merged)
        #expect(try state("pull_request/reopened.payload.json") == .open)
        #expect(try state("pull_request/opened.payload.json") == nil)
    }

    @Test func installationEvents() throws {
        let created = try decoder.plan(event: "installation", deliveryID: "g",
                                       body: TestEnvironment.fixture("webhooks/installation/created.payload.json"))
        guard case .installationCreated(let installation, let repositories)? = created.stateChanges.first else {
            Issue.record("expected installationCreated")
            return
        }
        #expect(installation.account.login == "Codertocat")
        #expect(!repositories.isEmpty)
        let deleted = try decoder.plan(event: "installation", deliveryID: "g",
                                       body: TestEnvironment.fixture("webhooks/installation/deleted.payload.json"))
        #expect(deleted.stateChanges.count == 1)
        let removed = try decoder.plan(event: "installation_repositories", deliveryID: "g",
                                       body: TestEnvironment.fixture("webhooks/installation_repositories/removed.payload.json"))
        guard case .repositoriesRemoved(_, let ids)? = removed.stateChanges.first else {
            Issue.record("expected repositoriesRemoved")
            return
        }
        #expect(!ids.isEmpty)
    }

    @Test func malformedBodies() {
        #expect(throws: IntakeError(.invalidJSON, "the body is not valid JSON")) {
            try decoder.plan(event: "issue_comment", deliveryID: "g", body: Array("{not json".utf8))
        }
        #expect(throws: IntakeError(.unexpectedPayload, "the body is not a issue_comment payload")) {
            try decoder.plan(event: "issue_comment", deliveryID: "g", body: Array(#"{"action":"created","comment":{"body":"/asynccode"}}"#.utf8))
        }
        #expect(throws: IntakeError(.unexpectedPayload, "the body is not a ping payload")) {
            try decoder.plan(event: "ping", deliveryID: "g", body: Array("[1,2]".utf8))
        }
    }

    @Test func commentsWithoutTheWordSkipDecoding() throws {
        // Valid JSON of any shape: a comment event without the word is filed without being decoded.
        let plan = try decoder.plan(event: "issue_comment", deliveryID: "g",
                                    body: Array(#"{"action":"created","installation":{"id":5},"repository":{"id":6}}"#.utf8))
        #expect(plan.ignoredReason == "no command")
        #expect(plan.installationID == 5)
        #expect(plan.repositoryID == 6)
        // The word with an escaped slash still leads to a full decode.
        let original = String(decoding: try TestEnvironment.fixture("webhooks/issue_comment/created.with-installation.payload.json"), as: UTF8.self)
        let text = original.replacingOccurrences(of: "You are totally right! I'll get this fixed right away.", with: #"\/asynccode fix"#)
        #expect(text.contains(#"\/asynccode fix"#))
        #expect(try decoder.plan(event: "issue_comment", deliveryID: "g", body: Array(text.utf8)).tasks.count == 1)
    }

    @Test func unknownEventsAreIgnored() throws {
        let plan = try decoder.plan(event: "star", deliveryID: "g", body: Array(#"{"action":"created"}"#.utf8))
        #expect(plan.ignoredReason == "event star is not handled")
        #expect(plan.action == "created")
    }

    @Test func headerValidation() {
        #expect(WebhookDecoder.isValidDeliveryID("72d3162e-cc78-11e3-81ab-4c9367dc0958"))
        #expect(!WebhookDecoder.isValidDeliveryID(""))
        #expect(!WebhookDecoder.isValidDeliveryID("has space"))
        #expect(!WebhookDecoder.isValidDeliveryID(String(repeating: "a", count: 129)))
        #expect(WebhookDecoder.isValidEventName("pull_request_review"))
        #expect(!WebhookDecoder.isValidEventName("Issue-Comment"))
    }
}

@Suite(.timeLimit(.minutes(10))) struct WebhookVerifierTests {
    @Test func acceptsCurrentAndPreviousSecret() {
        let body = Array(#"{"a":1}"#.utf8)
        let verifier = WebhookVerifier(secrets: ["new", "old"])
        #expect(verifier.isValid(signatureHeader: WebhookVerifier.signature(for: body, secret: "new"), body: body))
        #expect(verifier.isValid(signatureHeader: WebhookVerifier.signature(for: body, secret: "old"), body: body))
        #expect(!verifier.isValid(signatureHeader: WebhookVerifier.signature(for: body, secret: "other"), body: body))
    }

    @Test func refusesMalformedHeaders() {
        let body = Array("x".utf8)
        let verifier = WebhookVerifier(secrets: ["s"])
        let good = WebhookVerifier.signature(for: body, secret: "s")
        #expect(verifier.isValid(signatureHeader: good, body: body))
        #expect(verifier.isValid(signatureHeader: "SHA256=" + good.dropFirst(7).uppercased(), body: body))
        #expect(verifier.isValid(signatureHeader: " \t" + good + " ", body: body))
        // Bytes that are letters or "=" once 0x20 is set, and a Unicode space, are not taken for them.
        for bad in [nil, "", "sha256=", "sha1=" + good.dropFirst(7), String(good.dropLast()), good + "00",
                    "sha256=" + String(repeating: "z", count: 64), "sha256\u{1D}" + good.dropFirst(7),
                    "\u{13}ha256=" + good.dropFirst(7), "\u{A0}" + good, good + "\u{A0}"] {
            #expect(!verifier.isValid(signatureHeader: bad, body: body), "\(bad ?? "nil")")
        }
        #expect(!WebhookVerifier(secrets: []).isValid(signatureHeader: good, body: body))
    }
}

@Suite(.timeLimit(.minutes(10))) struct ReviewFollowUpTests {
    let decoder = WebhookDecoder()

    func review(state: String, body: String?, head: String = "asynccode/7-fix-readme", author: String = "asynccode[bot]",
                authorType: String = "Bot") throws -> [UInt8] {
        try editedFixture("pull_request_review/submitted.payload.json") { object in
            setPath(&object, ["review", "state"], state)
            setPath(&object, ["review", "body"], body as Any? ?? NSNull())
            setPath(&object, ["pull_request", "head", "ref"], head)
            setPath(&object, ["pull_request", "user", "login"], author)
            setPath(&object, ["pull_request", "user", "type"], authorType)
        }
    }

    @Test func changesRequestedOnTheBotsPullRequestIsAFollowUp() throws {
        let plan = try decoder.plan(event: "pull_request_review", deliveryID: "g", body: try review(
            state: "changes_requested", body: "Please mention the license."))
        try #require(plan.tasks.count == 1)
        #expect(plan.tasks[0].kind == .code)
        #expect(plan.tasks[0].prompt == "Please mention the license.")
        #expect(plan.tasks[0].origin.isPullRequest)
        #expect(plan.tasks[0].origin.source == .review)
        // Any branch name (repositories choose their prefix): the writer checks the pull request is the bot's.
        #expect(plan.tasks[0].requiresOwnPullRequest)
        #expect(plan.ignoredReason == nil)
        let custom = try decoder.plan(event: "pull_request_review", deliveryID: "g", body: try review(
            state: "changes_requested", body: "Again", head: "bot/3-x"))
        #expect(custom.tasks.first?.requiresOwnPullRequest == true)
    }

    @Test func otherReviewsNeedACommand() throws {
        // A comment-only review without a command, on the bot's pull request: nothing.
        #expect(try decoder.plan(event: "pull_request_review", deliveryID: "g", body: try review(
            state: "commented", body: "Looks fine")).tasks.isEmpty)
        // Changes requested on somebody else's pull request: nothing.
        #expect(try decoder.plan(event: "pull_request_review", deliveryID: "g", body: try review(
            state: "changes_requested", body: "No", head: "feature/x", author: "octocat", authorType: "User")).tasks.isEmpty)
        // An approval is never work.
        #expect(try decoder.plan(event: "pull_request_review", deliveryID: "g", body: try review(
            state: "approved", body: "Ship it")).tasks.isEmpty)
        // A command in a review still counts, with its own text.
        let plan = try decoder.plan(event: "pull_request_review", deliveryID: "g", body: try review(
            state: "commented", body: "/asynccode rename the helper"))
        #expect(plan.tasks.map(\.prompt) == ["rename the helper"])
    }
}

@Suite(.timeLimit(.minutes(10))) struct ReviewCommentContextTests {
    @Test func aCommandOnALineCarriesTheFileLineAndDiff() throws {
        let body = try editedFixture("pull_request_review_comment/created.payload.json") { object in
            setPath(&object, ["comment", "body"], "/asynccode rename this heading")
            setPath(&object, ["comment", "path"], "docs/guide.md")
            setPath(&object, ["comment", "line"], 12)
            setPath(&object, ["comment", "diff_hunk"], "@@ -10,3 +10,3 @@\n-# Old\n+# Néw")
        }
        let plan = try WebhookDecoder().plan(event: "pull_request_review_comment", deliveryID: "g", body: body)
        try #require(plan.tasks.count == 1)
        #expect(plan.tasks[0].prompt == "rename this heading\n\n(A review comment on `docs/guide.md` line 12)\n```diff\n@@ -10,3 +10,3 @@\n-# Old\n+# Néw\n```")
        #expect(plan.tasks[0].origin.source == .reviewComment)
    }
}
