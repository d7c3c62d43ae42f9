import Testing

@Test func gitHubModuleBuilds() { #expect(Bool(true)) }
