/// Why a webhook request was refused. Descriptions never hold the body, a signature or a secret.
public struct IntakeError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The kind of refusal.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String { case invalidJSON, unexpectedPayload, invalidHeader }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The body is not JSON.
        public static let invalidJSON = Code(.invalidJSON)
        /// The JSON lacks what the event must carry.
        public static let unexpectedPayload = Code(.unexpectedPayload)
        /// A required header is missing or malformed.
        public static let invalidHeader = Code(.invalidHeader)

        public var description: String { base.rawValue }
    }

    public var code: Code
    /// A short, safe explanation for the sender.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
