@testable import AsyncCodeApp
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import TestSupport

/// `GET /api/openapi.yaml` serves `docs/api/openapi.yaml` byte for byte. The description itself, and the
/// APIConformance validator that holds responses to it, are tested in EndToEndTests/APIDescriptionTests.swift.
@Suite(.timeLimit(.minutes(10))) struct APIDescriptionTests {
    static let file = TestEnvironment.packageRoot.appendingPathComponent("docs/api/openapi.yaml")

    func withController(_ controller: APIDescriptionController, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let router = Router()
        controller.addRoutes(to: router)
        var logger = Logger(label: "api-description-test")
        logger.logLevel = .critical
        try await Application(router: router, logger: logger).test(.live, body)
    }

    @Test func servesTheFileAsItIs() async throws {
        // The default location is the one ProjectResources finds (the package root, when testing).
        let controller = APIDescriptionController()
        let file = try Data(contentsOf: Self.file)
        #expect(controller.document.map { Array($0.readableBytesView) } == Array(file))
        try await withController(controller) { client in
            // No cookie, no token: the description is public.
            let response = try await client.execute(uri: "/api/openapi.yaml", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/yaml")
            #expect(Array(response.body.readableBytesView) == Array(file))
            #expect(String(decoding: response.body.readableBytesView, as: UTF8.self).hasPrefix("openapi: '3.1."))
        }
    }

    @Test func aMissingFileAnswersAProblem() async throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-dir-\(UUID().uuidString)/openapi.yaml")
        try await withController(APIDescriptionController(file: missing)) { client in
            let response = try await client.execute(uri: "/api/openapi.yaml", method: .get)
            #expect(response.status == .notFound)
            #expect(response.headers[.contentType] == "application/problem+json")
            let problem = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
            #expect(problem?["type"] as? String == "https://asynccode.dev/problems/not-found")
            #expect(problem?["status"] as? Int == 404)
            #expect((problem?["detail"] as? String)?.contains("docs/api/openapi.yaml") == true)
        }
        try await withController(APIDescriptionController(file: nil)) { client in
            let response = try await client.execute(uri: "/api/openapi.yaml", method: .get)
            #expect(response.status == .notFound)
        }
    }
}
