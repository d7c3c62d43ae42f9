import Foundation

/// Serves git smart HTTP for the simulator's bare repositories through `git http-backend` (CGI),
/// requiring basic auth `x-access-token:<live installation token>`.
struct GitHTTPBackend: Sendable {
    let store: SimulatorStore
    let api: SimulatorAPI
    let gitRoot: String

    func handle(method: String, path: String, query: String?, headers: [String: String], body: [UInt8]) async -> SimResponse {
        // path: /<owner>/<name>.git/<service path>
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map { String($0).removingPercentEncoding ?? String($0) }
        guard segments.count >= 3, segments[1].hasSuffix(".git") else { return .notFound }
        let owner = segments[0]
        let name = String(segments[1].dropLast(4))
        guard let repo = store.withState({ $0.repository(owner: owner, name: name) }) else { return .notFound }

        let isPush = path.hasSuffix("/git-receive-pack") || (query ?? "").contains("service=git-receive-pack")
        let challenge = [("WWW-Authenticate", "Basic realm=\"GitHub\"")]
        guard let credentials = basicCredentials(headers["authorization"]), credentials.user == "x-access-token" else {
            return SimResponse(status: 401, headers: challenge, body: Array("Authentication required\n".utf8))
        }
        switch api.authorize("token \(credentials.password)", repository: repo, permission: "contents", level: isPush ? "write" : "read") {
        case .success:
            break
        case .failure(let error):
            if error.response.status == 403 {
                return SimResponse(status: 403, body: Array("Permission to \(repo.fullName).git denied.\n".utf8))
            }
            return SimResponse(status: 401, headers: challenge, body: Array("Invalid username or token.\n".utf8))
        }

        var environment = sanitizedGitEnvironment()
        environment["GIT_PROJECT_ROOT"] = gitRoot
        environment["GIT_HTTP_EXPORT_ALL"] = "1"
        environment["PATH_INFO"] = "/\(repo.owner)/\(repo.name).git/" + segments.dropFirst(2).joined(separator: "/")
        environment["REQUEST_METHOD"] = method
        environment["QUERY_STRING"] = query ?? ""
        environment["CONTENT_TYPE"] = headers["content-type"] ?? ""
        environment["CONTENT_LENGTH"] = String(body.count)
        environment["REMOTE_USER"] = "x-access-token"
        environment["REMOTE_ADDR"] = "127.0.0.1"
        environment["GIT_CONFIG_NOSYSTEM"] = "1"
        if let encoding = headers["content-encoding"] { environment["HTTP_CONTENT_ENCODING"] = encoding }
        if let protocolHeader = headers["git-protocol"] { environment["GIT_PROTOCOL"] = protocolHeader }
        let result: ProcessResult
        do {
            result = try await runProcess(["git", "http-backend"], environment: environment, stdin: body)
        } catch {
            return SimResponse(status: 500, body: Array("git http-backend failed to start: \(error)\n".utf8))
        }
        let response = parseCGI(result.stdout, exitStatus: result.status, stderr: result.stderr)
        if isPush, method == "POST" { await api.refreshPullRequestHeads(repo) }
        return response
    }

    private func basicCredentials(_ authorization: String?) -> (user: String, password: String)? {
        guard let authorization else { return nil }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
              let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)) else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    private func parseCGI(_ output: [UInt8], exitStatus: Int32, stderr: String) -> SimResponse {
        // Headers end at the first empty line (CRLF or LF).
        var headerEnd: Int? = nil
        var bodyStart = 0
        var index = 0
        while index < output.count {
            if output[index] == 10 {
                if index + 1 < output.count && output[index + 1] == 10 { headerEnd = index; bodyStart = index + 2; break }
                if index + 2 < output.count && output[index + 1] == 13 && output[index + 2] == 10 { headerEnd = index; bodyStart = index + 3; break }
            }
            index += 1
        }
        guard let headerEnd else {
            return SimResponse(status: 500, body: Array("git http-backend (exit \(exitStatus)) gave no headers: \(stderr)\n".utf8))
        }
        var status = 200
        var headers: [(String, String)] = []
        for line in String(decoding: output[..<headerEnd], as: UTF8.self).split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name.lowercased() == "status" {
                status = Int(value.prefix(3)) ?? 500
            } else {
                headers.append((name, value))
            }
        }
        return SimResponse(status: status, headers: headers, body: Array(output[bodyStart...]))
    }
}
