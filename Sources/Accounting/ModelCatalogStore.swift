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
public struct ModelCatalogStore: Sendable {
    private let client: BoundedClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = BoundedClient(client)
        self.logger = logger
    }

    /// Makes `ai_models` match `entries`: each is inserted or updated and active; models no longer configured
    /// become inactive, never deleted (old tasks keep their model). Returns the names made inactive.
    @discardableResult
    public func sync(_ entries: [ModelEntry]) async throws -> [String] {
        try await client.withTransaction(logger: logger) { connection in
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
            let rows = try await connection.query("""
                UPDATE ai_models SET is_active = false WHERE is_active AND NOT (name = ANY(\(names)::text[])) RETURNING name
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
