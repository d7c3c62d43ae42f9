import Foundation
import Yams

/// The parts of the `ASYNCCODE_CONFIG` YAML file the intake reads.
struct FileSettings: Decodable {
    /// The label that starts work on an issue (default `asynccode`).
    var triggerLabel: String?
    /// Whether commits are made through GitHub's API (signed, Verified) where a repository does not say
    /// (`signedCommits` in `.github/asynccode.yml`); default `false`.
    var signedCommits: Bool?

    static func load(path: String?) throws(ConfigurationError) -> FileSettings {
        guard let path else { return FileSettings() }
        do {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return FileSettings() }
            return try YAMLDecoder().decode(FileSettings.self, from: text)
        } catch let error as YamlError {
            throw ConfigurationError(setting: "ASYNCCODE_CONFIG", problem: "is not valid YAML: \(error)")
        } catch {
            throw ConfigurationError(setting: "ASYNCCODE_CONFIG", problem: "cannot be read: \(error)")
        }
    }
}
