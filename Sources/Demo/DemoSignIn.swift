import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The demo's browser for "Sign in with GitHub": follows `/login` through the simulator's authorize page back to
/// the bot by hand (redirects off, cookies kept), then reads `GET /api/tasks` with the session.
public enum DemoSignIn {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Signs in and returns one line per task the API lists.
    static func listTasks(botURL: String) async throws -> [String] {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        do {
            let lines = try await signInAndList(http, botURL: botURL)
            try await http.shutdown()
            return lines
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    /// Signs in through `/login` and the simulator's authorize page; returns the session cookie's value.
    public static func session(_ http: HTTPClient, botURL: String) async throws -> String {
        var cookies: [String: String] = [:]
        try await signIn(http, botURL: botURL, cookies: &cookies)
        return cookies["asynccode_session"]!
    }

    private static func signIn(_ http: HTTPClient, botURL: String, cookies: inout [String: String]) async throws {
        let (loginStatus, authorize, _) = try await get(http, botURL: botURL, botURL + "/login", cookies: &cookies)
        guard loginStatus == 302, let authorize else { throw Failure(description: "GET /login answered \(loginStatus)") }
        let (approveStatus, callback, _) = try await get(http, botURL: botURL, authorize, cookies: &cookies)
        guard approveStatus == 302, let callback else { throw Failure(description: "GitHub's authorize page answered \(approveStatus)") }
        let (callbackStatus, _, _) = try await get(http, botURL: botURL, callback, cookies: &cookies)
        guard callbackStatus == 302, cookies["asynccode_session"] != nil else {
            throw Failure(description: "the sign-in callback answered \(callbackStatus)")
        }
    }

    private static func get(_ http: HTTPClient, botURL: String, _ url: String, cookies: inout [String: String]) async throws -> (Int, String?, ByteBuffer) {
        var request = HTTPClientRequest(url: url)
        if url.hasPrefix(botURL), !cookies.isEmpty {
            request.headers.add(name: "Cookie", value: cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; "))
        }
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1024 * 1024)
        if url.hasPrefix(botURL) {
            for header in response.headers["set-cookie"] {
                let pair = header.split(separator: ";")[0].split(separator: "=", maxSplits: 1)
                if pair.count == 2 { cookies[String(pair[0])] = String(pair[1]) }
            }
        }
        return (Int(response.status.code), response.headers.first(name: "location"), body)
    }

    private static func signInAndList(_ http: HTTPClient, botURL: String) async throws -> [String] {
        var cookies: [String: String] = [:]
        try await signIn(http, botURL: botURL, cookies: &cookies)
        func get(_ url: String) async throws -> (Int, String?, ByteBuffer) {
            try await Self.get(http, botURL: botURL, url, cookies: &cookies)
        }
        // The last task's comment is final a moment before its row is: read until no task is still running.
        var tasks: [[String: Any]] = []
        for attempt in 0..<100 {
            let (status, _, body) = try await get(botURL + "/api/tasks")
            guard status == 200, let object = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                  let listed = object["tasks"] as? [[String: Any]] else { throw Failure(description: "GET /api/tasks answered \(status)") }
            tasks = listed
            if attempt == 99 || !listed.contains(where: { ["pending", "running"].contains($0["status"] as? String ?? "") }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return tasks.map { task in
            let repository = (task["repository"] as? [String: Any])?["full_name"] as? String ?? "?"
            let pull = (task["pull_request"] as? [String: Any])?["number"].map { " · pull request #\($0)" } ?? ""
            return "task \(task["id"] ?? "?") · \(task["kind"] ?? "?") · \(task["status"] ?? "?") · \(repository)\(pull) · \"\(task["prompt"] ?? "")\""
        }
    }

    /// Returns a TCP port free on 127.0.0.1 now.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "cannot open a socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw Failure(description: "cannot find a free port") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        guard named == 0 else { throw Failure(description: "cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
