import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore
import SignIn

/// Renders the pages with Mustache: one library holds the layout and every page's template (string constants, so
/// the binary stands alone), and every value goes through `{{ }}`, which escapes it for HTML. Every page carries
/// the same headers: a Content-Security-Policy that allows only this server's own script and stylesheet, no
/// caching, no framing, no referrer to other sites.
struct PageRenderer: Sendable {
    static let contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; "
        + "img-src 'self' https://avatars.githubusercontent.com data:; connect-src 'self'; frame-ancestors 'none'; "
        + "base-uri 'none'; form-action 'self'"

    /// The templates by name; a page's template extends `layout` (`{{<layout}}{{$main}}…{{/main}}{{/layout}}`).
    static let templates: [String: String] = [
        "layout": layoutTemplate, "landing": landingTemplate, "home": homeTemplate, "task": taskTemplate,
        "new-task": newTaskTemplate, "credits": creditsTemplate, "problem": problemTemplate,
    ]

    let library: MustacheLibrary

    init() {
        var library = MustacheLibrary()
        for (name, text) in Self.templates {
            // The templates are constants of this file's module: a parse error is a programming error that every
            // page test would show at once.
            do { try library.register(text, named: name) } catch { preconditionFailure("template \(name): \(error)") }
        }
        self.library = library
    }

    /// Returns the page `template` rendered with `data`, the signed-in user's header and the page's title.
    func page(_ status: HTTPResponse.Status = .ok, _ template: String, title: String, user: SignedInUser?, nav: String? = nil,
              _ data: [String: Any] = [:]) -> Response {
        var values = data
        values["title"] = title
        values["assets"] = ["css": PageAssets.stylesheetVersion, "js": PageAssets.scriptVersion]
        if let user {
            var header: [String: Any] = ["login": user.login]
            if let name = user.displayName { header["display_name"] = name }
            if let avatar = user.avatarURL.flatMap(PageFormat.safeURL) { header["avatar_url"] = avatar }
            values["user"] = header
        }
        if let nav { values["nav_" + nav] = true }
        let html = library.render(values, withTemplate: template) ?? ""
        return Self.html(status, html)
    }

    /// Returns the page for a problem: the 404 page for a task that does not exist for the user, otherwise the
    /// problem's title and detail with its status.
    func problem(_ problem: Problem, user: SignedInUser?) -> Response {
        if problem.status == .notFound {
            return page(.notFound, "problem", title: "Not found", user: user,
                        ["heading": "This page does not exist", "detail": "There is nothing here, or nothing you may see.",
                         "not_found": true])
        }
        var response = page(problem.status, "problem", title: problem.title, user: user,
                            ["heading": problem.title, "detail": problem.detail ?? ""])
        for field in problem.headers where field.name == .retryAfter { response.headers.append(field) }
        return response
    }

    /// Returns `html` with the headers every page carries.
    static func html(_ status: HTTPResponse.Status, _ html: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        // `same-origin`, not `no-referrer`: with no referrer at all, browsers send `Origin: null` on form posts,
        // which the origin check refuses.
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// Returns a redirect after a form (303) or to sign in.
    static func redirect(_ location: String, _ status: HTTPResponse.Status = .seeOther) -> Response {
        Response(status: status, headers: [.location: location, .cacheControl: "no-store"])
    }

    static let layoutTemplate = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · asynccode</title>
        <link rel="stylesheet" href="/assets/app.css?v={{assets.css}}">
        <script src="/assets/live.js?v={{assets.js}}" defer></script>
        </head>
        <body>
        <a class="skip-link" href="#main">Skip to content</a>
        <header class="topbar">
          <div class="topbar-inner">
            <a class="brand" href="/"><span class="brand-mark" aria-hidden="true">◆</span> asynccode</a>
            {{#user}}
            <nav class="nav" aria-label="Main">
              <a href="/"{{#nav_tasks}} aria-current="page"{{/nav_tasks}}>Tasks</a>
              <a href="/tasks/new"{{#nav_new}} aria-current="page"{{/nav_new}}>New task</a>
              <a href="/credits"{{#nav_credits}} aria-current="page"{{/nav_credits}}>Credits</a>
            </nav>
            <div class="account">
              {{#avatar_url}}<img class="avatar" src="{{avatar_url}}" alt="" width="20" height="20">{{/avatar_url}}
              <span class="login">@{{login}}</span>
              <form method="post" action="/logout"><button class="btn btn-small" type="submit">Sign out</button></form>
            </div>
            {{/user}}
            {{^user}}<a class="btn btn-small" href="/login">Sign in with GitHub</a>{{/user}}
          </div>
        </header>
        <main id="main" class="container" tabindex="-1">
        {{$main}}{{/main}}
        </main>
        <footer class="footer container"><p>asynccode: coding agents on your own servers.</p></footer>
        </body>
        </html>

        """

    static let landingTemplate = """
        {{<layout}}{{$main}}
        <section class="hero" aria-labelledby="hero-title">
          <h1 id="hero-title">Coding agents that answer on GitHub</h1>
          <p class="lead">Comment <code>/asynccode fix the readme</code> on an issue and a coding agent runs on this server,
          pushes a branch and opens a pull request. Sign in to start tasks and watch them live.</p>
          {{#sign_in_problem}}<p class="flash flash-error" role="alert">{{sign_in_problem}}</p>{{/sign_in_problem}}
          <p><a class="btn btn-primary btn-large" href="/login">Sign in with GitHub</a></p>
        </section>
        {{/main}}{{/layout}}
        """

    static let problemTemplate = """
        {{<layout}}{{$main}}
        <section class="blankslate" aria-labelledby="problem-title">
          <h1 id="problem-title">{{heading}}</h1>
          <p>{{detail}}</p>
          <p><a href="/">Back to your tasks</a></p>
        </section>
        {{/main}}{{/layout}}
        """
}
