import APIConformance
import AsyncCodeApp
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport

/// Live events (issue 21): `GET /api/events` and `GET /api/tasks/{id}/events` as server-sent events, fed by
/// `task_events` through one LISTEN connection per process.
@Suite(.serialized, .timeLimit(.minutes(5))) struct LiveEventsEndToEndTests {
    /// Sign-in configured, events heartbeat every second.
    static func withEvents(_ body: @Sendable @escaping (EndToEnd, String) async throws -> Void) async throws {
        try await APIEndToEndTests.withSignIn(configure: { configuration in
            configuration.eventHeartbeat = .seconds(1)
            configuration.eventAccessRecheck = .seconds(1)
        }, body)
    }

    @Test func aTaskStreamsToThoseWhoMayReadItAndAResumeMissesNothing() async throws {
        try await Self.withEvents { e2e, publicURL in
            let alice = try #require(try await APIEndToEndTests.signIn("alice", e2e, publicURL).cookie("asynccode_session"))
            let bob = try #require(try await APIEndToEndTests.signIn("bob", e2e, publicURL).cookie("asynccode_session"))
            let issue = e2e.issue()
            let (taskID, seen) = try await EventStream.with(publicURL + "/api/events", cookie: alice) { aliceStream in
                try await EventStream.with(publicURL + "/api/events", cookie: bob) { bobStream in
                    #expect(aliceStream.status == 200)
                    #expect(aliceStream.headers["content-type"] == "text/event-stream; charset=utf-8")
                    #expect(aliceStream.headers["x-accel-buffering"] == "no")
                    let taskID = try await e2e.comment("/asynccode fix it", on: issue)
                    try await e2e.waitFor(task: taskID, status: "completed")
                    try await eventually("alice sees the task end") {
                        aliceStream.events.contains { $0.kind == "task.completed" && $0.taskID == taskID }
                    }
                    // Bob's stream went quiet after the same events reached it: he was sent none of them.
                    let heartbeats = bobStream.comments
                    try await eventually("bob's stream beats", timeout: .seconds(10)) { bobStream.comments > heartbeats }
                    // (His own ledger's welcome credits may reach him; nothing of alice's repository or ledger does.)
                    #expect(bobStream.events.allSatisfy { $0.kind == "credits.updated" && $0.payload["account"] as? String == "bob" },
                            "\(bobStream.events)")
                    return (taskID, aliceStream.events.filter { $0.taskID == taskID })
                }
            }
            // The progress comment links the task's live page.
            #expect(e2e.botComments(on: issue).contains { $0.body.contains("· [Watch live](\(publicURL)/tasks/\(taskID))") })
            // Pending, running, the steps, the end; ids rising; each a JSON object of the documented shape.
            let kinds = seen.map(\.kind)
            #expect(kinds.first == "task.status_updated" && seen.first?.payload["status"] as? String == "pending")
            #expect(seen.contains { $0.kind == "task.status_updated" && $0.payload["status"] as? String == "running" })
            #expect(kinds.filter { $0 == "task.step" }.count >= 3)
            #expect(kinds.last == "task.completed" || seen.contains { $0.kind == "task.completed" })
            let ids = seen.compactMap(\.id)
            #expect(ids == ids.sorted() && Set(ids).count == ids.count && ids.count == seen.count)
            let repositoryID = try await e2e.db.scalar("SELECT repository_id FROM tasks WHERE id = \(taskID)", as: Int64.self)
            #expect(seen.allSatisfy { ($0.json["repository_id"] as? NSNumber)?.int64Value == repositoryID }, "\(seen.map(\.data))")
            #expect(seen.allSatisfy { ($0.json["at"] as? String)?.hasSuffix("Z") == true })
            // Each is a TaskEvent as the API description has it.
            let description = try APIConformance.shared
            for event in seen {
                let problems = description.validate(event.json, schema: ["$ref": "#/components/schemas/TaskEvent"])
                #expect(problems.isEmpty, "\(event.data): \(problems)")
            }
            // Resuming after the first event gives exactly the rest, from the table.
            let first = try #require(ids.first)
            let rest = try await EventStream.with(publicURL + "/api/tasks/\(taskID)/events", cookie: alice, lastEventID: first) { stream in
                try await eventually("the resumed stream reaches the end") { stream.events.contains { $0.kind == "task.completed" } }
                return stream.events.compactMap(\.id)
            }
            #expect(rest == Array(ids.dropFirst()))
            // `after` does the same for a first connection.
            let after = try await EventStream.with(publicURL + "/api/tasks/\(taskID)/events?after=\(ids[1])", cookie: alice) { stream in
                try await eventually("the stream reaches the end") { stream.events.contains { $0.kind == "task.completed" } }
                return stream.events.compactMap(\.id)
            }
            #expect(after == Array(ids.dropFirst(2)))
            // Bob may not watch it: the task does not exist for him.
            let refused = try await EventStream.with(publicURL + "/api/tasks/\(taskID)/events", cookie: bob) { $0.status }
            #expect(refused == 404)
            let bad = try await EventStream.with(publicURL + "/api/events?after=yesterday", cookie: alice) { $0.status }
            #expect(bad == 400)
            let anonymous = try await EventStream.with(publicURL + "/api/events") { $0.status }
            #expect(anonymous == 401)
        }
    }

    /// A user holds at most `eventStreamsPerUser` streams; past it 429 with Retry-After, and a closed stream
    /// frees its place.
    @Test func aUserHoldsAtMostTheirStreams() async throws {
        try await APIEndToEndTests.withSignIn(configure: { configuration in
            configuration.eventHeartbeat = .seconds(1)
            configuration.eventStreamsPerUser = 2
        }) { e2e, publicURL in
            let alice = try #require(try await APIEndToEndTests.signIn("alice", e2e, publicURL).cookie("asynccode_session"))
            try await EventStream.with(publicURL + "/api/events", cookie: alice) { first in
                #expect(first.status == 200)
                try await EventStream.with(publicURL + "/api/events", cookie: alice) { second in
                    #expect(second.status == 200)
                    try await EventStream.with(publicURL + "/api/events", cookie: alice) { third in
                        #expect(third.status == 429 && third.headers["retry-after"] == "5")
                    }
                }
                // The second stream's place is free once the server notices it closed (at its next write).
                try await eventually("a stream may open again", timeout: .seconds(10)) {
                    try await EventStream.with(publicURL + "/api/events", cookie: alice) { $0.status } == 200
                }
            }
        }
    }

    /// Signing out ends the user's open streams (their session is read again every `eventAccessRecheck`).
    @Test func signingOutEndsTheStream() async throws {
        try await Self.withEvents { e2e, publicURL in
            let browser = try await APIEndToEndTests.signIn("alice", e2e, publicURL)
            let alice = try #require(browser.cookie("asynccode_session"))
            try await EventStream.with(publicURL + "/api/events", cookie: alice) { stream in
                #expect(stream.status == 200)
                try await eventually("a heartbeat", timeout: .seconds(10)) { stream.comments >= 2 }
                #expect(!stream.ended)
                let out = try await browser.send(.POST, "/logout", json: nil, origin: publicURL)
                #expect(out.status == 303)
                try await eventually("the stream ends", timeout: .seconds(10)) { stream.ended }
            }
        }
    }

    /// Two server processes on one database: an event written by one reaches a stream held by the other; that
    /// server stopping ends the stream cleanly.
    @Test func anEventOfOneProcessReachesAStreamOfAnother() async throws {
        try await Self.withEvents { e2e, publicURL in
            let alice = try #require(try await APIEndToEndTests.signIn("alice", e2e, publicURL).cookie("asynccode_session"))
            var second = e2e.configuration
            second.port = try freePort()
            second.workers = 0
            let logs = LogCapture()
            let port = Mutex<Int?>(nil)
            let app = try await buildApplication(configuration: second, logger: logs.logger(label: "second", level: .debug)) { bound in
                port.withLock { $0 = bound }
            }
            let services = ServiceGroup(configuration: .init(services: [.init(service: app)], logger: logs.logger(label: "second")))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await services.run() }
                try await eventually("the second server listens") { port.withLock { $0 } != nil }
                let other = "http://127.0.0.1:\(port.withLock { $0 }!)"
                try await EventStream.with(other + "/api/events", cookie: alice) { stream in
                    #expect(stream.status == 200)
                    let taskID = try await e2e.comment("/asynccode fix it", on: e2e.issue())
                    try await eventually("the other process streams the task's end") {
                        stream.events.contains { $0.kind == "task.completed" && $0.taskID == taskID }
                    }
                    // The first process has them too, from its own reader.
                    let own = try await EventStream.with(publicURL + "/api/tasks/\(taskID)/events?after=0", cookie: alice) { mine in
                        try await eventually("the first process streams them") { mine.events.contains { $0.kind == "task.completed" } }
                        return mine.events.compactMap(\.id)
                    }
                    #expect(own == stream.events.filter { $0.taskID == taskID }.compactMap(\.id))
                    // The second server stops (as on SIGTERM) while the stream is open: the stream ends, the server exits.
                    await services.triggerGracefulShutdown()
                    try await eventually("the stream ends with the server", timeout: .seconds(10)) { stream.ended }
                }
                try await group.waitForAll()
            }
        }
    }

    /// 10,000 events written by 4 connections at once (commits out of id order, gaps of rolled-back ids), the
    /// listener's connection terminated in the middle: a stream gets each once, in order; a stream dropped in
    /// the middle and resumed with Last-Event-ID gets exactly the ones it missed.
    @Test func tenThousandEventsThroughADroppedListenerAndAResume() async throws {
        try await Self.withEvents { e2e, publicURL in
            let alice = try #require(try await APIEndToEndTests.signIn("alice", e2e, publicURL).cookie("asynccode_session"))
            let taskID = try await e2e.comment("/asynccode fix it", on: e2e.issue())
            try await e2e.waitFor(task: taskID, status: "completed")
            let url = e2e.db.url
            @Sendable func write(half: Int) async throws {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for writer in 0..<4 {
                        group.addTask {
                            let connection = try await PostgresConnection.connect(
                                configuration: url.connectionConfiguration(), id: 10 + writer, logger: Logger(label: "writer"))
                            for batch in 0..<14 {
                                // 12 batches of 100 and one of 50 per writer and half; a 14th is rolled back (ids that
                                // never commit).
                                let base = half * 5000 + writer * 1250 + batch * 100
                                let (count, prefix) = batch == 12 ? (50, "n-") : batch == 13 ? (30, "rolled-back-") : (100, "n-")
                                try await connection.query("BEGIN", logger: Logger(label: "writer"))
                                try await connection.query("""
                                    INSERT INTO task_events (task_id, kind, step, detail)
                                    SELECT \(taskID), 'task.step', 'load', \(prefix) || g FROM generate_series(\(base + 1), \(base + count)) g
                                    """, logger: Logger(label: "writer"))
                                try await connection.query(batch == 13 ? "ROLLBACK" : "COMMIT", logger: Logger(label: "writer"))
                            }
                            try await connection.close()
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let start = try await e2e.db.scalar("SELECT max(id) FROM task_events", as: Int64.self) ?? 0
            let expected = Set((1...10_000).map { "n-\($0)" })
            let (whole, firstPart, resumeAt) = try await EventStream.with(publicURL + "/api/events?after=\(start)", cookie: alice) { whole in
                let (firstPart, resumeAt) = try await EventStream.with(publicURL + "/api/events?after=\(start)", cookie: alice) { part in
                    try await write(half: 0)
                    try await eventually("the first half arrives") { part.events.filter { $0.payload["step"] as? String == "load" }.count == 5000 }
                    return (part.events, part.lastID!)
                }
                let terminated = try await e2e.db.scalar("""
                    SELECT count(pg_terminate_backend(pid))::int8 FROM pg_stat_activity
                    WHERE datname = current_database() AND query ILIKE 'LISTEN%asynccode_events%'
                    """, as: Int64.self)
                #expect((terminated ?? 0) >= 1)
                try await write(half: 1)
                try await eventually("the second half arrives", timeout: .seconds(60)) {
                    whole.events.filter { $0.payload["step"] as? String == "load" }.count >= 10_000
                }
                return (whole.events, firstPart, resumeAt)
            }
            let loads = whole.filter { $0.payload["step"] as? String == "load" }
            #expect(loads.count == 10_000)
            #expect(Set(loads.compactMap { $0.payload["detail"] as? String }) == expected)
            let ids = whole.compactMap(\.id)
            #expect(ids == ids.sorted() && Set(ids).count == ids.count)
            let rest = try await EventStream.with(publicURL + "/api/events", cookie: alice, lastEventID: resumeAt) { stream in
                try await eventually("the resumed stream catches up") {
                    stream.events.filter { $0.payload["step"] as? String == "load" }.count >= 5000
                }
                return stream.events
            }
            let before = firstPart.filter { $0.payload["step"] as? String == "load" }.compactMap { $0.payload["detail"] as? String }
            let after = rest.filter { $0.payload["step"] as? String == "load" }.compactMap { $0.payload["detail"] as? String }
            #expect(before.count + after.count == 10_000)
            #expect(Set(before).union(after) == expected)
            #expect(rest.compactMap(\.id).allSatisfy { $0 > resumeAt })
        }
    }
}
