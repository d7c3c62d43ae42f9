import Accounting
import Foundation
import Testing
import TestSupport

/// Processes with different agent files share `ai_models` without marking each other's models inactive.
@Suite(.timeLimit(.minutes(10))) struct ModelSourcesTests {
    func active(_ store: ModelCatalogStore) async throws -> [String] {
        try await store.models().filter(\.isActive).map(\.name).sorted()
    }

    @Test func processesWithDifferentAgentFilesKeepEachOthersModelsActive() async throws {
        try await TestDatabase.with { db async throws in
            let store = ModelCatalogStore(client: db.client, logger: db.logger)
            let first = ModelCatalogStore.source(hostName: "web1", configFilePath: "/etc/asynccode/asynccode.yml")
            let second = ModelCatalogStore.source(hostName: "gpu1", configFilePath: "/etc/asynccode/asynccode.yml")
            #expect(first != second)
            // Each starts, then each starts again: nobody's models go inactive.
            #expect(try await store.sync([ModelEntry(name: "claude"), ModelEntry(name: "shared")], source: first).isEmpty)
            #expect(try await store.sync([ModelEntry(name: "codex"), ModelEntry(name: "shared")], source: second).isEmpty)
            #expect(try await store.sync([ModelEntry(name: "claude"), ModelEntry(name: "shared")], source: first).isEmpty)
            #expect(try await store.sync([ModelEntry(name: "codex"), ModelEntry(name: "shared")], source: second).isEmpty)
            #expect(try await active(store) == ["claude", "codex", "shared"])
            // The first drops `shared`: the second still lists it, so it stays active.
            #expect(try await store.sync([ModelEntry(name: "claude")], source: first).isEmpty)
            #expect(try await active(store) == ["claude", "codex", "shared"])
            // The second drops it too: now nobody lists it.
            #expect(try await store.sync([ModelEntry(name: "codex")], source: second) == ["shared"])
            #expect(try await active(store) == ["claude", "codex"])
            // A process's own removal still takes effect, and a model listed again comes back.
            #expect(try await store.sync([], source: first) == ["claude"])
            #expect(try await store.sync([ModelEntry(name: "codex"), ModelEntry(name: "claude")], source: second).isEmpty)
            #expect(try await active(store) == ["claude", "codex"])
            #expect(try await db.count("ai_models") == 3)
        }
    }
}
