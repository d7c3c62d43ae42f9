import Executor
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A fresh folder with an executable shell script `agent.sh` holding `body`.
func agentScript(_ body: String) throws -> (folder: String, script: String) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("agent-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let script = folder + "/agent.sh"
    try ("#!/bin/sh\n" + body + "\n").write(toFile: script, atomically: true, encoding: .utf8)
    chmod(script, 0o755)
    return (folder, script)
}

func isAlive(_ pidFile: String) -> Bool {
    guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        return false
    }
    return kill(pid, 0) == 0
}

@Suite(.timeLimit(.minutes(10))) struct AgentRunnerTests {
    let runner = AgentRunner(outputLimit: 64 * 1024, killGrace: .seconds(1))

    @Test func runsWithThePromptOnStandardInput() async throws {
        let (folder, script) = try agentScript("""
            read line
            echo "edited by agent" >> README.md
            echo "summary: $line ($ASYNCCODE_TASK_KIND)"
            echo "a warning" >&2
            """)
        let result = try await runner.run(
            AgentCommand(name: "t", command: [script]), prompt: "fix readme\n", workingDirectory: folder,
            environment: AgentRunner.environment(for: AgentCommand(name: "t", command: [script]), home: folder,
                                                 task: ["ASYNCCODE_TASK_KIND": "code"]))
        #expect(result.ending == .exited(0))
        #expect(result.output == "summary: fix readme (code)\n")
        #expect(result.errorOutput == "a warning\n")
        #expect(try String(contentsOfFile: folder + "/README.md", encoding: .utf8) == "edited by agent\n")
    }

    @Test func failureKeepsTheExitCodeAndErrorOutput() async throws {
        let (folder, script) = try agentScript("echo 'model refused' >&2; exit 3")
        let result = try await runner.run(AgentCommand(name: "t", command: [script]), prompt: "", workingDirectory: folder,
                                          environment: ["PATH": "/usr/bin:/bin"])
        #expect(result.ending == .exited(3))
        #expect(result.errorOutput == "model refused\n")
        #expect(!result.succeeded)
    }

    @Test func timeoutStopsTheWholeProcessGroup() async throws {
        let (folder, script) = try agentScript("""
            sleep 300 &
            echo $! > child.pid
            trap '' TERM
            sleep 300
            """)
        let started = ContinuousClock.now
        let result = try await runner.run(
            AgentCommand(name: "t", command: [script], timeout: .milliseconds(500)), prompt: "",
            workingDirectory: folder, environment: ["PATH": "/usr/bin:/bin"])
        #expect(result.ending == .timedOut)
        // SIGTERM is ignored by the script: SIGKILL after the 1 s grace ends it.
        #expect(ContinuousClock.now - started < .seconds(30))
        let deadline = ContinuousClock.now + .seconds(10)
        while isAlive(folder + "/child.pid"), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(FileManager.default.fileExists(atPath: folder + "/child.pid"))
        #expect(!isAlive(folder + "/child.pid"))
    }

    @Test func cancellationStopsTheAgent() async throws {
        let (folder, script) = try agentScript("echo $$ > agent.pid; sleep 300")
        let runner = self.runner
        let task = Task {
            try await runner.run(AgentCommand(name: "t", command: [script]), prompt: "", workingDirectory: folder,
                                 environment: ["PATH": "/usr/bin:/bin"])
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while !FileManager.default.fileExists(atPath: folder + "/agent.pid"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let cancelled = ContinuousClock.now
        task.cancel()
        let result = try? await task.value
        #expect(result == nil || result?.ending == .cancelled || result?.ending == .signalled(15))
        // Far below the agent's 300 s sleep; loose because a busy parallel test run delays the teardown task.
        #expect(ContinuousClock.now - cancelled < .seconds(30))
        #expect(!isAlive(folder + "/agent.pid"))
    }

    @Test func environmentIsAnAllowList() async throws {
        let (folder, script) = try agentScript("env | sort")
        let agent = AgentCommand(name: "t", command: [script], environment: ["MODEL": "big"], passEnvironment: ["API_KEY"])
        let host = ["PATH": "/usr/bin:/bin", "API_KEY": "sk-pass", "GITHUB_WEBHOOK_SECRET": "whsecret",
                    "DATABASE_URL": "postgres://u:pw@h/d", "GITHUB_APP_PRIVATE_KEY": "-----BEGIN", "LANG": "C.UTF-8"]
        let environment = AgentRunner.environment(for: agent, home: folder + "/home", task: ["ASYNCCODE_TASK_ID": "7"], host: host)
        let result = try await runner.run(agent, prompt: "", workingDirectory: folder, environment: environment)
        let names = Set(result.output.split(separator: "\n").compactMap { $0.split(separator: "=").first.map(String.init) })
        #expect(names.isSuperset(of: ["PATH", "HOME", "LANG", "MODEL", "API_KEY", "ASYNCCODE_TASK_ID"]))
        for secret in ["GITHUB_WEBHOOK_SECRET", "DATABASE_URL", "GITHUB_APP_PRIVATE_KEY"] { #expect(!names.contains(secret)) }
        #expect(!result.output.contains("whsecret"))
        #expect(result.output.contains("HOME=\(folder)/home"))
    }

    @Test func outputIsCappedToItsTail() async throws {
        let (folder, script) = try agentScript("i=0; while [ $i -lt 20000 ]; do echo \"line $i of output\"; i=$((i+1)); done; echo END")
        let result = try await runner.run(AgentCommand(name: "t", command: [script]), prompt: "", workingDirectory: folder,
                                          environment: ["PATH": "/usr/bin:/bin"])
        #expect(result.ending == .exited(0))
        #expect(result.truncated)
        #expect(result.output.utf8.count <= 64 * 1024)
        #expect(result.output.hasSuffix("line 19999 of output\nEND\n"))
    }

    @Test func aMissingProgramIsAnError() async throws {
        await #expect(throws: (any Error).self) {
            try await runner.run(AgentCommand(name: "t", command: ["/nonexistent/agent"]), prompt: "", workingDirectory: "/tmp",
                                 environment: [:])
        }
    }
}
