import Foundation
import Hummingbird

/// `GET /tasks/{id}`: the task's facts, its steps with their times, the agent's log (terminal colours stripped), the
/// results (the agent's answer, checks, changed files, the diff), the pull request and the credits used; a Cancel
/// button while it runs, for users with push access. The script appends steps and log lines as they happen, keeps
/// the status current, and re-reads the facts and results (`#facts`, `#results` of this page) when they change.
extension PagesController {
    /// The largest diff a page shows (the rest is behind the pull request).
    static let pageDiffLimit = 300_000

    func taskPage(_ id: Int64, _ caller: Caller) async throws -> Response {
        let after = try await lastEventID()
        let (task, repositoryID) = try await api.visibleTask(id, caller)
        let repository = try await api.accessible(caller, force: false).first { $0.id == repositoryID }
        let detail = try await api.store.pageDetail(taskID: id, after: after)
        let results = try await api.store.results(taskID: id)

        let status = task["status"] as? String ?? ""
        let ended = ["completed", "failed", "cancelled"].contains(status)
        var data = Self.row(task)
        data["after"] = after
        data["prompt"] = detail.prompt
        data["requester"] = task["requester"] as? String ?? ""
        data["credits_used"] = task["credits_used"] as? String ?? ""
        data["ended"] = ended
        data["can_cancel"] = !ended && repository?.canPush == true
        if let error = task["error"] as? String, !error.isEmpty { data["error"] = error }
        let base = repository?.htmlURL.flatMap(PageFormat.safeURL)
        if let base { data["repository_url"] = base }
        if let issue = task["issue_number"] as? Int64 {
            data["issue_number"] = issue
            if let base { data["issue_url"] = "\(base)/issues/\(issue)" }
        }
        for name in ["started_at", "completed_at"] {
            if let at = task[name] as? String { data[name] = ["iso": at, "text": PageFormat.time(at)] }
        }
        data["steps"] = detail.steps.map { step -> [String: Any] in
            var item: [String: Any] = ["id": step.id, "step": step.step, "at": APIStore.timestamp(step.at), "at_text": PageFormat.time(step.at)]
            if !step.detail.isEmpty { item["detail"] = step.detail }
            return item
        }
        data["log"] = detail.log.map { line -> [String: Any] in
            var text = PageFormat.stripANSI(line.text)
            if !text.hasSuffix("\n") { text += "\n" }
            return ["id": line.id, "stream": ["stdout", "stderr", "notice"].contains(line.stream) ? line.stream : "stdout", "line": text]
        }
        data["log_truncated"] = detail.logTruncated
        data["results"] = Self.results(results, ended: ended)
        return renderer.page(.ok, "task", title: "Task #\(id)", user: caller.user, data)
    }

    /// The results section: the agent's answer, the checks, the files and the diff, by line.
    static func results(_ results: [String: Any], ended: Bool) -> [String: Any] {
        var section: [String: Any] = [:]
        if let summary = results["summary"] as? String, !summary.isEmpty { section["summary"] = PageFormat.stripANSI(summary) }
        let checks = (results["checks"] as? [[String: Any]] ?? []).map { check -> [String: Any] in
            let passed = check["passed"] as? Bool ?? false
            var item: [String: Any] = ["name": check["name"] as? String ?? "", "passed": passed, "outcome": passed ? "Passed" : "Failed"]
            if let seconds = check["seconds"] as? Double { item["seconds"] = String(format: "%.1f s", seconds) }
            if let round = check["round"] as? Int { item["round"] = round }
            return item
        }
        if !checks.isEmpty { section["checks"] = checks; section["has_checks"] = true }
        let files = (results["files"] as? [[String: Any]] ?? []).map { file -> [String: Any] in
            ["path": file["path"] as? String ?? "", "additions": file["additions"] as? Int ?? 0, "deletions": file["deletions"] as? Int ?? 0]
        }
        if !files.isEmpty { section["files"] = files; section["has_files"] = true }
        if var patch = results["patch"] as? String, !patch.isEmpty {
            if patch.utf8.count > pageDiffLimit {
                patch = String(decoding: patch.utf8.prefix(pageDiffLimit), as: UTF8.self)
                section["diff_truncated"] = true
            }
            if patch.hasSuffix("\n") { patch.removeLast() }
            section["diff"] = patch.split(separator: "\n", omittingEmptySubsequences: false).map { line -> [String: String] in
                let kind: String
                if line.hasPrefix("+++") || line.hasPrefix("---") || line.hasPrefix("diff ") || line.hasPrefix("index ") {
                    kind = "meta"
                } else if line.hasPrefix("@@") {
                    kind = "hunk"
                } else if line.hasPrefix("+") {
                    kind = "add"
                } else if line.hasPrefix("-") {
                    kind = "del"
                } else {
                    kind = "context"
                }
                return ["kind": kind, "text": String(line) + "\n"]
            }
            section["has_diff"] = true
        }
        let empty = section.isEmpty
        section["empty"] = empty
        section["waiting"] = empty && !ended
        return section
    }
}

