import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OpenSSLCrypto

/// `GET /assets/app.css` and `GET /assets/live.js`, served from constants in the binary. Pages link them with a
/// version (`?v=` and the first hex digits of their SHA-256), so a day's caching never serves an old one.
enum PageAssets {
    static let stylesheetVersion = version(Stylesheet.text)
    static let scriptVersion = version(LiveScript.text)

    static func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/assets/app.css") { _, _ in asset(Stylesheet.text, type: "text/css; charset=utf-8") }
        router.get("/assets/live.js") { _, _ in asset(LiveScript.text, type: "text/javascript; charset=utf-8") }
    }

    static func asset(_ text: String, type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "public, max-age=86400"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    private static func version(_ text: String) -> String {
        SHA256Digest.hash(Array(text.utf8)).prefix(6).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }
}
