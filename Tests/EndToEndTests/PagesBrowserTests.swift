import Foundation
import GitHubSimulator
import Testing
import TestSupport

/// The pages in a real browser (issue 21): headless Chromium driven through ChromeDriver (``WebDriver``). Sign-in
/// goes through the simulated GitHub's own sign-in form; the pages update by themselves through `/assets/live.js`.
/// A failed test leaves a screenshot and the page's HTML in `.local/test-artifacts/`.
@Suite(.serialized, .timeLimit(.minutes(10)),
       .enabled(if: WebDriver.isAvailable, "needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver; scripts/setup --test installs them)"))
struct PagesBrowserTests {
    /// Signs `login` in as a person would: `/login`, GitHub's sign-in form (nobody is signed in there), back to `/`.
    static func signIn(_ login: String, _ browser: BrowserSession, _ publicURL: String) async throws {
        try await browser.navigate(publicURL + "/login")
        let field = try await browser.element("#login_field")
        try await field.type(login)
        try await browser.element("form button[type=submit]").click()
        try await browser.waitUntil("@\(login) is signed in and back on the task list") {
            guard try await browser.currentURL() == publicURL + "/" else { return false }
            return try await browser.text(".account .login") == "@\(login)"
        }
    }

    /// Returns the task id of a page's URL (`…/tasks/12`).
    static func taskID(in url: String) -> Int64? {
        url.split(separator: "/").last.flatMap { Int64($0) }
    }

    /// @alice signs in through GitHub's form, starts a task from /tasks/new, lands on its page, watches the agent's
    /// line appear, and cancels it: the status turns to Cancelled without a reload.
    @Test func startWatchAndCancelATask() async throws {
        try await APIEndToEndTests.withSignIn(checksAPIAnswers: false) { e2e, publicURL in
            e2e.sim.setSignedInUser(nil)
            try await WebDriver.with { driver in
                try await driver.withBrowser("alice") { browser in
                    try await Self.signIn("alice", browser, publicURL)
                    try await browser.navigate(publicURL + "/tasks/new")
                    try #require(try await browser.title() == "New task · asynccode")
                    let widgets = try await PageTests.repositoryID("acme/widgets", e2e)
                    try await browser.element("#repository option[value=\"\(widgets)\"]").click()
                    try await browser.element("#agent option[value=\"marker\"]").click()
                    try await browser.element("#kind option[value=\"code\"]").click()
                    try await browser.element("#prompt").type("Add a line to the README, please")
                    try await browser.element("form[action=\"/tasks/new\"] button[type=submit]").click()
                    var id: Int64?
                    try await browser.waitUntil("the new task's page opens") {
                        id = Self.taskID(in: try await browser.currentURL())
                        return id != nil
                    }
                    let taskID = try #require(id)
                    try #require(try await browser.text("h1")?.hasPrefix("Task #\(taskID)") == true)
                    let status = try await browser.text("#task-status") ?? ""
                    try #require(["Pending", "Running"].contains(status), "status: \(status)")
                    try #require(try await browser.text(".prose")?.contains("Add a line to the README, please") == true)
                    let row = try await e2e.string("SELECT agent || ' ' || kind::text || ' ' || source::text FROM tasks WHERE id = \(taskID)")
                    try #require(row == "marker code api")

                    // The agent's line appears in the log while it runs.
                    try await browser.waitUntil("the agent's marker line shows in the log", timeout: .seconds(60)) {
                        try await browser.text("#log")?.contains("marker: the agent is at work") == true
                    }

                    // Cancel: the page stays (no reload) and the status follows.
                    try await browser.execute("window.asynccodeTestMark = 'same page'; return true;")
                    try await browser.element("#cancel button").click()
                    try await browser.waitUntil("the status turns to Cancelled", timeout: .seconds(60)) {
                        try await browser.text("#task-status") == "Cancelled"
                    }
                    try #require(try await browser.execute("return window.asynccodeTestMark || null;") as? String == "same page")
                    try #require(try await browser.elements("#cancel").isEmpty)
                    try await e2e.waitFor(task: taskID, status: "cancelled")
                }
            }
        }
    }

