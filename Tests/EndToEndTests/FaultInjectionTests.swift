import Foundation
import GitHubSimulator
import Testing
import TestSupport

/// GitHub on a bad day: half of the REST calls fail (502, and a fifth of those secondary rate limits).
/// Every task still ends, completed or failed with a reason, and nothing is done twice.
@Suite(.serialized, .timeLimit(.minutes(10))) struct FaultInjectionTests {
    @Test func gitHubFailingHalfItsCallsEndsEveryTaskWithoutDuplicates() async throws {
        try await EndToEnd.with(workers: 2) { e2e in
            e2e.sim.injectRandomFailures(rate: 0.5, rateLimitShare: 0.2, seed: 0xC4A05)
            var tasks: [(issue: Int, task: Int64)] = []
            for index in 0..<5 {
                let issue = e2e.issue("Chaos \(index)")
                tasks.append((issue, try await e2e.comment("/asynccode fix chaos \(index)", on: issue)))
            }
            var statuses: [String: Int] = [:]
            for (_, task) in tasks {
                var status = ""
                try await eventually("task \(task) ends", timeout: .seconds(240), interval: .milliseconds(250)) {
                    status = try await e2e.string("SELECT status::text FROM tasks WHERE id = \(task)") ?? ""
                    return ["completed", "failed", "cancelled"].contains(status)
                }
                statuses[status, default: 0] += 1
                if status == "failed" {
                    let error = try await e2e.string("SELECT coalesce(error, '') FROM tasks WHERE id = \(task)") ?? ""
                    #expect(!error.isEmpty, "task \(task) failed without a reason")
                }
            }
            let injected = e2e.sim.requests.filter(\.injected)
            e2e.sim.clearInjectedFailures()

            let pulls = e2e.sim.pullRequests(repositoryID: e2e.repositoryID)
            for (issue, task) in tasks {
                let status = try await e2e.string("SELECT status::text FROM tasks WHERE id = \(task)")
                let issuePulls = pulls.filter { $0.body?.contains("Closes #\(issue)\n") == true }
                #expect(issuePulls.count <= 1, "issue \(issue) has \(issuePulls.count) pull requests")
                #expect(e2e.botComments(on: issue).count <= 1, "issue \(issue) has \(e2e.botComments(on: issue).count) progress comments")
                let commandID = e2e.sim.comments(repositoryID: e2e.repositoryID, issueNumber: issue).first { $0.author == "alice" }?.id ?? -1
                let eyes = e2e.sim.reactions.filter {
                    $0.content == "eyes" && $0.user == e2e.setup.app.botLogin && $0.subject == .comment(id: commandID)
                }
                #expect(eyes.count <= 1, "issue \(issue) has \(eyes.count) eyes reactions")
                if status == "completed" { #expect(issuePulls.count == 1) }
            }
            print("""
                fault injection: \(injected.count) of \(e2e.sim.requests.count) calls failed \
                (\(injected.filter { $0.status == 502 }.count) × 502, \(injected.filter { $0.status == 403 }.count) × 403 secondary rate limit); \
                tasks \(statuses.sorted { $0.key < $1.key }); \(pulls.count) pull requests, no duplicates
                """)
        }
    }
}
