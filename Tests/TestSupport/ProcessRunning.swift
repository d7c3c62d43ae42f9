import Foundation

/// Runs a command without blocking a thread, returning status and combined output.
@discardableResult
public func run(_ arguments: [String], currentDirectory: String? = nil, environment: [String: String]? = nil) async throws -> (status: Int32, output: String) {
    let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("asynccode-run-\(UUID().uuidString)").path
    _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    guard let output = FileHandle(forWritingAtPath: outputPath) else { throw CancellationError() }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    if let environment { process.environment = environment }
    process.standardOutput = output
    process.standardError = output
    process.standardInput = FileHandle.nullDevice
    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
        do { try process.run() } catch {
            process.terminationHandler = nil
            continuation.resume(throwing: error)
        }
    }
    try? output.close()
    return (status, String(decoding: FileManager.default.contents(atPath: outputPath) ?? Data(), as: UTF8.self))
}
