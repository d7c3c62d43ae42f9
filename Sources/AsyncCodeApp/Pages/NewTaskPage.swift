import Foundation
import Hummingbird
import SignIn

/// `GET /tasks/new` and `POST /tasks/new`: a repository the user can push to, an agent, a kind, a prompt and
/// optionally an issue and a base branch. The form's fields are checked and queued exactly as `POST /api/tasks`
/// (``APIController/newTask(_:)``, ``APIController/start(_:_:)``); a refusal shows the form again with what was
/// typed and why; success answers 303 to the new task's page.
extension PagesController {
    func newTaskForm(_ caller: Caller, values: [String: String] = [:], problem: Problem? = nil) async throws -> Response {
        let repositories = try await api.accessible(caller, force: false).filter(\.canPush)
            .sorted { $0.fullName.lowercased() < $1.fullName.lowercased() }
        let chosenAgent = values["agent"] ?? agents.defaultAgent ?? ""
        let chosenKind = values["kind"] ?? "code"
        var data: [String: Any] = [
            "repositories": repositories.map { repository -> [String: Any] in
                ["id": repository.id, "full_name": repository.fullName, "selected": values["repository_id"] == String(repository.id)]
            },
            "has_repositories": !repositories.isEmpty,
            "agents": agents.names.map { name -> [String: Any] in
                let display = agents.agents[name]?.displayName ?? name
                return ["name": name, "label": display == name ? name : "\(display) (\(name))", "selected": name == chosenAgent]
            },
            "kinds": PageFormat.kinds.map { ["value": $0, "selected": $0 == chosenKind] as [String: Any] },
            "prompt": values["prompt"] ?? "",
            "issue_number": values["issue_number"] ?? "",
            "base_branch": values["base_branch"] ?? "",
        ]
        if let problem { data["problem"] = problem.detail.map { "\(problem.title): \($0)" } ?? problem.title }
        return renderer.page(problem?.status ?? .ok, "new-task", title: "New task", user: caller.user, nav: "new", data)
    }

    func createTask(_ request: Request, _ caller: Caller, _ signIn: SignIn) async throws -> Response {
        try session.checkOrigin(request, signIn)
        var values = try await Self.form(request)
        // Browsers send a textarea's line breaks as CR LF.
        values["prompt"] = values["prompt"]?.replacingOccurrences(of: "\r\n", with: "\n")
        var object: [String: Any] = [:]
        for name in ["repository_id", "issue_number"] {
            guard let text = values[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { continue }
            // A number the API's rules then check; anything else is left as text for them to refuse by name.
            object[name] = Int64(text).map { NSNumber(value: $0) } ?? text
        }
        for name in ["prompt", "kind", "agent", "base_branch"] {
            guard let text = values[name], !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { continue }
            object[name] = name == "prompt" ? text : text.trimmingCharacters(in: .whitespaces)
        }
        do {
            let task = try APIController.newTask(try JSONSerialization.data(withJSONObject: object))
            let id = try await api.start(task, caller)
            return PageRenderer.redirect("/tasks/\(id)")
        } catch let problem as Problem where problem.status != .tooManyRequests && problem.status != .unauthorized {
            return try await newTaskForm(caller, values: values, problem: problem.status == .notFound
                ? Problem(slug: "not-found", title: "No such repository", status: .notFound, detail: "pick one of the repositories listed")
                : problem)
        }
    }
}

extension PageRenderer {
    static let newTaskTemplate = """
        {{<layout}}{{$main}}
        <div class="page-head"><h1>New task</h1></div>
        {{#problem}}<p class="flash flash-error" role="alert" id="form-problem">{{problem}}</p>{{/problem}}
        {{#has_repositories}}
        <form class="box box-body stack" method="post" action="/tasks/new">
          <div class="field">
            <label for="repository">Repository</label>
            <select id="repository" name="repository_id" required>
              {{#repositories}}<option value="{{id}}"{{#selected}} selected{{/selected}}>{{full_name}}</option>
              {{/repositories}}
            </select>
            <p class="hint">Repositories of the App's installations you can push to.</p>
          </div>
          <div class="field-row">
            <div class="field">
              <label for="agent">Agent</label>
              <select id="agent" name="agent">
                {{#agents}}<option value="{{name}}"{{#selected}} selected{{/selected}}>{{label}}</option>
                {{/agents}}
              </select>
            </div>
            <div class="field">
              <label for="kind">Kind</label>
              <select id="kind" name="kind">
                {{#kinds}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{value}}</option>
                {{/kinds}}
              </select>
            </div>
          </div>
          <div class="field">
            <label for="prompt">Prompt</label>
            <textarea id="prompt" name="prompt" rows="8" maxlength="8000" required aria-describedby="prompt-hint">{{prompt}}</textarea>
            <p class="hint" id="prompt-hint">What the agent should do, as you would write it after <code>/asynccode</code>.</p>
          </div>
          <div class="field-row">
            <div class="field">
              <label for="issue">Issue number <span class="muted">(optional)</span></label>
              <input id="issue" name="issue_number" inputmode="numeric" pattern="[0-9]*" value="{{issue_number}}" aria-describedby="issue-hint">
              <p class="hint" id="issue-hint">The pull request will close it.</p>
            </div>
            <div class="field">
              <label for="base-branch">Base branch <span class="muted">(optional)</span></label>
              <input id="base-branch" name="base_branch" maxlength="255" value="{{base_branch}}" placeholder="the default branch">
            </div>
          </div>
          <div><button class="btn btn-primary" type="submit">Start task</button></div>
        </form>
        {{/has_repositories}}
        {{^has_repositories}}
        <section class="blankslate"><h2>No repository to start a task in</h2>
        <p>Starting a task needs push access to a repository the App is installed on.</p></section>
        {{/has_repositories}}
        {{/main}}{{/layout}}
        """
}
