// GitHubSimulator
