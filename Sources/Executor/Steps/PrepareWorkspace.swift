import Models
import Queue

/// A task's workspace once prepared: the checkout the agent works in, and the token the bot's git uses.
struct PreparedWorkspace: Sendable {
    let git: GitWorkspace
    /// The installation token, narrowed to the repository (never given to the agent).
    let token: String
}

/// Step 6: gets an installation token, makes the workspace, clones into the bot's own git directory (never
/// shown in the jail; from the worker's ``RepositoryCache`` when there is one), creates the work branch and
/// gives the agent its copy of the repository; then runs the rest of the task in it and removes it on every way
/// out, whether or not the task was cancelled.
struct PrepareWorkspace<API: GitHubAPI>: Sendable {
    let api: API
    let settings: ExecutorSettings
    let progress: TaskProgress<API>

    func callAsFunction(
        _ run: inout TaskRun, plan: WorkPlan, then work: (inout TaskRun, PreparedWorkspace) async throws -> TaskOutcome
    ) async throws -> TaskOutcome {
        await progress.step(&run, "Getting an installation token for \(run.repo.fullName)")
        let token = try await api.installationToken(for: run.repo)
        let workspace: GitWorkspace
        do {
            workspace = try GitWorkspace.create(in: settings.workspaceRoot, taskID: run.record.id, caBundlePath: settings.caBundlePath)
        } catch {
            throw StepFailure(reason: "cannot create a workspace under \(settings.workspaceRoot)", retryable: true)
        }
        // Removed on every way out; the walk runs off the event loops.
        do {
            try await clone(&run, into: workspace, plan: plan, token: token)
            let outcome = try await work(&run, PreparedWorkspace(git: workspace, token: token))
            await workspace.remove()
            return outcome
        } catch {
            await workspace.remove()
            throw error
        }
    }

    private func clone(_ run: inout TaskRun, into workspace: GitWorkspace, plan: WorkPlan, token: String) async throws {
        let kind = run.record.kind
        await progress.step(&run, "Cloning `\(plan.cloneBranch)`")
        let cache = settings.repositoryCache
        let repositoryID = run.repo.id
        let fromReadyCheckout = try await cancellable(run.cancelRequested) { () async throws -> Bool in
            var ready = false
            if let cache {
                // From the warm mirror: only what changed since the last task on this repository is fetched.
                do {
                    ready = try await cache.prepare(workspace, repositoryID: repositoryID, url: plan.cloneURL, branch: plan.cloneBranch, token: token).ready
                } catch let error as GitError {
                    throw error
                } catch {
                    throw StepFailure(reason: "the repository cache failed: \(error)", retryable: true)
                }
            } else {
                try await workspace.clone(url: plan.cloneURL, branch: plan.cloneBranch, token: token)
            }
            if kind == .review, plan.baseBranch != plan.cloneBranch {
                try await workspace.fetch(url: plan.cloneURL, branch: plan.baseBranch, token: token)
            }
            return ready
        }
        if plan.pushes, !plan.followUp { try await workspace.createBranch(plan.workBranch) }
        // The agent works on a copy of the repository; the bot's own stays outside the jail.
        try await workspace.giveAgentItsRepository(refreshing: fromReadyCheckout)
    }
}
