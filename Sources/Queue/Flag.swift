import Synchronization

/// A flag one task sets and others read.
public final class Flag: Sendable {
    public init() {}
    private let value = Mutex(false)

    public func set() { value.withLock { $0 = true } }

    public var isSet: Bool { value.withLock { $0 } }
}
