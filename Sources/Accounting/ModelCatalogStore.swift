import Foundation
import Database
import Logging
import PostgresNIO

/// An AI model users may choose: an agent of the configuration as `ai_models` records it.
public struct ModelEntry: Sendable, Hashable {
    public var name: String
    public var displayName: String
    public var provider: String
    public var description: String?
    public var pricing: Pricing
    public var isActive: Bool

    public init(name: String, displayName: String? = nil, provider: String? = nil, description: String? = nil,
                pricing: Pricing = Pricing(), isActive: Bool = true) {
        self.name = name
        self.displayName = displayName ?? name
        self.provider = provider ?? "custom"
        self.description = description
        self.pricing = pricing
        self.isActive = isActive
    }
}

/// The `ai_models` table: synced from the configured agents at start.
///
/// Several processes may share the table with different agent files. Each registers its models under its
/// own source (`ai_model_sources`) and drops only its own registrations; a model is active while at least
/// one source lists it.
public struct ModelCatalogStore: Sendable {
    private let client: BoundedClient
    private let logger: Logger

    /// The transaction lock that serializes syncs (`"asyncmdl"`).
    static let lockKey: Int64 = 0x6173_796e_636d_646c

    public init(client: PostgresClient, logger: Logger) {
        self.client = BoundedClient(client)
        self.logger = logger
    }

    /// Returns the source a process registers its models under: its host name and the absolute path of its
    /// agent file (`ASYNCCODE_CONFIG`).
    public static func source(hostName: String = ProcessInfo.processInfo.hostName, configFilePath: String?) -> String {
        let path = configFilePath.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? "(no agent file)"
        return "\(hostName):\(path)"
    }

    /// Registers `entries` as `source`'s models: each is inserted or updated and active. Models `source`
    /// listed before and no longer does lose its registration, and a model no source lists any more becomes
    /// inactive, never deleted (old tasks keep their model). Returns the names made inactive.
    @discardableResult
    public func sync(_ entries: [ModelEntry], source: String = "default") async throws -> [String] {
        try await client.withTransaction(logger: logger) { connection in
            // One sync at a time: a model another process registers meanwhile is not made inactive.
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
            for entry in entries {
                try await connection.query("""
                    INSERT INTO ai_models (name, display_name, provider, description, cost_per_token, cost_per_minute,
                                           max_tokens, is_active)
                    VALUES (\(entry.name), \(entry.displayName), \(entry.provider), \(entry.description),
                            \(entry.pricing.costPerToken), \(entry.pricing.costPerMinute),
                            \(entry.pricing.maxTokens.map { Int32(clamping: $0) }), true)
                    ON CONFLICT (name) DO UPDATE SET
                        display_name = EXCLUDED.display_name, provider = EXCLUDED.provider,
                        description = EXCLUDED.description, cost_per_token = EXCLUDED.cost_per_token,
                        cost_per_minute = EXCLUDED.cost_per_minute, max_tokens = EXCLUDED.max_tokens, is_active = true
                    WHERE (ai_models.display_name, ai_models.provider, ai_models.description, ai_models.cost_per_token,
                           ai_models.cost_per_minute, ai_models.max_tokens, ai_models.is_active)
                          IS DISTINCT FROM (EXCLUDED.display_name, EXCLUDED.provider, EXCLUDED.description,
                           EXCLUDED.cost_per_token, EXCLUDED.cost_per_minute, EXCLUDED.max_tokens, true)
                    """, logger: logger)
            }
            let names = entries.map(\.name)
            try await connection.query("""
                INSERT INTO ai_model_sources (model_id, source)
                SELECT id, \(source) FROM ai_models WHERE name = ANY(\(names)::text[])
                ON CONFLICT DO NOTHING
                """, logger: logger)
            try await connection.query("""
                DELETE FROM ai_model_sources s USING ai_models m
                WHERE s.source = \(source) AND m.id = s.model_id AND NOT (m.name = ANY(\(names)::text[]))
                """, logger: logger)
            let rows = try await connection.query("""
                UPDATE ai_models m SET is_active = false
                WHERE m.is_active AND NOT EXISTS (SELECT 1 FROM ai_model_sources s WHERE s.model_id = m.id)
                RETURNING m.name
                """, logger: logger)
            var deactivated: [String] = []
            for try await name in rows.decode(String.self) { deactivated.append(name) }
            return deactivated.sorted()
        }
    }

    /// Returns every model, active ones first, by name.
    public func models() async throws -> [ModelEntry] {
        let rows = try await client.query("""
            SELECT name, display_name, provider, description, cost_per_token, cost_per_minute, max_tokens, is_active
            FROM ai_models ORDER BY is_active DESC, name
            """, logger: logger)
        var models: [ModelEntry] = []
        for try await (name, display, provider, description, perToken, perMinute, maxTokens, active)
            in rows.decode((String, String, String, String?, Decimal, Decimal, Int32?, Bool).self) {
            models.append(ModelEntry(
                name: name, displayName: display, provider: provider, description: description,
                pricing: Pricing(costPerToken: perToken, costPerMinute: perMinute, maxTokens: maxTokens.map(Int.init)),
                isActive: active))
        }
        return models
    }
}
