import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TestSupport

/// A small W3C WebDriver client over AsyncHTTPClient, for tests of the pages in a real browser: it starts
/// `chromedriver --port=<free port>` as a subprocess, waits for `/status`, opens headless Chromium sessions and
/// drives them (navigate, find by CSS, click, type, read text and attributes, run a script, take a screenshot).
final class WebDriver: @unchecked Sendable {
    /// Chromium and ChromeDriver, when this machine has them (`scripts/setup --test` installs both on Debian).
    static let chromium = executable(["chromium", "chromium-browser"])
    static let chromedriver = executable(["chromedriver"])
    static var isAvailable: Bool { chromium != nil && chromedriver != nil }

    /// Where screenshots and page sources of failed browser tests go (`scripts/test` prints it).
    static var artifactsDirectory: URL { TestEnvironment.packageRoot.appendingPathComponent(".local/test-artifacts") }

    let base: String
    let http: HTTPClient
    private let process: Process
    private let logPath: String

    private init(base: String, process: Process, logPath: String) {
        self.base = base
        self.process = process
        self.logPath = logPath
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
    }

    /// Runs `body` with a driver of its own, stopped afterwards (with every session it still has).
    static func with<T: Sendable>(_ body: (WebDriver) async throws -> T) async throws -> T {
        let driver = try await start()
        do {
            let result = try await body(driver)
            await driver.stop()
            return result
        } catch {
            await driver.stop()
            throw error
        }
    }