extension PageRenderer {
    static let taskTemplate = """
        {{<layout}}{{$main}}
        <div class="page-head">
          <div>
            <p class="breadcrumb"><a href="/">Tasks</a> <span aria-hidden="true">/</span> {{repository_name}}</p>
            <h1>Task #{{id}} <span id="task-status" class="status status-{{status}}" data-status="{{status}}">{{status_label}}</span></h1>
          </div>
          {{#can_cancel}}
          <form id="cancel" method="post" action="/tasks/{{id}}/cancel" data-api="/api/tasks/{{id}}/cancel">
            <button class="btn btn-danger" type="submit">Cancel task</button>
          </form>
          {{/can_cancel}}
        </div>
        <p class="live-state" data-live-state role="status" hidden></p>
        <div class="task-layout" id="task" data-live="task" data-task-id="{{id}}" data-after="{{after}}">
        <div class="task-main">
        <section class="box" aria-labelledby="prompt-title">
          <h2 id="prompt-title" class="box-title">Prompt</h2>
          <div class="box-body prose">{{prompt}}</div>
        </section>
        <section class="box" aria-labelledby="steps-title">
          <h2 id="steps-title" class="box-title">Steps</h2>
          <ol id="steps" class="steps" data-status="{{status}}">
          {{#steps}}
            <li data-event-id="{{id}}"><time datetime="{{at}}">{{at_text}}</time> <span class="step-text">{{step}}</span>{{#detail}} <span class="step-detail">{{detail}}</span>{{/detail}}</li>
          {{/steps}}
          </ol>
          {{^steps}}<p class="box-body muted" data-empty>No steps yet.</p>{{/steps}}
        </section>
        <section class="box" aria-labelledby="log-title">
          <h2 id="log-title" class="box-title">Agent log</h2>
          {{#log_truncated}}<p class="box-body muted small">Only the newest lines are shown.</p>{{/log_truncated}}
          <pre id="log" class="log" tabindex="0" aria-labelledby="log-title">{{#log}}<span class="log-line log-{{stream}}" data-event-id="{{id}}">{{line}}</span>{{/log}}</pre>
        </section>
        <section class="box" id="results" aria-labelledby="results-title">
          <h2 id="results-title" class="box-title">Results</h2>
          {{#results}}
          {{#waiting}}<p class="box-body muted">Results appear here when the task ends.</p>{{/waiting}}
          {{#empty}}{{^waiting}}<p class="box-body muted">This task produced no results.</p>{{/waiting}}{{/empty}}
          {{#summary}}<div class="box-body prose">{{summary}}</div>{{/summary}}
          {{#has_checks}}
          <h3 class="sub-title">Checks</h3>
          <table class="checks">
            <thead><tr><th scope="col">Check</th><th scope="col">Result</th><th scope="col">Time</th><th scope="col">Round</th></tr></thead>
            <tbody>
            {{#checks}}<tr><td>{{name}}</td><td><span class="status {{#passed}}status-completed{{/passed}}{{^passed}}status-failed{{/passed}}">{{outcome}}</span></td><td>{{seconds}}</td><td>{{round}}</td></tr>
            {{/checks}}
            </tbody>
          </table>
          {{/has_checks}}
          {{#has_files}}
          <h3 class="sub-title">Changed files</h3>
          <ul class="files">
            {{#files}}<li><code>{{path}}</code> <span class="additions">+{{additions}}</span> <span class="deletions">−{{deletions}}</span></li>
            {{/files}}
          </ul>
          {{/has_files}}
          {{#has_diff}}
          <h3 class="sub-title">Diff</h3>
          {{#diff_truncated}}<p class="box-body muted small">The diff is too long to show whole; the pull request has all of it.</p>{{/diff_truncated}}
          <pre class="diff" tabindex="0" aria-label="Diff"><code>{{#diff}}<span class="diff-{{kind}}">{{text}}</span>{{/diff}}</code></pre>
          {{/has_diff}}
          {{/results}}
        </section>
        </div>
        <aside class="task-side" id="facts" aria-label="About this task">
          <dl class="facts">
            <dt>Repository</dt><dd>{{#repository_url}}<a href="{{repository_url}}">{{repository_name}}</a>{{/repository_url}}{{^repository_url}}{{repository_name}}{{/repository_url}}</dd>
            <dt>Kind</dt><dd>{{kind}}</dd>
            <dt>Agent</dt><dd>{{#agent}}{{agent}}{{/agent}}{{^agent}}default{{/agent}}</dd>
            <dt>Requested by</dt><dd>@{{requester}}</dd>
            {{#issue_number}}<dt>Issue</dt><dd>{{#issue_url}}<a href="{{issue_url}}">#{{issue_number}}</a>{{/issue_url}}{{^issue_url}}#{{issue_number}}{{/issue_url}}</dd>{{/issue_number}}
            <dt>Status</dt><dd><span class="status status-{{status}}">{{status_label}}</span></dd>
            <dt>Created</dt><dd><time datetime="{{created_at}}">{{created_text}}</time></dd>
            {{#started_at}}<dt>Started</dt><dd><time datetime="{{iso}}">{{text}}</time></dd>{{/started_at}}
            {{#completed_at}}<dt>Ended</dt><dd><time datetime="{{iso}}">{{text}}</time></dd>{{/completed_at}}
            <dt>Credits used</dt><dd data-credits>{{credits_used}}</dd>
            <dt>Pull request</dt><dd data-pr>{{#pr_number}}{{#pr_url}}<a href="{{pr_url}}">#{{pr_number}}</a>{{/pr_url}}{{^pr_url}}#{{pr_number}}{{/pr_url}}{{/pr_number}}{{^pr_number}}<span class="muted">none yet</span>{{/pr_number}}</dd>
          </dl>
          {{#error}}<div class="flash flash-error" role="alert"><strong>Error:</strong> {{error}}</div>{{/error}}
        </aside>
        </div>
        {{/main}}{{/layout}}
        """
}
