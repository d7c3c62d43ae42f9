import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An HTTP API error as `application/problem+json` (RFC 9457): a stable `type` per kind of error, a title, the
/// status and a detail that never holds a secret.
struct Problem: Error, Sendable {
    /// The stable part of `type` (`https://asynccode.dev/problems/<slug>`).
    var slug: String
    var title: String
    var status: HTTPResponse.Status
    var detail: String?
    var headers: HTTPFields = [:]

    static let typeBase = "https://asynccode.dev/problems/"

    var response: Response {
        var object: [String: Any] = ["type": Self.typeBase + slug, "title": title, "status": status.code]
        if let detail { object["detail"] = detail }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        var fields = headers
        fields[.contentType] = "application/problem+json"
        fields[.cacheControl] = "no-store"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func notSignedIn() -> Problem {
        Problem(slug: "not-signed-in", title: "Not signed in", status: .unauthorized,
                detail: "sign in at /login, or send `Authorization: Bearer <a GitHub user token>`")
    }

    static func notFound() -> Problem {
        Problem(slug: "not-found", title: "Not found", status: .notFound)
    }
}

/// Returns a JSON response of `object`.
func jsonResponse(_ status: HTTPResponse.Status, _ object: Any) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    return Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}

extension Request {
    /// Returns the body, at most `limit` bytes; a larger one is a 413 problem saying so (`what`: "body", "form").
    func limitedBody(_ limit: Int, what: String = "body") async throws -> ByteBuffer {
        var request = self
        do {
            return try await request.collectBody(upTo: limit)
        } catch {
            throw Problem(slug: "body-too-large", title: "The \(what) is too large", status: .contentTooLarge, detail: "at most \(limit / 1024) KB")
        }
    }
}
