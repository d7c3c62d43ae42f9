import Database
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /api/openapi.yaml`: the API's OpenAPI description, byte for byte as shipped, to anyone (no sign-in).
///
/// The file is `docs/api/openapi.yaml`, found like `app-manifest/` (the working directory, or beside the binary)
/// and read once; when it is missing the route answers a 404 problem.
struct APIDescriptionController: Sendable {
    /// Where the description lives in the repository and beside an installed binary.
    static let relativePath = "docs/api/openapi.yaml"

    /// The description's bytes; nil when the file was not found or could not be read.
    let document: ByteBuffer?

    /// Reads the description at `file` (by default, the one `ProjectResources` finds).
    init(file: URL? = ProjectResources.locate(APIDescriptionController.relativePath)) {
        document = file.flatMap { try? Data(contentsOf: $0) }.map { ByteBuffer(bytes: $0) }
    }

    func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/api/openapi.yaml") { _, _ in
            guard let document else {
                return Problem(slug: "not-found", title: "Not found", status: .notFound,
                               detail: "\(Self.relativePath) is not installed with this bot").response
            }
            return Response(status: .ok, headers: [.contentType: "application/yaml"], body: ResponseBody(byteBuffer: document))
        }
    }
}
