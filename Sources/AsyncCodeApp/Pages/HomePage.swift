import Foundation
import Hummingbird

/// `GET /`: the signed-in user's tasks, newest first (50 a page, `cursor` for older ones), filtered by `repository`
/// (an id) and `status`. The table carries the filters and `data-after` for the script, which updates each row's
/// status and pull request and adds new tasks at the top.
extension PagesController {
    static let tasksPerPage = 50

    func home(_ request: Request, _ caller: Caller) async throws -> Response {
        let query = request.uri.queryParameters
        let status = query["status"].map(String.init).flatMap { PageFormat.statuses.contains($0) ? $0 : nil }
        let repositoryID = query["repository"].flatMap { Int64($0) }.flatMap { $0 > 0 ? $0 : nil }
        let cursor = query["cursor"].flatMap { Int64($0) }.flatMap { $0 > 0 ? $0 : nil }
        // The event id first, then the state: what happens in between arrives as events.
        let after = try await lastEventID()
        let repositories = try await api.accessible(caller, force: false)
        let (tasks, next) = try await api.store.tasks(accountID: caller.user.accountID, status: status, repositoryID: repositoryID,
                                                      before: cursor, limit: Self.tasksPerPage)
        var data: [String: Any] = [
            "after": after,
            "tasks": tasks.map(Self.row),
            "repositories": repositories.sorted { $0.fullName.lowercased() < $1.fullName.lowercased() }.map { repository -> [String: Any] in
                ["id": repository.id, "full_name": repository.fullName, "selected": repository.id == repositoryID]
            },
            "statuses": PageFormat.statuses.map { ["value": $0, "label": PageFormat.statusLabel($0), "selected": $0 == status] as [String: Any] },
            "filter_status": status ?? "",
            "filter_repository": repositoryID.map(String.init) ?? "",
            "first_page": cursor == nil,
            "filtered": status != nil || repositoryID != nil,
        ]
        if let next {
            var parameters = ["cursor=\(next)"]
            if let status { parameters.append("status=\(status)") }
            if let repositoryID { parameters.append("repository=\(repositoryID)") }
            data["next_url"] = "/?" + parameters.joined(separator: "&")
        }
        return renderer.page(.ok, "home", title: "Tasks", user: caller.user, nav: "tasks", data)
    }

    /// One row of the table, from a task as the API lists it.
    static func row(_ task: [String: Any]) -> [String: Any] {
        let status = task["status"] as? String ?? ""
        var row: [String: Any] = [
            "id": task["id"] as? Int64 ?? 0,
            "repository_name": (task["repository"] as? [String: Any])?["full_name"] as? String ?? "",
            "kind": task["kind"] as? String ?? "",
            "status": status, "status_label": PageFormat.statusLabel(status),
            "prompt_line": PageFormat.firstLine(task["prompt"] as? String ?? ""),
        ]
        if let agent = task["agent"] as? String { row["agent"] = agent }
        if let created = task["created_at"] as? String {
            row["created_at"] = created
            row["created_text"] = PageFormat.time(created)
        }
        if let pull = task["pull_request"] as? [String: Any], let number = pull["number"] as? Int64 {
            row["pr_number"] = number
            if let url = (pull["url"] as? String).flatMap(PageFormat.safeURL) { row["pr_url"] = url }
        }
        return row
    }
}

extension PageRenderer {
    static let homeTemplate = """
        {{<layout}}{{$main}}
        <div class="page-head">
          <h1>Tasks</h1>
          <a class="btn btn-primary" href="/tasks/new">New task</a>
        </div>
        <form class="filters" method="get" action="/" role="search" aria-label="Filter tasks">
          <div class="field">
            <label for="filter-repository">Repository</label>
            <select id="filter-repository" name="repository">
              <option value="">All repositories</option>
              {{#repositories}}<option value="{{id}}"{{#selected}} selected{{/selected}}>{{full_name}}</option>
              {{/repositories}}
            </select>
          </div>
          <div class="field">
            <label for="filter-status">Status</label>
            <select id="filter-status" name="status">
              <option value="">Any status</option>
              {{#statuses}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>
              {{/statuses}}
            </select>
          </div>
          <button class="btn" type="submit">Filter</button>
          {{#filtered}}<a class="filters-clear" href="/">Clear filters</a>{{/filtered}}
        </form>
        <p class="live-state" data-live-state role="status" hidden></p>
        <div class="box table-wrap">
        <table class="tasks" id="tasks" data-live="list" data-after="{{after}}" data-filter-status="{{filter_status}}" data-filter-repository="{{filter_repository}}"{{#first_page}} data-first-page="true"{{/first_page}}>
          <caption class="visually-hidden">Your tasks, newest first</caption>
          <thead><tr><th scope="col">Task</th><th scope="col">Repository</th><th scope="col">Status</th><th scope="col">Pull request</th><th scope="col">Created</th></tr></thead>
          <tbody>
          {{#tasks}}
          <tr data-task-id="{{id}}">
            <td><a class="task-title" href="/tasks/{{id}}"><span class="task-number">#{{id}}</span> {{prompt_line}}</a><div class="muted small">{{kind}}{{#agent}} · {{agent}}{{/agent}}</div></td>
            <td class="nowrap">{{repository_name}}</td>
            <td><span class="status status-{{status}}" data-status="{{status}}">{{status_label}}</span></td>
            <td data-pr>{{#pr_number}}{{#pr_url}}<a href="{{pr_url}}">#{{pr_number}}</a>{{/pr_url}}{{^pr_url}}#{{pr_number}}{{/pr_url}}{{/pr_number}}</td>
            <td class="nowrap"><time datetime="{{created_at}}">{{created_text}}</time></td>
          </tr>
          {{/tasks}}
          {{^tasks}}
          <tr class="empty" data-empty><td colspan="5">No tasks {{#filtered}}match these filters{{/filtered}}{{^filtered}}yet: <a href="/tasks/new">start one</a>, or comment <code>/asynccode</code> on an issue{{/filtered}}.</td></tr>
          {{/tasks}}
          </tbody>
        </table>
        </div>
        {{#next_url}}<nav class="pager" aria-label="More tasks"><a class="btn" href="{{next_url}}">Older tasks</a></nav>{{/next_url}}
        {{/main}}{{/layout}}
        """
}
