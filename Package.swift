// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "asynccode",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "asynccode", targets: ["asynccode"]),
        .library(name: "GitHubSimulator", targets: ["GitHubSimulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // System OpenSSL (libssl-dev): HMAC-SHA256, SHA-256, RS256.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "OpenSSLCrypto", dependencies: ["COpenSSL"]),
        .target(name: "Models"),
        .target(name: "Commands", dependencies: ["Models"]),
        .target(name: "RepositoryConfiguration", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "Intake", dependencies: ["Models", "Commands", "OpenSSLCrypto"]),
        .target(name: "Database", dependencies: [
            "OpenSSLCrypto",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Queue", dependencies: [
            "Models", "Database", "OpenSSLCrypto",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Credits, the models' prices, usage limits and analytics: who pays and how much may run.
        .target(name: "Accounting", dependencies: [
            "Database",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "GitHub", dependencies: [
            "OpenSSLCrypto",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        .target(name: "GitHubSimulator", dependencies: [
            "OpenSSLCrypto",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .target(name: "Executor", dependencies: [
            "Models", "Commands", "Queue", "GitHub", "Accounting", "RepositoryConfiguration", "Kubernetes",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Subprocess", package: "swift-subprocess"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .target(name: "Recovery", dependencies: [
            "GitHub", "Database",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Agents as Kubernetes Jobs: the API calls the bot needs, the cluster's endpoint, the Job of a task attempt.
        .target(name: "Kubernetes", dependencies: [
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .target(name: "SignIn", dependencies: [
            "OpenSSLCrypto", "Database",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "AsyncCodeApp", dependencies: [
            "Models", "Commands", "Intake", "Database", "Queue", "GitHub", "Executor", "Recovery", "OpenSSLCrypto", "Accounting", "SignIn", "Kubernetes",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Mustache", package: "swift-mustache"),
        ]),
        // `asynccode demo`: the whole pipeline against the GitHub simulator.
        .target(name: "Demo", dependencies: [
            "AsyncCodeApp", "Database", "Executor", "Queue", "GitHubSimulator", "OpenSSLCrypto",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "asynccode", dependencies: [
            "AsyncCodeApp", "Demo", "Database", "Accounting",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Benchmarks that print figures (not tests): `asynccode-bench queue`, `asynccode-bench e2e`.
        .executableTarget(name: "asynccode-bench", dependencies: [
            "Queue", "Database", "AsyncCodeApp", "Executor", "GitHubSimulator", "GitHub", "Accounting", "Demo", "OpenSSLCrypto",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Shared by the test targets: a fresh migrated database per test, fixtures.
        .target(name: "TestSupport", dependencies: [
            "Database",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], path: "Tests/TestSupport"),
        .testTarget(name: "OpenSSLCryptoTests", dependencies: ["OpenSSLCrypto", "TestSupport"]),
        .testTarget(name: "CommandsTests", dependencies: [
            "Commands", "Models", .product(name: "PropertyBased", package: "swift-property-based"),
        ]),
        .testTarget(name: "IntakeTests", dependencies: ["Intake", "TestSupport"]),
        .testTarget(name: "DatabaseTests", dependencies: ["Database", "TestSupport"]),
        .testTarget(name: "RepositoryConfigurationTests", dependencies: ["RepositoryConfiguration"]),
        .testTarget(name: "AccountingTests", dependencies: ["Accounting", "TestSupport"]),
        .testTarget(name: "SignInTests", dependencies: ["SignIn", "OpenSSLCrypto", "Database", "TestSupport"]),
        .testTarget(name: "ExecutorTests", dependencies: ["Executor", "Models", "GitHub", "Accounting", "Commands", "Queue", "TestSupport", "Kubernetes"]),
        .testTarget(name: "QueueTests", dependencies: [
            "Queue", "Models", "Database", "TestSupport", .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .testTarget(name: "AsyncCodeAppTests", dependencies: [
            "AsyncCodeApp", "Executor", "RepositoryConfiguration", "TestSupport", "Intake", "Queue", "Database", "OpenSSLCrypto",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        // Checks recorded requests against GitHub's OpenAPI description (GitHub and end-to-end tests).
        .target(name: "GitHubConformance", dependencies: ["GitHubSimulator"], path: "Tests/GitHubConformance"),
        // Holds the bot's own API responses to docs/api/openapi.yaml (end-to-end tests).
        .target(name: "APIConformance", dependencies: [.product(name: "Yams", package: "Yams")], path: "Tests/APIConformance"),
        .testTarget(name: "EndToEndTests", dependencies: [
            "AsyncCodeApp", "Database", "Executor", "GitHub", "GitHubSimulator", "GitHubConformance", "Queue", "Recovery", "TestSupport",
            "OpenSSLCrypto", "SignIn", "APIConformance", "KubernetesSimulator",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Subprocess", package: "swift-subprocess"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // A Kubernetes API stand-in holding what it is sent to Kubernetes' own schema (the agent Jobs' tests).
        .target(name: "KubernetesSimulator", dependencies: [
            "APIConformance",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Subprocess", package: "swift-subprocess"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], path: "Tests/KubernetesSimulator"),
        .testTarget(name: "KubernetesTests", dependencies: [
            "Kubernetes", "KubernetesSimulator", "APIConformance", "TestSupport", "Executor",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .testTarget(name: "GitHubTests", dependencies: [
            "GitHub", "GitHubSimulator", "GitHubConformance", "TestSupport", "OpenSSLCrypto",
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
