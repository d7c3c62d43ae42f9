import Database
import Foundation
import Logging
import NIOCore
import OpenSSLCrypto
import PostgresNIO

/// What an agent's pod downloads and uploads, per task attempt, and the tokens it does so with (issue 22): any of
/// the bot's processes can answer the pod, and a token opens one task attempt's files for one direction only.
public struct AgentJobStore: Sendable {
    /// `fetch` downloads the bundle and the prompt; `report` uploads the patch and the output.
    public enum Scope: String, Sendable, CaseIterable {
        case fetch, report
    }

    public enum File: String, Sendable, CaseIterable {
        case bundle, prompt, patch, output

        /// Which token opens it.
        public var scope: Scope { self == .bundle || self == .prompt ? .fetch : .report }
    }

    let client: BoundedClient
    let logger: Logger

    public init(client: BoundedClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Issues the attempt's two tokens, valid for `lifetime`; only their SHA-256 is stored.
    public func issueTokens(taskID: Int64, attempt: Int, lifetime: Duration) async throws -> (fetch: String, report: String) {
        let fetch = Base64URL.encode(try AESGCM.randomBytes(32))
        let report = Base64URL.encode(try AESGCM.randomBytes(32))
        try await client.query("""
            INSERT INTO agent_job_tokens (token_hash, task_id, attempt, scope, expires_at)
            VALUES (\(ByteBuffer(bytes: SHA256Digest.hash(Array(fetch.utf8)))), \(taskID), \(attempt), 'fetch',
                    now() + make_interval(secs => \(lifetime.inSeconds))),
                   (\(ByteBuffer(bytes: SHA256Digest.hash(Array(report.utf8)))), \(taskID), \(attempt), 'report',
                    now() + make_interval(secs => \(lifetime.inSeconds)))
            """, logger: logger)
        return (fetch, report)
    }

    /// Whether `token` opens `scope` for this task attempt now.
    public func authorizes(_ token: String, scope: Scope, taskID: Int64, attempt: Int) async throws -> Bool {
        guard token.utf8.count <= 256 else { return false }
        let rows = try await client.query("""
            SELECT 1 FROM agent_job_tokens
            WHERE token_hash = \(ByteBuffer(bytes: SHA256Digest.hash(Array(token.utf8)))) AND task_id = \(taskID)
              AND attempt = \(attempt) AND scope = \(scope.rawValue) AND expires_at > now()
            """, logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// Stores a file of the attempt (replacing one of that name); returns its SHA-256 (hex).
    @discardableResult
    public func put(_ file: File, _ content: ByteBuffer, taskID: Int64, attempt: Int) async throws -> String {
        let digest = Hex.encode(SHA256Digest.hash(Array(content.readableBytesView)))
        try await client.query("""
            INSERT INTO agent_job_files (task_id, attempt, name, content, sha256) VALUES (\(taskID), \(attempt), \(file.rawValue), \(content), \(digest))
            ON CONFLICT (task_id, attempt, name) DO UPDATE SET content = EXCLUDED.content, sha256 = EXCLUDED.sha256, created_at = now()
            """, logger: logger)
        return digest
    }

    /// Returns a file of the attempt and its SHA-256, if stored.
    public func file(_ file: File, taskID: Int64, attempt: Int) async throws -> (content: ByteBuffer, sha256: String)? {
        let rows = try await client.query("""
            SELECT content, sha256 FROM agent_job_files WHERE task_id = \(taskID) AND attempt = \(attempt) AND name = \(file.rawValue)
            """, logger: logger)
        for try await (content, digest) in rows.decode((ByteBuffer, String).self) { return (content, digest) }
        return nil
    }

    /// Forgets the attempt's tokens and files (its Job ended and the bot has what it needs).
    public func forget(taskID: Int64, attempt: Int) async throws {
        try await client.query("DELETE FROM agent_job_tokens WHERE task_id = \(taskID) AND attempt = \(attempt)", logger: logger)
        try await client.query("DELETE FROM agent_job_files WHERE task_id = \(taskID) AND attempt = \(attempt)", logger: logger)
    }
}

/// The Jobs of a task's agent runs (`agent_jobs`): which one is open, so a worker taking the task over adopts it.
extension AgentJobStore {
    /// A Job the bot started and has not seen the end of.
    public struct OpenJob: Sendable, Hashable {
        public var attempt: Int
        public var namespace: String
        public var name: String
        /// The commit the pod was given.
        public var snapshot: String
    }

    /// Returns the task's open Job, if any.
    public func openJob(taskID: Int64) async throws -> OpenJob? {
        let rows = try await client.query("""
            SELECT attempt, namespace, name, snapshot FROM agent_jobs WHERE task_id = \(taskID) AND finished_at IS NULL
            """, logger: logger)
        for try await (attempt, namespace, name, snapshot) in rows.decode((Int, String, String, String).self) {
            return OpenJob(attempt: attempt, namespace: namespace, name: name, snapshot: snapshot)
        }
        return nil
    }

    /// Records a new Job of the task (the next attempt, named by `name(attempt)`); returns it.
    public func startJob(
        taskID: Int64, namespace: String, snapshot: String, name: @Sendable (Int) -> String
    ) async throws -> OpenJob {
        let rows = try await client.query("""
            SELECT coalesce(max(attempt), 0) + 1 FROM agent_jobs WHERE task_id = \(taskID)
            """, logger: logger)
        var attempt = 1
        for try await next in rows.decode(Int.self) { attempt = next }
        let job = OpenJob(attempt: attempt, namespace: namespace, name: name(attempt), snapshot: snapshot)
        try await client.query("""
            INSERT INTO agent_jobs (task_id, attempt, namespace, name, snapshot)
            VALUES (\(taskID), \(attempt), \(namespace), \(job.name), \(snapshot))
            """, logger: logger)
        return job
    }

    /// Marks the attempt's Job ended and forgets its tokens and files.
    public func finishJob(taskID: Int64, attempt: Int) async throws {
        try await client.query("""
            UPDATE agent_jobs SET finished_at = now() WHERE task_id = \(taskID) AND attempt = \(attempt) AND finished_at IS NULL
            """, logger: logger)
        try await forget(taskID: taskID, attempt: attempt)
    }
}
