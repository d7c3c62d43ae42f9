import Foundation
import GitHubSimulator
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `asynccode worker` processes: one is killed with SIGKILL mid-task, another takes the task back.
@Suite(.serialized) struct WorkerCrashTests {
    static let binary = TestEnvironment.packageRoot.appendingPathComponent(".build/debug/asynccode").path

    /// Starts `asynccode worker` against the end-to-end setup.
    func startWorker(_ e2e: EndToEnd, log: String, workers: Int = 1) throws -> Process {
        let url = e2e.db.url
        let password = (url.password ?? "").addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["worker"]
        process.currentDirectoryURL = URL(fileURLWithPath: e2e.stateDirectory)
        process.environment = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "DATABASE_URL": "postgres://\(url.username):\(password)@\(url.host):\(url.port)/\(url.database)",
            "GITHUB_APP_ID": String(e2e.setup.app.id),
            "GITHUB_APP_PRIVATE_KEY": e2e.setup.app.privateKeyPEM,
            "GITHUB_API_URL": e2e.sim.apiURL,
            "ASYNCCODE_CONFIG": e2e.configPath,
            "ASYNCCODE_WORKERS": String(workers),
            "ASYNCCODE_LEASE_SECONDS": "3",
            "ASYNCCODE_RETRY_BASE_SECONDS": "1",
            "ASYNCCODE_SHUTDOWN_GRACE_SECONDS": "5",
            "ASYNCCODE_WORKSPACE_DIR": e2e.workspaceDirectory,
            "ASYNCCODE_MIGRATIONS_DIR": TestEnvironment.migrationsDirectory.path,
            "LOG_LEVEL": "info",
        ]
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    @Test func killedWorkersTaskIsReclaimedAndEndsWithOnePullRequest() async throws {
        try await EndToEnd.with(workers: 0) { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode --agent once fix it", on: issue)
            let first = try startWorker(e2e, log: e2e.stateDirectory + "/worker1.log")
            try await eventually("the first worker runs the agent", timeout: .seconds(60)) {
                try await TestSupport.run(["pgrep", "-f", "sleep 3142"]).status == 0
            }
            #expect(try await e2e.string("SELECT status::text FROM tasks WHERE id = \(taskID)") == "running")

            kill(first.processIdentifier, SIGKILL)
            try await eventually("the first worker is gone") { !first.isRunning }
            // The jail dies with its worker (--die-with-parent): no agent is left behind.
            try await eventually("the orphaned agent is gone", timeout: .seconds(10)) {
                try await TestSupport.run(["pgrep", "-f", "sleep 3142"]).status != 0
            }
            FileManager.default.createFile(atPath: e2e.stateDirectory + "/release", contents: Data())

            let second = try startWorker(e2e, log: e2e.stateDirectory + "/worker2.log")
            try await e2e.waitFor(task: taskID, status: "completed", timeout: .seconds(90))
            #expect(try await e2e.db.scalar("SELECT attempts FROM tasks WHERE id = \(taskID)", as: Int32.self) == 2)
            let pulls = e2e.sim.pullRequests(repositoryID: e2e.repositoryID)
            #expect(pulls.count == 1)
            let comments = e2e.botComments(on: issue)
            #expect(comments.count == 1)
            #expect(comments.first?.body.contains("✅ **Completed**") == true)
            #expect(comments.first?.body.contains("/pull/\(pulls.first?.number ?? -1)") == true)
            #expect(try await e2e.file("README.md", on: pulls.first?.head ?? "none")?.contains("edited after a restart") == true)

            // A clean stop (SIGTERM) leaves nothing running.
            second.terminate()
            try await eventually("the second worker stops", timeout: .seconds(30)) { !second.isRunning }
            #expect(second.terminationStatus == 0)
            #expect(try await e2e.db.count("tasks WHERE status = 'running'") == 0)
        }
    }

    @Test func sigtermWithTenTasksRunningLeavesNoneRunningAndASecondProcessFinishesThem() async throws {
        try await EndToEnd.with(workers: 0) { e2e in
            var tasks: [(issue: Int, task: Int64)] = []
            for index in 0..<10 {
                let issue = e2e.issue("Task \(index)")
                tasks.append((issue, try await e2e.comment("/asynccode --agent once fix \(index)", on: issue)))
            }
            let first = try startWorker(e2e, log: e2e.stateDirectory + "/stop1.log", workers: 10)
            try await eventually("ten agents run at once", timeout: .seconds(120)) {
                try await e2e.db.count("tasks WHERE status = 'running'") == 10
            }
            first.terminate()
            try await eventually("the first process stops within its grace period", timeout: .seconds(60)) { !first.isRunning }
            #expect(first.terminationStatus == 0)
            #expect(try await e2e.db.count("tasks WHERE status = 'running'") == 0)
            #expect(try await e2e.db.count("tasks WHERE status = 'pending'") == 10)
            try await eventually("no agent is left behind", timeout: .seconds(10)) {
                try await TestSupport.run(["pgrep", "-f", "sleep 3142"]).status != 0
            }

            FileManager.default.createFile(atPath: e2e.stateDirectory + "/release", contents: Data())
            let second = try startWorker(e2e, log: e2e.stateDirectory + "/stop2.log", workers: 4)
            for (_, task) in tasks { try await e2e.waitFor(task: task, status: "completed", timeout: .seconds(180)) }
            second.terminate()
            try await eventually("the second process stops", timeout: .seconds(30)) { !second.isRunning }
            // Each task: one pull request, one progress comment, ending completed.
            let pulls = e2e.sim.pullRequests(repositoryID: e2e.repositoryID)
            #expect(pulls.count == 10)
            for (issue, _) in tasks {
                #expect(pulls.filter { $0.body?.contains("Closes #\(issue)\n") == true }.count == 1)
                let comments = e2e.botComments(on: issue)
                #expect(comments.count == 1)
                #expect(comments.first?.body.contains("✅ **Completed**") == true)
            }
            print("SIGTERM with 10 running: 10 released to pending by a clean stop, 10 completed by a second process, \(pulls.count) pull requests")
        }
    }
}
