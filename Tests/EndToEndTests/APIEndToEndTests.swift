import APIConformance
import AsyncCodeApp
import Foundation
import Synchronization
import GitHubSimulator
import OpenSSLCrypto
import Testing
import TestSupport

/// The API for signed-in users (issue 20): who sees what comes from GitHub, read with the user's own token.
@Suite(.serialized, .timeLimit(.minutes(5))) struct APIEndToEndTests {
    /// Runs `body` with sign-in configured on a fixed port; then checks every API answer a ``Browser`` saw against
    /// the API description (at least one, unless `checksAPIAnswers` is false: tests of the pages in a real browser).
    static func withSignIn(
        perMinute: Int = 300, repositoryFiles: [String: String] = [:], checksAPIAnswers: Bool = true,
        configure: @Sendable @escaping (inout AppConfiguration) throws -> Void = { _ in },
        _ body: @Sendable @escaping (EndToEnd, String) async throws -> Void
    ) async throws {
        let port = try freePort()
        let publicURL = "http://127.0.0.1:\(port)"
        try await EndToEnd.with(repositoryFiles: repositoryFiles, configure: { configuration, setup in
            configuration.port = port
            configuration.publicURL = URL(string: publicURL)
            configuration.clientID = setup.app.clientID
            configuration.clientSecret = setup.app.clientSecret
            configuration.encryptionKeys = try KeyRing(parsing: try KeyRing.newEntry(id: "k1"))
            configuration.apiRequestsPerMinute = perMinute
            try configure(&configuration)
        }) { e2e in
            e2e.sim.setCallbackURLs(appID: e2e.setup.app.id, [publicURL + "/auth/callback"])
            try await body(e2e, publicURL)
            // Every API answer the test saw is one the API description documents.
            let exchanges = Browser.exchanges.withLock { $0.removeValue(forKey: publicURL) ?? [] }.filter { $0.path.hasPrefix("/api/") }
            #expect(!exchanges.isEmpty || !checksAPIAnswers)
            let description = try APIConformance.shared
            let violations = exchanges.flatMap { exchange in
                description.violations(method: exchange.method, path: exchange.path, status: exchange.status,
                                       contentType: exchange.contentType, body: exchange.body)
            }
            #expect(violations.isEmpty, "answers the API description does not allow:\n\(violations.prefix(30).joined(separator: "\n"))")
        }
    }

    /// Signs `login` in with a browser of their own.
    static func signIn(_ login: String, _ e2e: EndToEnd, _ publicURL: String) async throws -> Browser {
        let browser = Browser(base: publicURL)
        e2e.sim.setSignedInUser(login)
        let back = try await browser.startSignIn(e2e.sim)
        let done = try await browser.get(back)
        #expect(done.status == 302, "\(login): \(done.body)")
        return browser
    }

    /// Two users × three repositories (alice: write, read, none; rita: read, write, none) × every route:
    /// 200 where GitHub lets them read, 404 where it does not, 403 only to cancel without push.
    @Test func eachUserSeesWhatGitHubLetsThemSee() async throws {
        try await Self.withSignIn { e2e, publicURL in
            let gadgets = try await e2e.sim.createRepository(owner: "acme", name: "gadgets", installationID: e2e.setup.installationID)
            let secret = try await e2e.sim.createRepository(owner: "acme", name: "secret", installationID: e2e.setup.installationID, isPrivate: true)
            e2e.sim.setCollaborator("alice", role: "read", onRepositoryID: gadgets.id)
            e2e.sim.setCollaborator("rita", role: "write", onRepositoryID: gadgets.id)
            // One finished task in each repository.
            var taskIDs: [String: Int64] = [:]
            for (name, repositoryID, author) in [("widgets", e2e.repositoryID, "alice"), ("gadgets", gadgets.id, "rita"), ("secret", secret.id, "acme")] {
                let issue = e2e.sim.createIssue(repositoryID: repositoryID, title: "Fix \(name)", author: author)
                _ = try await e2e.sim.postUserComment(repositoryID: repositoryID, issueNumber: issue, body: "/asynccode --agent noop look", author: author)
                var id: Int64?
                try await eventually("a task in \(name)") {
                    id = try await e2e.db.scalar("SELECT max(t.id) FROM tasks t JOIN repositories r ON r.id = t.repository_id WHERE r.name = '\(name)'", as: Int64?.self) ?? nil
                    return id != nil
                }
                taskIDs[name] = id!
                try await e2e.waitFor(task: id!, status: "completed")
            }
            let expected: [String: [String: String]] = [
                "alice": ["widgets": "write", "gadgets": "read"],
                "rita": ["widgets": "read", "gadgets": "write"],
            ]
            for (login, permissions) in expected {
                let browser = try await Self.signIn(login, e2e, publicURL)
                let listed = try await browser.get("/api/repositories")
                #expect(listed.status == 200)
                let repositories = listed.json["repositories"] as? [[String: Any]] ?? []
                var seen: [String: String] = [:]
                for repository in repositories { seen[(repository["full_name"] as? String ?? "").replacingOccurrences(of: "acme/", with: "")] = repository["permission"] as? String }
                #expect(seen == permissions, "\(login)")
                let all = try await browser.get("/api/tasks")
                let listedIDs = Set((all.json["tasks"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int64 })
                for (name, id) in taskIDs {
                    let permission = permissions[name]
                    let one = try await browser.get("/api/tasks/\(id)")
                    #expect(one.status == (permission == nil ? 404 : 200), "\(login) GET task in \(name)")
                    #expect(listedIDs.contains(id) == (permission != nil), "\(login) lists \(name)")
                    let repositoryID = try #require(try await e2e.db.scalar("SELECT repository_id FROM tasks WHERE id = \(id)", as: Int64.self))
                    let byRepository = try await browser.get("/api/tasks?repository_id=\(repositoryID)")
                    let branches = try await browser.get("/api/repositories/\(repositoryID)/branches")
                    #expect(branches.status == (permission == nil ? 404 : 200), "\(login) branches of \(name)")
                    if permission != nil {
                        #expect((branches.json["branches"] as? [[String: Any]])?.contains { $0["name"] as? String == "main" } == true)
                    }
                    #expect((byRepository.json["tasks"] as? [Any])?.count == (permission == nil ? 0 : 1), "\(login) lists by \(name)")
                    let cancel = try await browser.send(.PUT, "/api/tasks/\(id)/cancel", json: nil, origin: publicURL)
                    #expect(cancel.status == (permission == nil ? 404 : permission == "read" ? 403 : 200), "\(login) cancels in \(name)")
                    if permission == nil { #expect(!one.body.contains(name), "a hidden task names nothing") }
                }
                #expect(try await browser.get("/api/tasks/999999999").status == 404)
                #expect(try await browser.get("/api/tasks?limit=0").status == 400)
                #expect(try await browser.get("/api/tasks?status=done").status == 400)
            }
        }
    }

    @Test func aTaskDetailHasItsStepsAndPagesFollowTheCursor() async throws {
        let checks = "checks:\n  - name: readme\n    run: test -s README.md\n"
        try await Self.withSignIn(repositoryFiles: [".github/asynccode.yml": checks]) { e2e, publicURL in
            for title in ["one", "two", "three"] {
                let issue = e2e.issue(title)
                let id = try await e2e.comment("/asynccode --agent noop \(title)", on: issue)
                try await e2e.waitFor(task: id, status: "completed")
            }
            let alice = try await Self.signIn("alice", e2e, publicURL)
            var ids: [Int64] = []
            var cursor: String?
            repeat {
                let page = try await alice.get("/api/tasks?limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""))
                #expect(page.status == 200)
                ids += (page.json["tasks"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int64 }
                cursor = page.json["next_cursor"] as? String
            } while cursor != nil
            #expect(ids.count == 3 && ids == ids.sorted(by: >))
            let detail = try await alice.get("/api/tasks/\(ids[0])")
            #expect(detail.json["requester"] as? String == "alice")
            #expect(detail.json["status"] as? String == "completed")
            #expect((detail.json["steps"] as? [[String: Any]] ?? []).contains { $0["step"] as? String == "completed" })
            // The results hold the repository's checks after the last round.
            let results = try await alice.get("/api/tasks/\(ids[0])/results")
            let check = try #require((results.json["checks"] as? [[String: Any]])?.first)
            #expect(check["name"] as? String == "readme" && check["passed"] as? Bool == true && check["round"] as? Int == 1)
        }
    }

    @Test func cancellingThroughTheAPIStopsARunningAgent() async throws {
        try await Self.withSignIn { e2e, publicURL in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent waiter hold on", on: issue)
            try await eventually("the agent runs") {
                try await e2e.string("SELECT count(*)::text FROM task_events WHERE task_id = \(taskID) AND step LIKE 'Running agent%'") == "1"
            }
            let alice = try await Self.signIn("alice", e2e, publicURL)
            let cancel = try await alice.send(.PUT, "/api/tasks/\(taskID)/cancel", json: nil, origin: publicURL)
            #expect(cancel.status == 200)
            try await e2e.waitFor(task: taskID, status: "cancelled")
            #expect(e2e.botComments(on: issue).first?.body.contains("cancel") == true)
            #expect(e2e.sim.pullRequests(repositoryID: e2e.repositoryID).isEmpty)
            // Without this site's Origin the same request is refused.
            #expect(try await alice.send(.PUT, "/api/tasks/\(taskID)/cancel", json: nil, origin: "https://evil.example").status == 403)
        }
    }

    /// A task started through the API ends in a pull request, with an issue (its comment there, "Closes") and
    /// without one (nothing said on GitHub but the pull request; its progress read through the API).
    @Test func tasksStartedThroughTheAPIEndInPullRequests() async throws {
        try await Self.withSignIn { e2e, publicURL in
            let alice = try await Self.signIn("alice", e2e, publicURL)
            let repositories = try await alice.get("/api/repositories").json["repositories"] as? [[String: Any]] ?? []
            let widgets = try #require(repositories.first { $0["full_name"] as? String == "acme/widgets" }?["id"] as? Int64)
            let issue = e2e.issue()
            let withIssue = try await alice.send(.POST, "/api/tasks", json: #"{"repository_id":\#(widgets),"prompt":"fix the readme","issue_number":\#(issue)}"#,
                                                 origin: publicURL)
            #expect(withIssue.status == 201, "\(withIssue.body)")
            let firstID = try #require(withIssue.json["id"] as? Int64)
            #expect(withIssue.json["status"] as? String == "pending")
            try await e2e.waitFor(task: firstID, status: "completed")
            #expect(e2e.botComments(on: issue).first?.body.contains("✅ **Completed**") == true)

            let bare = try await alice.send(.POST, "/api/tasks", json: #"{"repository_id":\#(widgets),"prompt":"tidy the readme\nplease"}"#,
                                            origin: publicURL)
            #expect(bare.status == 201, "\(bare.body)")
            let secondID = try #require(bare.json["id"] as? Int64)
            #expect(bare.json["issue_number"] is NSNull)
            try await e2e.waitFor(task: secondID, status: "completed")
            let pulls = e2e.sim.pullRequests(repositoryID: e2e.repositoryID).sorted { $0.number < $1.number }
            try #require(pulls.count == 2)
            #expect(pulls[0].body?.contains("Closes #\(issue)") == true)
            #expect(pulls[1].body?.contains("Closes") == false)
            #expect(pulls[1].head.hasPrefix("asynccode/t\(secondID)-tidy-the-readme"))
            // Nothing was said on any thread for it; the API has its steps and results.
            #expect(e2e.sim.comments(repositoryID: e2e.repositoryID, issueNumber: issue).count == 1)
            let detail = try await alice.get("/api/tasks/\(secondID)")
            #expect((detail.json["steps"] as? [[String: Any]] ?? []).contains { ($0["step"] as? String)?.hasPrefix("Opening the pull request") == true })
            #expect((detail.json["pull_request"] as? [String: Any])?["number"] as? Int64 == Int64(pulls[1].number))
            let results = try await alice.get("/api/tasks/\(secondID)/results")
            #expect((results.json["files"] as? [[String: Any]])?.first?["path"] as? String == "README.md")

            // Refusals name the problem.
            #expect(try await alice.send(.POST, "/api/tasks", json: #"{"repository_id":\#(widgets)}"#, origin: publicURL).json["detail"] as? String == "`prompt` is required")
            let unknown = try await alice.send(.POST, "/api/tasks", json: #"{"repository_id":\#(widgets),"prompt":"x","colour":"red"}"#, origin: publicURL)
            #expect(unknown.status == 400 && (unknown.json["detail"] as? String)?.hasPrefix("`colour` is not a field") == true)
            #expect(try await alice.send(.POST, "/api/tasks", json: #"{"repository_id":\#(widgets),"prompt":"x","kind":"deploy"}"#, origin: publicURL).status == 400)
            #expect(try await alice.send(.POST, "/api/tasks", json: #"{"repository_id":999999,"prompt":"x"}"#, origin: publicURL).status == 404)
            let huge = #"{"repository_id":\#(widgets),"prompt":""# + String(repeating: "x", count: 20_000) + #""}"#
            #expect(try await alice.send(.POST, "/api/tasks", json: huge, origin: publicURL).status == 413)
            let rita = try await Self.signIn("rita", e2e, publicURL)
            #expect(try await rita.send(.POST, "/api/tasks", json: #"{"repository_id":\#(widgets),"prompt":"x"}"#, origin: publicURL).status == 403)
            #expect(try await e2e.string("SELECT count(*)::text FROM tasks WHERE source = 'api'") == "2")
        }
    }

    /// Pull requests and credits follow the same rule; too many requests answer 429 with Retry-After.
    @Test func pullRequestsCreditsAndRateLimits() async throws {
        try await Self.withSignIn(perMinute: 12) { e2e, publicURL in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode fix the readme", on: issue)
            try await e2e.waitFor(task: taskID, status: "completed")
            let alice = try await Self.signIn("alice", e2e, publicURL)
            let pulls = try await alice.get("/api/pull-requests")
            #expect(pulls.status == 200)
            let listed = pulls.json["pull_requests"] as? [[String: Any]] ?? []
            #expect(listed.count == 1 && listed.first?["task_id"] as? Int64 == taskID && listed.first?["state"] as? String == "open")
            let credits = try await alice.get("/api/credits")
            #expect((credits.json["accounts"] as? [[String: Any]])?.map { $0["account"] as? String } == ["alice"])
            // The installation's account (acme) pays; alice is not an admin of its repositories, so she cannot see it.
            #expect(try await alice.get("/api/credits/acme/transactions").status == 404)
            #expect(try await alice.get("/api/credits/alice/transactions").status == 200)
            // Twelve a minute for one user: the rest of the burst goes, then 429.
            var statuses: [Int] = []
            var retryAfter: String?
            for _ in 0..<12 {
                let answer = try await alice.get("/api/auth/user")
                statuses.append(answer.status)
                if answer.status == 429 { retryAfter = answer.json["detail"] as? String }
            }
            #expect(statuses.contains(429) && statuses.first == 200, "\(statuses)")
            #expect(retryAfter?.hasPrefix("try again in ") == true)
            let limited = try await alice.get("/api/tasks")
            #expect(limited.status == 429 && limited.headers["retry-after"] != nil)
        }
    }

    /// Two processes of one deployment, twenty requests at once with alice's session when her token is about to
    /// expire: GitHub sees exactly one refresh, and every request is answered.
    @Test func twentyRequestsFromTwoProcessesRefreshTheTokenOnce() async throws {
        try await Self.withSignIn { e2e, publicURL in
            let alice = try await Self.signIn("alice", e2e, publicURL)
            #expect(try await alice.get("/api/repositories").status == 200)
            var second = e2e.configuration
            second.port = 0
            second.workers = 0
            let port = Mutex<Int?>(nil)
            let app = try await buildApplication(configuration: second, logger: e2e.logs.logger(label: "second", level: .info)) { bound in
                port.withLock { $0 = bound }
            }
            try await withRunning(app, logger: e2e.logs.logger(label: "second", level: .info)) {
                try await eventually("the second process listens") { port.withLock { $0 } != nil }
                let secondURL = "http://127.0.0.1:\(port.withLock { $0 }!)"
                let cookie = try #require(alice.cookie("asynccode_session"))
                // The token expires within the refresh margin now.
                _ = try await e2e.db.scalar("UPDATE user_tokens SET access_expires_at = now() + interval '1 minute' RETURNING 1", as: Int32.self)
                let before = e2e.sim.userTokenRefreshCount(login: "alice")
                let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                    for index in 0..<20 {
                        let base = index % 2 == 0 ? publicURL : secondURL
                        group.addTask {
                            try await Browser(base: base).send(.POST, "/api/repositories/sync", json: nil, origin: publicURL,
                                                               cookies: ["asynccode_session": cookie]).status
                        }
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
                #expect(statuses.count == 20 && statuses.allSatisfy { $0 == 200 }, "\(statuses)")
                #expect(e2e.sim.userTokenRefreshCount(login: "alice") == before + 1)
            }
        }
    }

    /// Access is read from GitHub at sign-in; a refresh token GitHub no longer takes ends the session at once,
    /// without retrying.
    @Test func signInSyncsAccessAndADeadRefreshTokenEndsTheSession() async throws {
        try await Self.withSignIn { e2e, publicURL in
            let alice = try await Self.signIn("alice", e2e, publicURL)
            #expect(try await e2e.string("SELECT (access_synced_at IS NOT NULL)::text FROM accounts WHERE login = 'alice'") == "true")
            #expect(try await e2e.string("SELECT count(*)::text FROM user_repository_access u JOIN accounts a ON a.id = u.account_id WHERE a.login = 'alice'") == "1")
            // GitHub forgets the refresh token; the stored token is due and the access stale.
            e2e.sim.expireUserTokens(login: "alice", includingRefreshTokens: true)
            _ = try await e2e.db.scalar("UPDATE user_tokens SET access_expires_at = now() RETURNING 1", as: Int32.self)
            _ = try await e2e.db.scalar("UPDATE accounts SET access_synced_at = NULL WHERE login = 'alice' RETURNING 1", as: Int32.self)
            let refreshesBefore = e2e.sim.userTokenRefreshCount(login: "alice")
            #expect(try await alice.get("/api/repositories").status == 401)
            #expect(try await alice.get("/api/auth/user").status == 401)
            #expect(try await e2e.string("SELECT count(*)::text FROM user_tokens") == "0")
            #expect(try await e2e.string("SELECT count(*)::text FROM user_sessions") == "0")
            #expect(e2e.sim.userTokenRefreshCount(login: "alice") == refreshesBefore)
        }
    }
}
