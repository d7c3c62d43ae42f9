extension Duration {
    /// The duration in seconds, fractions included (for SQL intervals and arithmetic).
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
