import GitHub
import Models
import Queue
import RepositoryConfiguration

/// Step 0 for an automatic fix of failed CI (a task of source `ci_failure`), before anything is said on GitHub:
/// decides whether the fix runs, and gathers what failed.
///
/// It ends the task quietly (``QuietEnd``: no comment) when the repository does not ask for such fixes
/// (`fixFailingCI`), the pull request is closed or its head moved on since the failure, or nothing but
/// asynccode's own check run fails any more. Past `maxAutomaticFixes` it ends the task too, after one comment
/// on the pull request (once per pull request) that says how to ask for more. Otherwise it lists the failing
/// check runs of the commit and, for GitHub Actions jobs, the end of their logs (``TaskRun/ciFix``).
struct TriageCIFailure<API: GitHubAPI>: Sendable {
    let api: API
    let store: TaskStore
    let configs: RepositoryConfigLoader<API>
    let warnings: PermissionWarnings

    /// The name of asynccode's own check run (``ReportCheckRun``), never a reason for a fix.
    static var ownCheckRunName: String { ReportCheckRun<API>.name }
    /// The most failing check runs described to the agent, and the most logs read.
    static var maxFailing: Int { 10 }
    static var maxLogs: Int { 5 }

    func callAsFunction(_ run: inout TaskRun) async throws {
        let record = run.record
        guard let sha = record.ciHeadSHA else { return }
        let pull = try await api.pullRequest(number: Int(record.issueNumber), in: run.repo)
        guard pull.state == "open" else { throw QuietEnd(reason: "the pull request is \(pull.state)") }
        guard pull.head.sha == sha else {
            throw QuietEnd(reason: "the pull request moved on to \(pull.head.sha.prefix(7)) since CI failed on \(sha.prefix(7))")
        }
        let branch = record.defaultBranch ?? pull.base.ref
        let config = try await configs.load(repositoryID: record.repositoryID, repo: run.repo, branch: branch).configuration
        guard config.enabled, config.fixFailingCI else {
            throw QuietEnd(reason: "`fixFailingCI` is not on in `\(RepositoryConfiguration.path)`")
        }
        let earlier = try await store.automaticFixesStarted(repositoryID: record.repositoryID, pullNumber: record.issueNumber,
                                                            excluding: record.id)
        guard earlier < config.maxAutomaticFixes else {
            await noticeLimit(run, limit: config.maxAutomaticFixes)
            throw QuietEnd(reason: "the pull request had its \(config.maxAutomaticFixes) automatic fixes (`maxAutomaticFixes`)")
        }
        var fix = CIFix(headSHA: sha, number: earlier + 1, limit: config.maxAutomaticFixes, failing: [])
        do {
            let failing = try await api.checkRuns(for: sha, in: run.repo).filter { $0.failed && $0.name != Self.ownCheckRunName }
            guard !failing.isEmpty else {
                throw QuietEnd(reason: "no check run of \(sha.prefix(7)) fails any more, asynccode's own aside")
            }
            fix.failing = await describe(Array(failing.prefix(Self.maxFailing)), run: run)
        } catch let end as QuietEnd {
            throw end
        } catch {
            // Without `checks: read` the fix still runs, on what the event said.
            await warnings.report(error, permission: "checks", doing: "list the check runs of \(sha.prefix(7))",
                                  installationID: run.repo.installationID, logger: run.logger)
            fix.unreadable = "asynccode could not read the check runs (\(PermissionWarnings.isMissingPermission(error) ? "the `checks` permission is not granted" : "GitHub did not answer"))"
        }
        run.ciFix = fix
    }

    /// Returns the failing runs as the prompt shows them: GitHub Actions jobs with the end of their logs, other
    /// Apps' runs with what they wrote.
    private func describe(_ failing: [CheckRun], run: TaskRun) async -> [PromptBuilder.FailingCheck] {
        var described: [PromptBuilder.FailingCheck] = []
        var logsRead = 0
        for check in failing {
            var output = [check.output?.title, check.output?.summary, check.output?.text].compactMap { $0 }.filter { !$0.isEmpty }
                .joined(separator: "\n\n")
            if check.app?.slug == "github-actions", logsRead < Self.maxLogs {
                logsRead += 1
                do {
                    output = try await api.jobLogTail(jobID: check.id, in: run.repo)
                } catch {
                    await warnings.report(error, permission: "actions", doing: "read the log of job \(check.id)",
                                          installationID: run.repo.installationID, logger: run.logger)
                    output = "(the job's log could not be read)"
                }
            }
            let source = check.app?.slug.map { "check run by \($0)" } ?? "check run"
            described.append(PromptBuilder.FailingCheck(
                name: check.name, command: source, status: check.conclusion ?? "failure",
                output: SecretRedactor.redact(output.isEmpty ? "(no output)" : output)))
        }
        return described
    }

    /// Posts the pull request's one comment saying its automatic fixes are used up.
    private func noticeLimit(_ run: TaskRun, limit: Int) async {
        let record = run.record
        guard (try? await store.claimAutomaticFixLimitNotice(repositoryID: record.repositoryID, pullNumber: record.issueNumber)) == true
        else { return }
        let body = Self.limitComment(limit: limit, headSHA: record.ciHeadSHA ?? "")
        do {
            _ = try await api.createComment(in: run.repo, issueNumber: Int(record.issueNumber), body: body)
        } catch {
            run.logger.warning("cannot say that the automatic fixes are used up", metadata: ["error": "\(error)"])
            try? await store.releaseAutomaticFixLimitNotice(repositoryID: record.repositoryID, pullNumber: record.issueNumber)
        }
    }

    /// Returns the comment that says a pull request's automatic fixes are used up.
    static func limitComment(limit: Int, headSHA: String) -> String {
        """
        ⏹️ **asynccode**: CI failed again (on \(headSHA.prefix(7))), and this pull request has had its \(limit) automatic \
        fix\(limit == 1 ? "" : "es") (`maxAutomaticFixes` in `\(RepositoryConfiguration.path)`), so no other starts by itself.

        To ask for another, comment `/asynccode fix the failing tests` (or say what to change).
        """
    }
}