    /// The task list adds a task queued after it was rendered (a comment on GitHub), then follows its status, without
    /// a reload.
    @Test func theListShowsANewTaskLive() async throws {
        try await APIEndToEndTests.withSignIn(checksAPIAnswers: false) { e2e, publicURL in
            e2e.sim.setSignedInUser(nil)
            try await WebDriver.with { driver in
                try await driver.withBrowser("alice") { browser in
                    try await Self.signIn("alice", browser, publicURL)
                    try #require(try await browser.elements("tr[data-task-id]").isEmpty)
                    try #require(try await browser.elements("#tasks [data-empty]").count == 1)
                    try await browser.execute("window.asynccodeTestMark = 'same page'; return true;")

                    let issue = e2e.issue()
                    let id = try await e2e.comment("/asynccode --agent waiter hold on", on: issue)
                    try await browser.waitUntil("the new task's row appears", timeout: .seconds(30)) {
                        try await !browser.elements("tr[data-task-id=\"\(id)\"]").isEmpty
                    }
                    try #require(try await browser.text("tr[data-task-id=\"\(id)\"] .task-title")?.contains("#\(id)") == true)
                    try #require(try await browser.elements("#tasks [data-empty]").isEmpty)
                    try Data().write(to: URL(fileURLWithPath: e2e.stateDirectory + "/release-waiter"))
                    try await browser.waitUntil("the row says Completed", timeout: .seconds(90)) {
                        try await browser.text("tr[data-task-id=\"\(id)\"] [data-status]") == "Completed"
                    }
                    try #require(try await browser.text("tr[data-task-id=\"\(id)\"] [data-pr]")?.hasPrefix("#") == true)
                    try #require(try await browser.execute("return window.asynccodeTestMark || null;") as? String == "same page")
                }
            }
        }
    }

    /// The credits page follows the ledger: a grant shows in the balance and the ledger without a reload.
    @Test func theCreditsPageFollowsTheLedger() async throws {
        try await APIEndToEndTests.withSignIn(checksAPIAnswers: false) { e2e, publicURL in
            e2e.sim.setSignedInUser(nil)
            try await WebDriver.with { driver in
                try await driver.withBrowser("alice") { browser in
                    try await Self.signIn("alice", browser, publicURL)
                    try await browser.navigate(publicURL + "/credits")
                    try #require(try await browser.text(".balances")?.contains("100.0000") == true)
                    try await browser.execute("window.asynccodeTestMark = 'same page'; return true;")
                    try await e2e.db.client.query("""
                        INSERT INTO credit_transactions (account_id, type, amount, description)
                        SELECT id, 'bonus', 25, 'a grant for the test' FROM accounts WHERE login = 'alice'
                        """, logger: e2e.db.logger)
                    try await browser.waitUntil("the balance says 125.0000", timeout: .seconds(30)) {
                        try await browser.text(".balances")?.contains("125.0000") == true
                    }
                    try #require(try await browser.text(".ledger")?.contains("a grant for the test") == true)
                    try #require(try await browser.execute("return window.asynccodeTestMark || null;") as? String == "same page")
                }
            }
        }
    }

    /// A task of @alice's private repository is the 404 page for @bob (another browser), never 403, and names nothing.
    @Test func anotherUsersPrivateTaskIsNotFound() async throws {
        try await APIEndToEndTests.withSignIn(checksAPIAnswers: false) { e2e, publicURL in
            e2e.sim.setSignedInUser(nil)
            let secret = try await e2e.sim.createRepository(owner: "acme", name: "secret", installationID: e2e.setup.installationID, isPrivate: true)
            e2e.sim.setCollaborator("alice", role: "write", onRepositoryID: secret.id)
            let issue = e2e.sim.createIssue(repositoryID: secret.id, title: "Secret plans", author: "alice")
            _ = try await e2e.sim.postUserComment(repositoryID: secret.id, issueNumber: issue, body: "/asynccode --agent noop look", author: "alice")
            var found: Int64?
            try await eventually("a task in acme/secret") {
                found = try await e2e.db.scalar("SELECT max(t.id) FROM tasks t JOIN repositories r ON r.id = t.repository_id WHERE r.full_name = 'acme/secret'", as: Int64?.self) ?? nil
                return found != nil
            }
            let id = try #require(found)
            try await e2e.waitFor(task: id, status: "completed")
            try await WebDriver.with { driver in
                try await driver.withBrowser("alice") { alice in
                    try await Self.signIn("alice", alice, publicURL)
                    try await alice.navigate(publicURL + "/tasks/\(id)")
                    try #require(try await alice.text("h1")?.hasPrefix("Task #\(id)") == true)
                    try #require(try await alice.text("#task-status") == "Completed")
                    try #require(try await alice.text("#facts")?.contains("acme/secret") == true)
                }
                try await driver.withBrowser("bob") { bob in
                    try await Self.signIn("bob", bob, publicURL)
                    try #require(try await bob.elements("tr[data-task-id]").isEmpty)
                    try await bob.navigate(publicURL + "/tasks/\(id)")
                    try #require(try await bob.title() == "Not found · asynccode")
                    try #require(try await bob.text("h1") == "This page does not exist")
                    try #require(try await !bob.source().contains("secret"))
                }
            }
        }
    }
}
