/// A problem with a repository's `.github/asynccode.yml`, worded for the maintainers who wrote the file.
public struct RepositoryConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The 1-based line of the offending key or value, when known.
    public var line: Int?
    /// One sentence saying what is wrong, such as "`draft` must be true or false".
    public var problem: String

    /// Creates an error for `problem`, found at `line` when known.
    public init(line: Int? = nil, problem: String) {
        self.line = line
        self.problem = problem
    }

    /// Returns the problem prefixed with its line, such as "line 3: `draft` must be true or false".
    public var description: String {
        guard let line else { return problem }
        return "line \(line): \(problem)"
    }
}
