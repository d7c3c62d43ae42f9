import Foundation
import GitHubSimulator
import Testing
import TestSupport

/// The pages' HTML over plain HTTP (issue 21): escaping, the Content-Security-Policy, no inline scripts, styles or
/// event handlers, signed-out redirects, forms and their refusals, the 404 page, and the assets.
@Suite(.serialized, .timeLimit(.minutes(5))) struct PageTests {
    static let policy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https://avatars.githubusercontent.com data:; "
        + "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

    /// Checks what every page must be: HTML with the policy, no inline script, style or event handler.
    static func checkPage(_ answer: Browser.Answer, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(answer.headers["content-type"] == "text/html; charset=utf-8", "\(what)", sourceLocation: sourceLocation)
        #expect(answer.headers["content-security-policy"] == policy, "\(what)", sourceLocation: sourceLocation)
        #expect(answer.headers["cache-control"] == "no-store", "\(what)", sourceLocation: sourceLocation)
        let body = answer.body
        let scripts = body.matches(of: /<script\b([^>]*)>(.*?)<\/script>/.dotMatchesNewlines())
        #expect(scripts.count == 1, "\(what): one script", sourceLocation: sourceLocation)
        for script in scripts {
            #expect(script.output.1.contains("src=\"/assets/live.js"), "\(what): \(script.output.0)", sourceLocation: sourceLocation)
            #expect(script.output.2.isEmpty, "\(what): an inline script", sourceLocation: sourceLocation)
        }
        #expect(body.firstMatch(of: /<[^>]+\son[a-z]+\s*=/.ignoresCase()) == nil, "\(what): an inline event handler", sourceLocation: sourceLocation)
        #expect(body.firstMatch(of: /<style\b|\sstyle\s*=/.ignoresCase()) == nil, "\(what): an inline style", sourceLocation: sourceLocation)
        #expect(body.firstMatch(of: /(href|src|action)="(https?:)?\/\/(?!avatars\.githubusercontent\.com|127\.0\.0\.1)/) == nil,
                "\(what): an asset from elsewhere", sourceLocation: sourceLocation)
        #expect(body.contains("<main id=\"main\""), "\(what): a main landmark", sourceLocation: sourceLocation)
    }

    /// Returns the bot's id of a repository (the pages' forms and filters use it, not GitHub's).
    static func repositoryID(_ fullName: String, _ e2e: EndToEnd) async throws -> Int64 {
        var id: Int64?
        try await eventually("the bot knows \(fullName)") {
            id = try await e2e.db.scalar("SELECT id FROM repositories WHERE full_name = '\(fullName)'", as: Int64?.self) ?? nil
            return id != nil
        }
        return try #require(id)
    }

    @Test func signedOutVisitorsAreSentToSignIn() async throws {
        try await APIEndToEndTests.withSignIn(checksAPIAnswers: false) { e2e, publicURL in
            let visitor = Browser(base: publicURL)
            let home = try await visitor.get("/")
            #expect(home.status == 200 && home.body.contains("href=\"/login\"") && home.body.contains("Sign in with GitHub"))
            Self.checkPage(home, "landing")
            for (path, encoded) in [("/tasks/1", "/tasks/1"), ("/tasks/new", "/tasks/new"), ("/credits", "/credits"),
                                    ("/tasks/abc", "/tasks/abc"), ("/tasks/1?x=1&y=2", "/tasks/1%3Fx%3D1%26y%3D2")] {
                let answer = try await visitor.get(path)
                #expect(answer.status == 303 && answer.location == "/login?next=" + encoded, "\(path): \(answer.status) \(answer.location ?? "")")
            }
            let post = try await visitor.post("/tasks/new", form: [("prompt", "x")], origin: publicURL)
            #expect(post.status == 303 && post.location == "/login?next=/tasks/new")
            #expect(try await e2e.string("SELECT count(*)::text FROM tasks") == "0")
            // Signing in from there comes back to the page asked for ("Watch live" from a progress comment) and
            // never to another site.
            e2e.sim.setSignedInUser("alice")
            for (next, back) in [("/tasks/1", "/tasks/1"), ("%2F%3Fstatus%3Drunning", "/?status=running"), ("%2F%2Fevil.example%2Fx", "/"),
                                 ("https%3A%2F%2Fevil.example", "/"), ("%2F%5Cevil.example", "/"), ("", "/")] {
                let browser = Browser(base: publicURL)
                let login = try await browser.get("/login?next=" + next)
                let approved = try await browser.get(try #require(login.location))
                let done = try await browser.get(try #require(approved.location))
                #expect(done.status == 302 && done.location == back, "next=\(next): \(done.location ?? "none")")
            }
        }
    }

    @Test func assetsAreServedWithTheirTypes() async throws {
        try await APIEndToEndTests.withSignIn(checksAPIAnswers: false) { _, publicURL in
            let visitor = Browser(base: publicURL)
            let css = try await visitor.get("/assets/app.css")
            #expect(css.status == 200 && css.headers["content-type"] == "text/css; charset=utf-8" && css.body.contains(":focus-visible"))
            let js = try await visitor.get("/assets/live.js")
            #expect(js.status == 200 && js.headers["content-type"] == "text/javascript; charset=utf-8" && js.body.contains("EventSource"))
            #expect(js.headers["x-content-type-options"] == "nosniff")
            // The page links them with their version.
            let home = try await visitor.get("/")
            #expect(home.body.firstMatch(of: /href="\/assets\/app\.css\?v=[0-9a-f]{12}"/) != nil)
            #expect(home.body.firstMatch(of: /src="\/assets\/live\.js\?v=[0-9a-f]{12}"/) != nil)
        }
    }

    /// A prompt, a log line and a step that look like HTML are shown as text; terminal colours are stripped; the page
    /// carries the event id it was rendered at, and each step and line its own.
    @Test func everyValueIsEscaped() async throws {
        try await APIEndToEndTests.withSignIn(checksAPIAnswers: false) { e2e, publicURL in
            let alice = try await APIEndToEndTests.signIn("alice", e2e, publicURL)
            let widgets = try await PageTests.repositoryID("acme/widgets", e2e)
            let form = try await alice.get("/tasks/new")
            #expect(form.status == 200 && form.body.contains("<option value=\"\(widgets)\">acme/widgets</option>"))
            #expect(form.body.contains("<option value=\"edit\" selected>"), "the default agent is chosen")
            Self.checkPage(form, "new task")
            let started = try await alice.post("/tasks/new", form: [
                ("repository_id", String(widgets)), ("agent", "noop"), ("kind", "ask"),
                ("prompt", "<script>alert(1)</script>\r\nand \"quotes\" & 'apostrophes'"), ("issue_number", ""), ("base_branch", ""),
            ], origin: publicURL)
            #expect(started.status == 303, "\(started.body)")
            let id = try #require(started.location.flatMap { PagesBrowserTests.taskID(in: $0) })
            #expect(started.location == "/tasks/\(id)")
            #expect(try await e2e.string("SELECT prompt FROM tasks WHERE id = \(id)") == "<script>alert(1)</script>\nand \"quotes\" & 'apostrophes'")
            try await e2e.waitFor(task: id, status: "completed")
            // A step and a log line as the executor and the live output write them, with markup and colours.
            _ = try await e2e.db.scalar("""
                INSERT INTO task_events (task_id, kind, step, detail, data) VALUES
                  (\(id), 'task.step', '<b>bold step</b>', '<i>detail</i>', '{}'),
                  (\(id), 'task.log', '', '', '{"stream":"stderr","source":"agent","text":"\\u001b[31m<img src=x onerror=alert(2)>\\u001b[0m red"}')
                RETURNING 1
                """, as: Int32.self)
            let newest = try #require(try await e2e.db.scalar("SELECT max(id) FROM task_events", as: Int64.self))
            let page = try await alice.get("/tasks/\(id)")
            #expect(page.status == 200)
            Self.checkPage(page, "task")
            #expect(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;\nand &quot;quotes&quot; &amp; &#39;apostrophes&#39;"))
            #expect(!page.body.contains("<script>alert"))
            #expect(page.body.contains("&lt;b&gt;bold step&lt;/b&gt;") && page.body.contains("&lt;i&gt;detail&lt;/i&gt;"))
            #expect(page.body.contains("&lt;img src=x onerror=alert(2)&gt; red\n"))
            #expect(!page.body.contains("\u{1B}") && !page.body.contains("[31m"))
            #expect(page.body.contains("data-event-id=\"\(newest)\""))
            let after = try #require(page.body.firstMatch(of: /data-after="(\d+)"/).flatMap { Int64($0.output.1) })
            #expect(after >= newest)
            #expect(page.body.contains("<span class=\"log-line log-stderr\""))
            // The list shows it too, escaped.
            let list = try await alice.get("/")
            Self.checkPage(list, "list")
            #expect(list.body.contains("data-task-id=\"\(id)\"") && list.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(!list.body.contains("<script>alert"))
            let credits = try await alice.get("/credits")
            #expect(credits.status == 200 && credits.body.contains("@alice"))
            Self.checkPage(credits, "credits")
        }
    }

    /// Forms change things only from this site; refusals show the form again with the reason; the Cancel button is
    /// for users with push access; a task nobody may see for the user is the 404 page, never 403.
    @Test func formsAreCheckedAsTheAPIChecksThem() async throws {
        try await APIEndToEndTests.withSignIn(checksAPIAnswers: false) { e2e, publicURL in
            let alice = try await APIEndToEndTests.signIn("alice", e2e, publicURL)
            let widgets = try await PageTests.repositoryID("acme/widgets", e2e)
            let fields = [("repository_id", String(widgets)), ("agent", "waiter"), ("kind", "code"), ("prompt", "hold on")]
            #expect(try await alice.post("/tasks/new", form: fields, origin: nil).status == 403)
            let crossSite = try await alice.post("/tasks/new", form: fields, origin: "https://evil.example")
            #expect(crossSite.status == 403 && crossSite.body.contains("Refused a request from another site"))
            Self.checkPage(crossSite, "refusal")
            let empty = try await alice.post("/tasks/new", form: [("repository_id", String(widgets)), ("prompt", "  ")], origin: publicURL)
            #expect(empty.status == 400 && empty.body.contains("`prompt` is required") && empty.body.contains("<form"))
            let badKind = try await alice.post("/tasks/new", form: fields.filter { $0.0 != "kind" } + [("kind", "deploy")], origin: publicURL)
            #expect(badKind.status == 400 && badKind.body.contains("hold on</textarea>"), "what was typed stays")
            #expect(try await alice.post("/tasks/new", form: [("repository_id", "999999"), ("prompt", "x")], origin: publicURL).status == 404)
            #expect(try await e2e.string("SELECT count(*)::text FROM tasks") == "0")

            let started = try await alice.post("/tasks/new", form: fields, origin: publicURL)
            let id = try #require(started.location.flatMap { PagesBrowserTests.taskID(in: $0) })
            let page = try await alice.get("/tasks/\(id)")
            #expect(page.body.contains("action=\"/tasks/\(id)/cancel\""), "alice may cancel")

            // rita reads widgets: no repository to start in, no Cancel button, 403 to cancel.
            let rita = try await APIEndToEndTests.signIn("rita", e2e, publicURL)
            #expect(try await rita.get("/tasks/new").body.contains("No repository to start a task in"))
            #expect(try await rita.post("/tasks/new", form: fields, origin: publicURL).status == 403)
            let seen = try await rita.get("/tasks/\(id)")
            #expect(seen.status == 200 && !seen.body.contains("/cancel\""))
            #expect(try await rita.post("/tasks/\(id)/cancel", form: [], origin: publicURL).status == 403)

            // bob sees nothing of widgets' private twin; unknown ids are the same page.
            let secret = try await e2e.sim.createRepository(owner: "acme", name: "secret", installationID: e2e.setup.installationID, isPrivate: true)
            e2e.sim.setCollaborator("alice", role: "write", onRepositoryID: secret.id)
            _ = try await alice.send(.POST, "/api/repositories/sync", json: nil, origin: publicURL)
            let secretID = try await PageTests.repositoryID("acme/secret", e2e)
            let hidden = try await alice.post("/tasks/new", form: [("repository_id", String(secretID)), ("agent", "noop"), ("prompt", "secret")],
                                              origin: publicURL)
            let hiddenID = try #require(hidden.location.flatMap { PagesBrowserTests.taskID(in: $0) }, "\(hidden.status) \(hidden.body)")
            let bob = try await APIEndToEndTests.signIn("bob", e2e, publicURL)
            for path in ["/tasks/\(hiddenID)", "/tasks/999999", "/tasks/abc"] {
                let answer = try await bob.get(path)
                #expect(answer.status == 404 && answer.body.contains("This page does not exist") && !answer.body.contains("secret"), "\(path)")
                Self.checkPage(answer, path)
            }
            #expect(try await bob.post("/tasks/\(hiddenID)/cancel", form: [], origin: publicURL).status == 404)
            #expect(try await bob.get("/?repository=\(secretID)").body.contains("data-task-id") == false)

            // alice cancels without JavaScript: back to the page.
            let cancelled = try await alice.post("/tasks/\(id)/cancel", form: [], origin: publicURL)
            #expect(cancelled.status == 303 && cancelled.location == "/tasks/\(id)")
            try await e2e.waitFor(task: id, status: "cancelled")
            // Filters: by status and by repository.
            #expect(try await alice.get("/?status=cancelled").body.contains("data-task-id=\"\(id)\""))
            #expect(try await !alice.get("/?status=running").body.contains("data-task-id=\"\(id)\""))
            #expect(try await !alice.get("/?repository=\(secretID)").body.contains("data-task-id=\"\(id)\""))
            #expect(try await alice.get("/?repository=\(secretID)").body.contains("data-task-id=\"\(hiddenID)\""))
        }
    }
}
