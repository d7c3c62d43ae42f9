import Foundation

struct ProcessResult: Sendable {
    var status: Int32
    var stdout: [UInt8]
    var stderr: String
    var stdoutText: String { String(decoding: stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
}

struct SimulatorError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs a program with stdin/stdout/stderr in temporary files (no pipe deadlocks for big packs)
/// and waits for it without blocking a thread.
func runProcess(
    _ arguments: [String], environment: [String: String]? = nil, currentDirectory: String? = nil, stdin: [UInt8]? = nil
) async throws -> ProcessResult {
    let fileManager = FileManager.default
    let directory = fileManager.temporaryDirectory.appendingPathComponent("ghsim-proc-\(UUID().uuidString)")
    try fileManager.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? fileManager.removeItem(at: directory) }
    let inPath = directory.appendingPathComponent("in").path
    let outPath = directory.appendingPathComponent("out").path
    let errPath = directory.appendingPathComponent("err").path
    _ = fileManager.createFile(atPath: inPath, contents: Data(stdin ?? []))
    _ = fileManager.createFile(atPath: outPath, contents: nil)
    _ = fileManager.createFile(atPath: errPath, contents: nil)
    guard let input = FileHandle(forReadingAtPath: inPath), let output = FileHandle(forWritingAtPath: outPath),
          let errors = FileHandle(forWritingAtPath: errPath) else {
        throw SimulatorError("cannot open temporary files for \(arguments.first ?? "process")")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let environment { process.environment = environment }
    if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    process.standardInput = input
    process.standardOutput = output
    process.standardError = errors
    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { finished in continuation.resume(returning: finished.terminationStatus) }
        do {
            try process.run()
        } catch {
            process.terminationHandler = nil
            continuation.resume(throwing: error)
        }
    }
    try? input.close()
    try? output.close()
    try? errors.close()
    let stdout = [UInt8](fileManager.contents(atPath: outPath) ?? Data())
    let stderr = String(decoding: fileManager.contents(atPath: errPath) ?? Data(), as: UTF8.self)
    return ProcessResult(status: status, stdout: stdout, stderr: stderr)
}

/// Runs git and returns its trimmed stdout, throwing with stderr on failure.
@discardableResult
func git(_ arguments: [String], environment: [String: String]? = nil, currentDirectory: String? = nil) async throws -> String {
    var env = environment ?? sanitizedGitEnvironment()
    env["GIT_AUTHOR_NAME"] = env["GIT_AUTHOR_NAME"] ?? "GitHub Simulator"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_AUTHOR_EMAIL"] ?? "simulator@localhost"
    env["GIT_COMMITTER_NAME"] = env["GIT_COMMITTER_NAME"] ?? "GitHub Simulator"
    env["GIT_COMMITTER_EMAIL"] = env["GIT_COMMITTER_EMAIL"] ?? "simulator@localhost"
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_TERMINAL_PROMPT"] = "0"
    let result = try await runProcess(["git"] + arguments, environment: env, currentDirectory: currentDirectory)
    guard result.status == 0 else {
        throw SimulatorError("git \(arguments.joined(separator: " ")) failed (\(result.status)): \(result.stderr)")
    }
    return result.stdoutText
}

/// The process environment without variables that would point git at another repository or
/// pull in the user's configuration (e.g. when tests run inside a git hook).
func sanitizedGitEnvironment() -> [String: String] {
    var environment = ProcessInfo.processInfo.environment
    for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                 "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS",
                 "GIT_CONFIG_COUNT"] {
        environment[name] = nil
    }
    environment["GIT_CONFIG_GLOBAL"] = "/dev/null"
    environment["GIT_CONFIG_NOSYSTEM"] = "1"
    return environment
}
