/// A database setup failure. Descriptions never hold a password.
public struct DatabaseError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String {
            case invalidURL, migrationsNotFound, invalidMigrationName, migrationChanged, migrationFailed
            case migrationMissingFile, unreachable
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        public static let invalidURL = Code(.invalidURL)
        public static let migrationsNotFound = Code(.migrationsNotFound)
        public static let invalidMigrationName = Code(.invalidMigrationName)
        /// An applied migration's file no longer has the checksum it was applied with.
        public static let migrationChanged = Code(.migrationChanged)
        public static let migrationFailed = Code(.migrationFailed)
        /// The database records a migration that no file provides.
        public static let migrationMissingFile = Code(.migrationMissingFile)
        public static let unreachable = Code(.unreachable)

        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
