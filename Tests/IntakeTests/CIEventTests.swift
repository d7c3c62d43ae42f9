import Foundation
import Intake
import Models
import Testing
import TestSupport

/// `check_suite` and `workflow_run` (issue 19): a failed CI run on a pull request's head commit becomes the
/// request for an automatic fix, and nothing else does. The payloads are octokit's examples, edited.
@Suite(.timeLimit(.minutes(10))) struct CIEventTests {
    static let sha = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"

    /// The example check suite, failed, with an installation.
    func failedSuite(_ edit: (inout [String: Any]) -> Void = { _ in }) throws -> [UInt8] {
        try editedFixture("check_suite/completed.payload.json") { object in
            setPath(&object, ["check_suite", "conclusion"], "failure")
            object["installation"] = ["id": 77]
            edit(&object)
        }
    }

    @Test func aFailedSuiteOnAPullRequestsHeadAsksForAFix() throws {
        let plan = try WebhookDecoder().plan(event: "check_suite", deliveryID: "d", body: try failedSuite())
        try #require(plan.tasks.count == 1)
        let task = plan.tasks[0]
        #expect(task.kind == .code)
        #expect(task.origin.source == .ciFailure)
        #expect(task.origin.issueNumber == 2)
        #expect(task.origin.isPullRequest)
        #expect(task.origin.commentID == nil)
        #expect(task.requiresOwnPullRequest)
        #expect(task.ciFailure == CIFailure(headSHA: Self.sha, name: "octocoders-linter", conclusion: "failure"))
        #expect(task.prompt.hasPrefix("CI failed on this pull request's head commit ec26c3e"))
        #expect(plan.ignoredReason == nil)
    }

    @Test(arguments: ["success", "neutral", "cancelled", "skipped", "action_required"])
    func otherConclusionsStartNothing(_ conclusion: String) throws {
        let body = try failedSuite { setPath(&$0, ["check_suite", "conclusion"], conclusion) }
        let plan = try WebhookDecoder().plan(event: "check_suite", deliveryID: "d", body: body)
        #expect(plan.tasks.isEmpty)
        #expect(plan.ignoredReason == "CI ended \(conclusion): nothing to fix")
    }

    @Test(arguments: ["timed_out", "startup_failure"])
    func timeoutsAndStartupFailuresAskForAFix(_ conclusion: String) throws {
        let body = try failedSuite { setPath(&$0, ["check_suite", "conclusion"], conclusion) }
        #expect(try WebhookDecoder().plan(event: "check_suite", deliveryID: "d", body: body).tasks.count == 1)
    }

    @Test func theAppsOwnSuiteIsIgnored() throws {
        let decoder = WebhookDecoder(settings: IntakeSettings(appID: 29310))
        let plan = try decoder.plan(event: "check_suite", deliveryID: "d", body: try failedSuite())
        #expect(plan.tasks.isEmpty)
        #expect(plan.ignoredReason == "the bot's own check suite")
        // Another App's suite on the same commit is not the bot's.
        let other = WebhookDecoder(settings: IntakeSettings(appID: 1))
        #expect(try other.plan(event: "check_suite", deliveryID: "d", body: try failedSuite()).tasks.count == 1)
    }

    @Test func onlyTheHeadOfAPullRequestOfThisRepositoryCounts() throws {
        let moved = try failedSuite {
            var suite = $0["check_suite"] as! [String: Any]
            var pulls = suite["pull_requests"] as! [[String: Any]]
            setPath(&pulls[0], ["head", "sha"], String(repeating: "a", count: 40))
            suite["pull_requests"] = pulls
            $0["check_suite"] = suite
        }
        let fork = try failedSuite {
            var suite = $0["check_suite"] as! [String: Any]
            var pulls = suite["pull_requests"] as! [[String: Any]]
            setPath(&pulls[0], ["head", "repo", "id"], 5)
            suite["pull_requests"] = pulls
            $0["check_suite"] = suite
        }
        let none = try failedSuite { setPath(&$0, ["check_suite", "pull_requests"], [] as [Any]) }
        for body in [moved, fork, none] {
            let plan = try WebhookDecoder().plan(event: "check_suite", deliveryID: "d", body: body)
            #expect(plan.tasks.isEmpty)
            #expect(plan.ignoredReason == "CI failed on a commit that is not the head of a pull request of this repository")
        }
    }

    @Test func unfinishedRunsAreNotDecoded() throws {
        for (event, file) in [("check_suite", "check_suite/requested.payload.json"), ("check_suite", "check_suite/rerequested.payload.json"),
                              ("workflow_run", "workflow_run/requested.payload.json")] {
            let plan = try WebhookDecoder().plan(event: event, deliveryID: "d", body: try TestEnvironment.fixture("webhooks/" + file))
            #expect(plan.tasks.isEmpty)
            #expect(plan.ignoredReason?.hasSuffix("is not a finished run") == true, "\(file)")
        }
    }

    @Test func aFailedWorkflowRunAsksForAFix() throws {
        let body = try editedFixture("workflow_run/completed.with-pull-requests.payload.json") { object in
            var run = object["workflow_run"] as! [String: Any]
            run["conclusion"] = "failure"
            run["name"] = "CI"
            run["head_sha"] = Self.sha
            object["workflow_run"] = run
            setPath(&object, ["repository", "id"], 186853002)
            object["installation"] = ["id": 77]
        }
        let plan = try WebhookDecoder().plan(event: "workflow_run", deliveryID: "d", body: body)
        try #require(plan.tasks.count == 1)
        #expect(plan.tasks[0].ciFailure == CIFailure(headSHA: Self.sha, name: "workflow CI", conclusion: "failure"))
        #expect(plan.tasks[0].sourceURL == "https://github.com/octo-org/octo-repo/actions/runs/289782451")
        // The example as GitHub wrote it: a successful run.
        let example = try TestEnvironment.fixture("webhooks/workflow_run/completed.with-pull-requests.payload.json")
        #expect(try WebhookDecoder().plan(event: "workflow_run", deliveryID: "d", body: example).tasks.isEmpty)
    }

    @Test func aSuiteWithoutInstallationStartsNothing() throws {
        let body = try failedSuite { $0["installation"] = nil }
        let plan = try WebhookDecoder().plan(event: "check_suite", deliveryID: "d", body: body)
        #expect(plan.tasks.isEmpty)
        #expect(plan.ignoredReason == "not an App delivery: no installation or repository")
    }
}
