import Foundation
import GitHubSimulator
import Queue
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `asynccode worker` processes: one is killed with SIGKILL mid-task, another takes the task back.
@Suite(.serialized, .timeLimit(.minutes(10))) struct WorkerCrashTests {
    static let binary = TestEnvironment.packageRoot.appendingPathComponent(".build/debug/asynccode").path

    /// Starts `asynccode worker` against the end-to-end setup.
    func startWorker(_ e2e: EndToEnd, log: String, workers: Int = 1, leaseSeconds: Int = 3,
                     environment extra: [String: String] = [:]) throws -> Process {
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
            "ASYNCCODE_LEASE_SECONDS": String(leaseSeconds),
            "ASYNCCODE_RETRY_BASE_SECONDS": "1",
            "ASYNCCODE_SHUTDOWN_GRACE_SECONDS": "5",
            "ASYNCCODE_WORKSPACE_DIR": e2e.workspaceDirectory,
            "ASYNCCODE_MIGRATIONS_DIR": TestEnvironment.migrationsDirectory.path,
            "LOG_LEVEL": "info",
        ].merging(extra) { $1 }
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    @Test func aWorkerProcessServesItsOwnMetrics() async throws {
        try await EndToEnd.with(workers: 0) { e2e in
            let issue = e2e.issue()
            let taskID = try await e2e.comment("/asynccode fix it", on: issue)
            let log = e2e.stateDirectory + "/metrics-worker.log"
            let worker = try startWorker(e2e, log: log, environment: ["ASYNCCODE_WORKER_METRICS_PORT": "0"])
            defer { if worker.isRunning { kill(worker.processIdentifier, SIGKILL) } }
            var port: Int?
            do {
                try await eventually("the worker says where its metrics are", timeout: .seconds(60)) {
                    let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                    guard let line = text.split(separator: "\n").first(where: { $0.contains("serving metrics") }),
                          let range = line.range(of: #"http\.port[=:] ?[0-9]+"#, options: .regularExpression) else { return false }
                    port = Int(line[range].drop { !$0.isNumber })
                    return port != nil
                }
            } catch {
                // What the worker said instead, for whoever reads the failure.
                print("metrics worker (running: \(worker.isRunning)) logged:\n" + ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "nothing"))
                throw error
            }
            try await e2e.waitFor(task: taskID, status: "completed")
            var text = ""
            try await eventually("the worker's metrics count the task") {
                text = (try? await e2e.metrics(port: port!)) ?? ""
                return e2e.sample(#"asynccode_tasks_total{status="completed",kind="code""#, in: text) == 1
            }
            #expect(e2e.sample(#"asynccode_agent_exits_total{agent="edit",code="0"}"#, in: text) == 1)
            #expect(e2e.sample(#"asynccode_github_requests_total{route="POST /repos/{owner}/{repo}/pulls",status="201"}"#, in: text) == 1)
            #expect(e2e.sample("asynccode_database_up", in: text) == 1)
            kill(worker.processIdentifier, SIGTERM)
            try await eventually("the worker stops", timeout: .seconds(30)) { !worker.isRunning }
            #expect(worker.terminationStatus == 0)
        }
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
            try Data().write(to: URL(fileURLWithPath: e2e.stateDirectory + "/release"))

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

            try Data().write(to: URL(fileURLWithPath: e2e.stateDirectory + "/release"))
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

    /// Where a worker is killed: while cloning, while the agent runs, after the push (the pull request
    /// being opened), after the pull request (the review being requested).
    enum KillPoint: String, CaseIterable { case cloning, agentRunning, afterPush, afterPullRequest }

    @Test func sigkillAtEachStepTwentyTimesEndsEveryTaskOnceWithOnePullRequest() async throws {
        try await EndToEnd.with(workers: 0) { e2e in
            let release = e2e.stateDirectory + "/release"
            var worker = try startWorker(e2e, log: e2e.stateDirectory + "/kill-0.log", leaseSeconds: 2)
            var found: [KillPoint: Int] = [:]
            var recoveries: [Double] = []
            for round in 0..<20 {
                let point = KillPoint.allCases[round % KillPoint.allCases.count]
                let issue = e2e.issue("Kill \(round) at \(point.rawValue)")
                // Hold the request that follows the step, so the kill lands after the step and before the next.
                func inFlight(_ method: String, _ suffix: String) -> Bool {
                    e2e.sim.requests.contains { $0.method == method && $0.path.hasSuffix(suffix) && $0.status == 0 }
                }
                switch point {
                case .cloning: e2e.sim.injectDelay(.seconds(3), method: "POST", path: "acme/widgets.git/git-upload-pack")
                case .agentRunning: try? FileManager.default.removeItem(atPath: release)
                case .afterPush: e2e.sim.injectDelay(.seconds(3), method: "POST", path: "repos/acme/widgets/pulls")
                case .afterPullRequest: e2e.sim.injectDelay(.seconds(3), method: "POST", path: "repos/acme/widgets/pulls/*/requested_reviewers")
                }
                let agent = point == .agentRunning ? "--agent once " : ""
                let roundStart = ContinuousClock.now
                let task = try await e2e.comment("/asynccode \(agent)fix kill \(round)", on: issue)
                try await eventually("round \(round) reaches \(point.rawValue)", timeout: .seconds(60), interval: .milliseconds(20)) {
                    switch point {
                    case .cloning: return inFlight("POST", "/git-upload-pack")
                    case .agentRunning: return try await TestSupport.run(["pgrep", "-f", "sleep 3142"]).status == 0
                    case .afterPush: return inFlight("POST", "/repos/acme/widgets/pulls")
                    case .afterPullRequest: return inFlight("POST", "/requested_reviewers")
                    }
                }
                let reached = ContinuousClock.now - roundStart
                kill(worker.processIdentifier, SIGKILL)
                try await eventually("worker \(round) is gone") { !worker.isRunning }
                found[point, default: 0] += 1
                try Data().write(to: URL(fileURLWithPath: release))
                e2e.sim.clearInjectedFailures()
                // The next process takes the task back when its lease runs out, finishes it, and is the next victim.
                worker = try startWorker(e2e, log: e2e.stateDirectory + "/kill-\(round + 1).log", leaseSeconds: 2)
                try await e2e.waitFor(task: task, status: "completed", timeout: .seconds(90))
                recoveries.append((ContinuousClock.now - roundStart - reached).inSeconds)
                let pulls = e2e.sim.pullRequests(repositoryID: e2e.repositoryID).filter { $0.body?.contains("Closes #\(issue)\n") == true }
                #expect(pulls.count == 1, "round \(round) (\(point.rawValue)): \(pulls.count) pull requests")
                let comments = e2e.botComments(on: issue)
                #expect(comments.count == 1, "round \(round) (\(point.rawValue)): \(comments.count) progress comments")
                #expect(comments.first?.body.contains("✅ **Completed**") == true, "round \(round) (\(point.rawValue))")
                #expect(try await e2e.db.scalar("SELECT attempts FROM tasks WHERE id = \(task)", as: Int32.self) ?? 0 >= 2)
            }
            worker.terminate()
            try await eventually("the last worker stops", timeout: .seconds(30)) { !worker.isRunning }
            #expect(try await e2e.db.count("tasks WHERE status <> 'completed'") == 0)
            print("SIGKILL: \(found.values.reduce(0, +)) kills (\(KillPoint.allCases.map { "\($0.rawValue) \(found[$0] ?? 0)" }.joined(separator: ", "))); every task completed once, one pull request and one progress comment each; kill to completed: mean \(String(format: "%.1f", recoveries.reduce(0, +) / Double(max(recoveries.count, 1)))) s, max \(String(format: "%.1f", recoveries.max() ?? 0)) s (lease 2 s)")
        }
    }
}