    private static func start() async throws -> WebDriver {
        guard let chromedriver else { throw TestFailure("chromedriver is not installed") }
        let port = try freePort()
        let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("chromedriver-\(port).log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromedriver)
        process.arguments = ["--port=\(port)", "--log-path=\(logPath)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let driver = WebDriver(base: "http://127.0.0.1:\(port)", process: process, logPath: logPath)
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            if let status = try? await driver.command(.GET, "/status"), (status as? [String: Any])?["ready"] as? Bool == true { return driver }
            guard ContinuousClock.now < deadline, process.isRunning else {
                await driver.stop()
                throw TestFailure("chromedriver did not become ready on port \(port)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Stops the driver process (SIGTERM, then SIGKILL after 5 seconds) and its HTTP client.
    func stop() async {
        if process.isRunning { process.terminate() }
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? await http.shutdown()
        try? FileManager.default.removeItem(atPath: logPath)
    }

    /// Opens a headless Chromium session (a fresh profile: no cookies).
    func session() async throws -> BrowserSession {
        guard let chromium = Self.chromium else { throw TestFailure("chromium is not installed") }
        let options: [String: Any] = [
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--no-first-run", "--no-default-browser-check", "--disable-extensions"],
        ]
        let answer = try await command(.POST, "/session", [
            "capabilities": ["alwaysMatch": ["browserName": "chrome", "goog:chromeOptions": options, "pageLoadStrategy": "normal"]],
        ])
        guard let id = (answer as? [String: Any])?["sessionId"] as? String else { throw TestFailure("no session id in \(String(describing: answer))") }
        return BrowserSession(driver: self, id: id)
    }

    /// Sends a WebDriver command and returns its `value`; a WebDriver error becomes a thrown ``TestFailure``.
    @discardableResult
    func command(_ method: HTTPMethod, _ path: String, _ body: [String: Any]? = nil) async throws -> Any? {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        } else if method == .POST {
            request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
            request.body = .bytes(ByteBuffer(string: "{}"))
        }
        let response = try await http.execute(request, timeout: .seconds(60))
        let data = try await response.body.collect(upTo: 64 * 1024 * 1024)
        let object = try? JSONSerialization.jsonObject(with: Data(buffer: data), options: [.fragmentsAllowed]) as? [String: Any]
        let value = object?["value"]
        if response.status.code >= 400 {
            let error = value as? [String: Any]
            throw TestFailure("WebDriver \(method) \(path): \(error?["error"] as? String ?? "HTTP \(response.status.code)"): "
                              + "\((error?["message"] as? String ?? String(buffer: data)).prefix(500))")
        }
        return value is NSNull ? nil : value
    }

    private static func executable(_ names: [String]) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for name in names {
            for folder in path.split(separator: ":") + ["/usr/bin"] {
                let candidate = "\(folder)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        return nil
    }
}

/// One browser (a WebDriver session): its own window and cookies.
struct BrowserSession: Sendable {
    static let elementKey = "element-6066-11e4-a52e-4f735466cecf"

    let driver: WebDriver
    let id: String

    /// An element of the current page.
    struct Element: Sendable {
        let session: BrowserSession
        let id: String

        func click() async throws { try await session.command(.POST, "/element/\(id)/click", [:]) }
        func clear() async throws { try await session.command(.POST, "/element/\(id)/clear", [:]) }
        func type(_ text: String) async throws { try await session.command(.POST, "/element/\(id)/value", ["text": text]) }
        func text() async throws -> String { try await session.command(.GET, "/element/\(id)/text") as? String ?? "" }
        func attribute(_ name: String) async throws -> String? { try await session.command(.GET, "/element/\(id)/attribute/\(name)") as? String }
    }

    @discardableResult
    func command(_ method: HTTPMethod, _ path: String, _ body: [String: Any]? = nil) async throws -> Any? {
        try await driver.command(method, "/session/\(id)" + path, body)
    }

    func navigate(_ url: String) async throws { try await command(.POST, "/url", ["url": url]) }
    func currentURL() async throws -> String { try await command(.GET, "/url") as? String ?? "" }
    func title() async throws -> String { try await command(.GET, "/title") as? String ?? "" }
    func source() async throws -> String { try await command(.GET, "/source") as? String ?? "" }

    /// Returns the first element matching `css`; throws when there is none.
    func element(_ css: String) async throws -> Element {
        let value = try await command(.POST, "/element", ["using": "css selector", "value": css])
        guard let id = (value as? [String: Any])?[Self.elementKey] as? String else { throw TestFailure("no element \(css)") }
        return Element(session: self, id: id)
    }

    /// Returns every element matching `css`.
    func elements(_ css: String) async throws -> [Element] {
        let value = try await command(.POST, "/elements", ["using": "css selector", "value": css]) as? [[String: Any]] ?? []
        return value.compactMap { ($0[Self.elementKey] as? String).map { Element(session: self, id: $0) } }
    }

    /// Returns the text of the first element matching `css`, or nil when there is none.
    func text(_ css: String) async throws -> String? {
        guard let found = try await elements(css).first else { return nil }
        return try await found.text()
    }

    /// Runs `script` (a function body; `arguments[0]`… are `arguments`) in the page and returns its result.
    @discardableResult
    func execute(_ script: String, _ arguments: [Any] = []) async throws -> Any? {
        try await command(.POST, "/execute/sync", ["script": script, "args": arguments])
    }

    /// Waits until `condition` holds, polling the page; records the page and fails after `timeout`.
    func waitUntil(_ what: String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        if try await condition() { return }
        throw TestFailure("timed out waiting until \(what) (at \(try await currentURL()))")
    }

    /// Returns a PNG of the window.
    func screenshot() async throws -> Data {
        guard let base64 = try await command(.GET, "/screenshot") as? String, let data = Data(base64Encoded: base64) else {
            throw TestFailure("no screenshot")
        }
        return data
    }

    /// Saves a screenshot and the page's HTML as `.local/test-artifacts/<name>.png` and `.html`.
    func saveArtifacts(_ name: String) async {
        let folder = WebDriver.artifactsDirectory
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let safe = String(name.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" })
        if let png = try? await screenshot() { try? png.write(to: folder.appendingPathComponent(safe + ".png")) }
        if let html = try? await source() { try? html.write(to: folder.appendingPathComponent(safe + ".html"), atomically: true, encoding: .utf8) }
    }

    func close() async { _ = try? await driver.command(.DELETE, "/session/\(id)") }
}

extension WebDriver {
    /// Runs `body` with a new browser session; when it throws, saves the window's screenshot and HTML as the test's
    /// artifacts (named after the test and `label`) before closing the session and rethrowing.
    func withBrowser<T: Sendable>(_ label: String, _ body: (BrowserSession) async throws -> T) async throws -> T {
        let browser = try await session()
        do {
            let result = try await body(browser)
            await browser.close()
            return result
        } catch {
            let test = Test.current?.name.replacingOccurrences(of: "()", with: "") ?? "browser-test"
            await browser.saveArtifacts("\(test)-\(label)")
            await browser.close()
            throw error
        }
    }
}
