import Commands
import Foundation
import Models

/// Settings that shape what the intake derives from events.
public struct IntakeSettings: Sendable {
    /// The label that starts work on an issue, compared case-insensitively.
    public var triggerLabel: String
    /// The App's numeric id, when known: its own check suites never start a fix.
    public var appID: Int64?

    public init(triggerLabel: String = "asynccode", appID: Int64? = nil) {
        self.triggerLabel = triggerLabel
        self.appID = appID
    }
}

/// Turns a verified webhook delivery into the writes it asks for, without I/O.
public struct WebhookDecoder: Sendable {
    public var settings: IntakeSettings
    private let parser = CommandParser()

    public init(settings: IntakeSettings = IntakeSettings()) {
        self.settings = settings
    }

    /// Returns whether `deliveryID` is an acceptable `X-GitHub-Delivery` value.
    public static func isValidDeliveryID(_ deliveryID: String) -> Bool {
        (1...128).contains(deliveryID.utf8.count)
            && deliveryID.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
    }

    /// Returns whether `event` is an acceptable `X-GitHub-Event` value.
    public static func isValidEventName(_ event: String) -> Bool {
        (1...64).contains(event.utf8.count)
            && event.utf8.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || $0 == UInt8(ascii: "_") }
    }

    /// Returns the plan for one delivery.
    ///
    /// - Throws: ``IntakeError`` when the body is not JSON or lacks what `event` must carry.
    public func plan(event: String, deliveryID: String, body: [UInt8]) throws(IntakeError) -> DeliveryPlan {
        // One validating pass reads what every delivery is filed under; most need nothing more.
        guard let fields = body.withUnsafeBytes({ JSONProbe.probe($0) }) else {
            throw IntakeError(.invalidJSON, "the body is not valid JSON")
        }
        guard fields.isObject else {
            throw IntakeError(.unexpectedPayload, "the body is not a \(event) payload")
        }
        var plan = DeliveryPlan(deliveryID: deliveryID, event: event, action: fields.action,
                                installationID: fields.installationID, repositoryID: fields.repositoryID, payload: body)
        if let reason = Self.reasonToSkipDecoding(event: event, action: fields.action, body: body) {
            plan.ignoredReason = reason
            return plan
        }

        let data = Data(body)
        let decoder = JSONDecoder()

        func decode<T: Decodable>(_ type: T.Type) throws(IntakeError) -> (EnvelopePayload, T) {
            do {
                let delivery = try decoder.decode(Delivery<T>.self, from: data)
                return (delivery.envelope, delivery.body)
            } catch {
                throw IntakeError(.unexpectedPayload, "the body is not a \(event) payload")
            }
        }

        func start<T: Decodable>(_ type: T.Type) throws(IntakeError) -> (EnvelopePayload, T) {
            let decoded = try decode(T.self)
            plan.action = decoded.0.action
            plan.installationID = decoded.0.installation?.id
            plan.repositoryID = decoded.0.repository?.id
            return decoded
        }

        switch event {
        case "ping":
            plan.ignoredReason = "ping"
        case "installation":
            let (_, payload) = try start(InstallationEvent.self)
            plan.installationID = payload.installation.id
            applyInstallation(payload, to: &plan)
        case "installation_repositories":
            let (_, payload) = try start(InstallationRepositoriesEvent.self)
            plan.installationID = payload.installation.id
            applyInstallationRepositories(payload, to: &plan)
        case "issue_comment":
            let (envelope, payload) = try start(IssueCommentEvent.self)
            guard payload.action == "created" else {
                plan.ignoredReason = "issue_comment \(payload.action) does not start work"
                break
            }
            addCommands(
                body: payload.comment.body, author: payload.comment.user, envelope: envelope,
                issueNumber: payload.issue.number, isPullRequest: payload.issue.pull_request != nil,
                source: .issueComment, commentID: payload.comment.id, url: payload.comment.html_url, to: &plan)
        case "pull_request_review":
            let (envelope, payload) = try start(PullRequestReviewEvent.self)
            guard payload.action == "submitted" else {
                plan.ignoredReason = "pull_request_review \(payload.action) does not start work"
                break
            }
            addCommands(
                body: payload.review.body, author: payload.review.user, envelope: envelope,
                issueNumber: payload.pull_request.number, isPullRequest: true, source: .review,
                commentID: payload.review.id, url: payload.review.html_url, to: &plan)
            if plan.tasks.isEmpty, plan.controls.isEmpty {
                addReviewFollowUp(payload, envelope: envelope, to: &plan)
            }
        case "pull_request_review_comment":
            let (envelope, payload) = try start(PullRequestReviewCommentEvent.self)
            guard payload.action == "created" else {
                plan.ignoredReason = "pull_request_review_comment \(payload.action) does not start work"
                break
            }
            addCommands(
                body: payload.comment.body, author: payload.comment.user, envelope: envelope,
                issueNumber: payload.pull_request.number, isPullRequest: true, source: .reviewComment,
                commentID: payload.comment.id, url: payload.comment.html_url, to: &plan)
            // The agent needs to know where the comment is.
            if let path = payload.comment.path {
                let hunk = (payload.comment.diff_hunk ?? "").split(separator: "\n", omittingEmptySubsequences: false)
                    .suffix(12).joined(separator: "\n")
                let location = "(A review comment on `\(path)`\(payload.comment.line.map { " line \($0)" } ?? ""))"
                let context = hunk.isEmpty ? location : location + "\n```diff\n" + String(decoding: hunk.utf8.prefix(4096), as: UTF8.self) + "\n```"
                for index in plan.tasks.indices { plan.tasks[index].prompt += "\n\n" + context }
            }
        case "issues":
            let (envelope, payload) = try start(IssuesEvent.self)
            applyLabel(payload, envelope: envelope, to: &plan)
        case "pull_request":
            let (_, payload) = try start(PullRequestEvent.self)
            applyPullRequest(payload, to: &plan)
        case "github_app_authorization":
            let (envelope, _) = try start(EmptyBody.self)
            if envelope.action == "revoked", let sender = envelope.sender {
                plan.stateChanges.append(.userAuthorizationRevoked(userGitHubID: sender.id))
            } else {
                plan.ignoredReason = "github_app_authorization \(envelope.action ?? "event") is not handled"
            }
        case "check_suite":
            let (envelope, payload) = try start(CheckSuiteEvent.self)
            let suite = payload.check_suite
            if let appID = settings.appID, suite.app?.id == appID {
                plan.ignoredReason = "the bot's own check suite"
                break
            }
            addCIFix(headSHA: suite.head_sha, conclusion: suite.conclusion, name: suite.app?.name ?? suite.app?.slug ?? "a check suite",
                     pulls: suite.pull_requests ?? [], envelope: envelope, url: nil, to: &plan)
        case "workflow_run":
            let (envelope, payload) = try start(WorkflowRunEvent.self)
            let run = payload.workflow_run
            addCIFix(headSHA: run.head_sha, conclusion: run.conclusion, name: run.name.map { "workflow \($0)" } ?? "a workflow",
                     pulls: run.pull_requests ?? [], envelope: envelope, url: run.html_url, to: &plan)
        default:
            plan.ignoredReason = "event \(event) is not handled"
        }
        return plan
    }

    /// Events that can hold commands.
    static let commandEvents: Set<String> = ["issue_comment", "pull_request_review", "pull_request_review_comment"]
    static let handledEvents: Set<String> = commandEvents.union(
        ["ping", "installation", "installation_repositories", "issues", "pull_request", "github_app_authorization"]).union(ciEvents)
    static let pullRequestActions: Set<String> = ["closed", "reopened", "edited"]

    /// Returns why a delivery needs no decoding beyond the probe, or `nil` when it must be decoded.
    static func reasonToSkipDecoding(event: String, action: String?, body: [UInt8]) -> String? {
        if !handledEvents.contains(event) { return "event \(event) is not handled" }
        if event == "ping" { return "ping" }
        // A command needs the word: a delivery without it anywhere cannot hold one. A review that requests
        // changes needs no command (on the bot's own pull request it is a follow-up), so it is read whatever
        // its text says: the pull request decides, not a word in it.
        if commandEvents.contains(event), !mayHoldCommand(body), !mayBeReviewFollowUp(event: event, action: action, body: body) {
            return "no command"
        }
        if event == "issues", action != "labeled" { return "issues \(action ?? "event") is not the trigger label" }
        if event == "pull_request", !pullRequestActions.contains(action ?? "") {
            return "pull_request \(action ?? "event") is not handled"
        }
        if ciEvents.contains(event), action != "completed" { return "\(event) \(action ?? "event") is not a finished run" }
        return nil
    }

    // MARK: - Commands

    private func addCommands(
        body: String?, author: UserPayload?, envelope: EnvelopePayload, issueNumber: Int64, isPullRequest: Bool,
        source: CommandSource, commentID: Int64, url: String?, to plan: inout DeliveryPlan
    ) {
        guard let body, !body.isEmpty else {
            plan.ignoredReason = "no command"
            return
        }
        // Cheap test first: an everyday comment costs no parse.
        guard Self.mayHoldCommand(body.utf8) else {
            plan.ignoredReason = "no command"
            return
        }
        if let reason = botReason(sender: envelope.sender, author: author) {
            plan.ignoredReason = reason
            return
        }
        let parsed = parser.parse(body)
        guard !parsed.commands.isEmpty else {
            plan.ignoredReason = "no command"
            return
        }
        guard let context = TaskContext(envelope: envelope, author: author) else {
            plan.ignoredReason = "not an App delivery: no installation or repository"
            return
        }
        var commands = parsed.commands
        if parsed.overLimit > 0 {
            commands.append(.invalid(problem: "only \(CommandGrammar.maxCommandsPerComment) commands run per comment; "
                + "\(parsed.overLimit) more were not run"))
        }
        for (index, command) in commands.enumerated() {
            let origin = context.origin(
                issueNumber: issueNumber, isPullRequest: isPullRequest, source: source, commentID: commentID,
                commandIndex: Int32(index))
            switch command {
            case .task(let task):
                plan.tasks.append(TaskRequest(
                    origin: origin, kind: task.kind, agent: task.agent, priority: task.priority,
                    baseBranch: task.baseBranch, prompt: task.prompt, sourceURL: url, budget: task.budget))
            case .control(let verb, let argument):
                plan.controls.append(ControlRequest(origin: origin, verb: verb, argument: argument))
            case .invalid(let problem):
                plan.controls.append(ControlRequest(origin: origin, verb: .invalid, argument: problem))
            }
        }
    }

    /// A review that requests changes on the bot's own pull request is a follow-up task even without a
    /// command: its text is the instruction.
    private func addReviewFollowUp(_ payload: PullRequestReviewEvent, envelope: EnvelopePayload, to plan: inout DeliveryPlan) {
        guard payload.review.state?.lowercased() == "changes_requested",
              payload.pull_request.head?.ref != nil,
              let author = payload.pull_request.user, Self.isBot(author) else { return }
        if botReason(sender: envelope.sender, author: payload.review.user) != nil { return }
        guard let context = TaskContext(envelope: envelope, author: payload.review.user) else { return }
        let body = payload.review.body?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let prompt = body.isEmpty ? "Address the changes requested in the review." : String(body.utf8.prefix(CommandGrammar.maxTextBytes)) ?? body
        plan.tasks.append(TaskRequest(
            origin: context.origin(issueNumber: payload.pull_request.number, isPullRequest: true, source: .review,
                                   commentID: payload.review.id, commandIndex: 0),
            kind: .code, agent: nil, priority: .medium, baseBranch: nil, prompt: prompt, sourceURL: payload.review.html_url))
        plan.tasks[plan.tasks.count - 1].requiresOwnPullRequest = true
        plan.ignoredReason = nil
    }

    /// Returns whether a delivery may be a review requesting changes: a submitted review whose bytes hold the
    /// state as GitHub writes it, `changes_requested` (the decoder then reads the state itself).
    static func mayBeReviewFollowUp(event: String, action: String?, body: [UInt8]) -> Bool {
        guard event == "pull_request_review", action == "submitted" else { return false }
        let needle = Array("changes_requested".utf8)
        guard body.count >= needle.count else { return false }
        var index = 0
        while let start = body[index...(body.count - needle.count)].firstIndex(of: needle[0]) {
            if body[start..<(start + needle.count)].elementsEqual(needle) { return true }
            index = start + 1
            if index > body.count - needle.count { break }
        }
        return false
    }

    /// Returns whether `bytes` hold the word `asynccode` anywhere, in any case: a byte scan, no allocation.
    ///
    /// The word, not the prefix: JSON may write the slash as `\/`.
    static func mayHoldCommand(_ bytes: some Collection<UInt8>) -> Bool {
        let needle = Array(CommandGrammar.prefix.utf8.dropFirst())
        if let result = bytes.withContiguousStorageIfAvailable({
            WordScan.containsCaseInsensitive(UnsafeRawBufferPointer($0), lowercaseNeedle: needle)
        }) {
            return result
        }
        return Array(bytes).withUnsafeBytes { WordScan.containsCaseInsensitive($0, lowercaseNeedle: needle) }
    }

    private func botReason(sender: UserPayload?, author: UserPayload?) -> String? {
        for user in [sender, author].compactMap({ $0 }) where Self.isBot(user) {
            return "sent by a bot (\(user.login.truncatedToUTF8(64)))"
        }
        return nil
    }

    static func isBot(_ user: UserPayload) -> Bool {
        user.type?.lowercased() == "bot" || user.login.hasSuffix("[bot]")
    }

    // MARK: - Label

    /// A label added to an issue: the default trigger label, or any label a repository may have made its
    /// trigger in `.github/asynccode.yml` (the executor checks it against the file; the request path reads
    /// no files).
    private func applyLabel(_ payload: IssuesEvent, envelope: EnvelopePayload, to plan: inout DeliveryPlan) {
        guard payload.action == "labeled", let label = payload.label, !label.name.isEmpty, label.name.utf8.count <= 100 else {
            plan.ignoredReason = "issues \(payload.action) is not the trigger label"
            return
        }
        if let sender = envelope.sender, Self.isBot(sender) {
            plan.ignoredReason = "sent by a bot (\(sender.login.truncatedToUTF8(64)))"
            return
        }
        guard let context = TaskContext(envelope: envelope, author: envelope.sender) else {
            plan.ignoredReason = "not an App delivery: no installation or repository"
            return
        }
        let origin = context.origin(
            issueNumber: payload.issue.number, isPullRequest: payload.issue.pull_request != nil, source: .label,
            commentID: nil, commandIndex: 0)
        plan.controls.append(ControlRequest(origin: origin, verb: .label, argument: label.name))
    }

    // MARK: - Pull requests

    private func applyPullRequest(_ payload: PullRequestEvent, to plan: inout DeliveryPlan) {
        let pr = payload.pull_request
        let state: PullRequestUpdate.State
        switch payload.action {
        case "closed":
            state = (pr.merged == true || pr.merged_at != nil) ? .merged : .closed
        case "reopened", "edited":
            if pr.state == "closed" {
                state = pr.merged_at != nil ? .merged : .closed
            } else {
                state = pr.draft == true ? .draft : .open
            }
        default:
            plan.ignoredReason = "pull_request \(payload.action) is not handled"
            return
        }
        plan.stateChanges.append(.pullRequestUpdated(PullRequestUpdate(
            githubPRID: pr.id, state: state, title: pr.title, body: pr.body, mergedAt: pr.merged_at,
            closedAt: pr.closed_at)))
    }

    // MARK: - Installations

    private func applyInstallation(_ payload: InstallationEvent, to plan: inout DeliveryPlan) {
        let id = payload.installation.id
        switch payload.action {
        case "created", "new_permissions_accepted":
            guard let snapshot = Self.snapshot(payload.installation) else {
                plan.ignoredReason = "installation without an account"
                return
            }
            let repositories = (payload.repositories ?? []).map { Self.snapshot($0) }
            plan.stateChanges.append(.installationCreated(snapshot, repositories: repositories))
        case "deleted":
            plan.stateChanges.append(.installationDeleted(installationID: id))
        case "suspend":
            plan.stateChanges.append(.installationSuspended(installationID: id))
        case "unsuspend":
            plan.stateChanges.append(.installationUnsuspended(installationID: id))
        default:
            plan.ignoredReason = "installation \(payload.action) is not handled"
        }
    }

    private func applyInstallationRepositories(_ payload: InstallationRepositoriesEvent, to plan: inout DeliveryPlan) {
        switch payload.action {
        case "added":
            guard let snapshot = Self.snapshot(payload.installation) else {
                plan.ignoredReason = "installation without an account"
                return
            }
            let added = (payload.repositories_added ?? []).map { Self.snapshot($0) }
            plan.stateChanges.append(.repositoriesAdded(installation: snapshot, repositories: added))
        case "removed":
            let removed = (payload.repositories_removed ?? []).map(\.id)
            plan.stateChanges.append(.repositoriesRemoved(installationID: payload.installation.id, repositoryIDs: removed))
        default:
            plan.ignoredReason = "installation_repositories \(payload.action) is not handled"
        }
    }

    // MARK: - Snapshots

    static func snapshot(_ user: UserPayload) -> AccountSnapshot {
        AccountSnapshot(githubID: user.id, login: user.login, type: user.type ?? "User", avatarURL: user.avatar_url)
    }

    static func snapshot(_ installation: InstallationPayload) -> InstallationSnapshot? {
        guard let account = installation.account else { return nil }
        return InstallationSnapshot(
            githubID: installation.id, account: snapshot(account), repositorySelection: installation.repository_selection)
    }

    static func snapshot(_ repository: InstallationRepositoryPayload) -> RepositorySnapshot {
        let owner = repository.full_name.split(separator: "/").first.map(String.init) ?? ""
        return RepositorySnapshot(
            githubID: repository.id, fullName: repository.full_name, name: repository.name, ownerLogin: owner,
            isPrivate: repository.private ?? true)
    }

    static func snapshot(_ repository: RepositoryPayload) -> RepositorySnapshot {
        let owner = repository.owner?.login ?? repository.full_name.split(separator: "/").first.map(String.init) ?? ""
        return RepositorySnapshot(
            githubID: repository.id, fullName: repository.full_name, name: repository.name, ownerLogin: owner,
            description: repository.description, isPrivate: repository.private ?? true,
            defaultBranch: repository.default_branch, language: repository.language, htmlURL: repository.html_url,
            cloneURL: repository.clone_url, owner: repository.owner.map(snapshot))
    }
}

/// Who asked, where: what every task and control command of one delivery shares.
struct TaskContext {
    var installationID: Int64
    var repository: RepositorySnapshot
    var requester: AccountSnapshot

    init?(envelope: EnvelopePayload, author: UserPayload?) {
        guard let installation = envelope.installation, let repository = envelope.repository,
              let requester = author ?? envelope.sender else { return nil }
        self.installationID = installation.id
        self.repository = WebhookDecoder.snapshot(repository)
        self.requester = WebhookDecoder.snapshot(requester)
    }

    func origin(
        issueNumber: Int64, isPullRequest: Bool, source: CommandSource, commentID: Int64?, commandIndex: Int32
    ) -> CommandOrigin {
        CommandOrigin(
            installationID: installationID, repository: repository, requester: requester, issueNumber: issueNumber,
            isPullRequest: isPullRequest, source: source, commentID: commentID, commandIndex: commandIndex)
    }
}
