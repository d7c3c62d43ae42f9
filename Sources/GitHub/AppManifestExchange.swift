import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The App GitHub made from a manifest: what `POST /app-manifests/{code}/conversions` returns.
///
/// Its description hides the private key, the webhook secret and the client secret.
public struct CreatedApp: Decodable, Sendable, CustomStringConvertible {
    public var id: Int64
    public var slug: String?
    public var name: String
    /// The App's page on GitHub; its install page is `<htmlURL>/installations/new`.
    public var htmlURL: String
    public var owner: GitHubUser?
    public var clientID: String
    /// The App's OAuth client secret (for "Sign in with GitHub"); nil when GitHub sent none.
    public var clientSecret: String?
    /// The App's private key (PEM).
    public var pem: String
    /// The webhook secret GitHub generated; nil when the manifest had no webhook.
    public var webhookSecret: String?

    enum CodingKeys: String, CodingKey {
        case id, slug, name, owner, pem
        case htmlURL = "html_url"
        case clientID = "client_id"
        case clientSecret = "client_secret"
        case webhookSecret = "webhook_secret"
    }

    public var description: String { "CreatedApp(id: \(id), slug: \(slug ?? "-"), name: \(name))" }
}

/// Finishes GitHub's App manifest flow: exchanges the one-time `code` GitHub's redirect carries for
/// the new App's id, key and webhook secret.
public struct AppManifestExchange: Sendable {
    let configuration: GitHubClient.Configuration

    /// Creates an exchange against `configuration.apiURL` (trusting its CA bundle, if any).
    public init(configuration: GitHubClient.Configuration) {
        self.configuration = configuration
    }

    /// Returns the App made from the manifest (`POST /app-manifests/{code}/conversions`).
    ///
    /// Not retried: a code works once and expires after an hour.
    /// - Throws: ``GitHubError`` when GitHub refuses the code or cannot be reached.
    public func convert(code: String) async throws(GitHubError) -> CreatedApp {
        guard !code.isEmpty, code.count <= 256, code.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw GitHubError(.httpStatus, status: 404, route: "POST /app-manifests/{code}/conversions", message: "the code is malformed")
        }
        var apiURL = configuration.apiURL
        while apiURL.hasSuffix("/") { apiURL.removeLast() }
        let route = "POST /app-manifests/{code}/conversions"
        let http = try GitHubClient.makeHTTPClient(configuration)
        var request = HTTPClientRequest(url: "\(apiURL)/app-manifests/\(code)/conversions")
        request.method = .POST
        request.headers.add(name: "Accept", value: "application/vnd.github+json")
        request.headers.add(name: "X-GitHub-Api-Version", value: "2022-11-28")
        request.headers.add(name: "User-Agent", value: "asynccode/\(configuration.version)")
        let status: Int
        let body: ByteBuffer
        do {
            let response = try await http.execute(request, timeout: .seconds(30))
            status = Int(response.status.code)
            body = try await response.body.collect(upTo: 1024 * 1024)
            try? await http.shutdown()
        } catch {
            try? await http.shutdown()
            throw GitHubError(.transport, route: route, message: "GitHub could not be reached: \(type(of: error))")
        }
        guard status == 201 else {
            throw GitHubError(.httpStatus, status: status, route: route,
                              message: Transport.githubMessage(body) ?? "GitHub refused the code")
        }
        do {
            return try JSONDecoder().decode(CreatedApp.self, from: Data(body.readableBytesView))
        } catch {
            throw GitHubError(.decoding, status: status, route: route, message: "cannot decode the App: \(Transport.describeDecodingError(error))")
        }
    }
}
