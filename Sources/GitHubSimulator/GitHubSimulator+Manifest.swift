import Foundation

/// A manifest posted to the App-creation page, waiting for its code to be exchanged.
struct PendingManifest: Sendable {
    var manifestJSON: String
    var owner: String
    var createdAt: Date
}

// GitHub's App manifest flow: the browser posts a manifest to `/settings/apps/new` (or
// `/organizations/{org}/settings/apps/new`), GitHub redirects to the manifest's `redirect_url` with a
// one-time `code` and the `state`, and the server exchanges the code at
// `POST /app-manifests/{code}/conversions` for the App's id, key and webhook secret.
extension SimulatorAPI {
    /// The web page a browser posts the manifest form to; answers GitHub's redirect (302).
    func handleManifestForm(segments: [String], query: [String: String], body: [UInt8]) -> SimResponse? {
        let owner: String
        switch segments.count {
        case 3 where segments == ["settings", "apps", "new"]:
            owner = "octocat"
        case 5 where segments[0] == "organizations" && Array(segments[2...]) == ["settings", "apps", "new"]:
            owner = segments[1]
        default:
            return nil
        }
        var form = URLComponents()
        form.percentEncodedQuery = String(decoding: body, as: UTF8.self).replacingOccurrences(of: "+", with: "%20")
        guard let text = form.queryItems?.first(where: { $0.name == "manifest" })?.value,
              let manifest = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            return .html(422, "Invalid GitHub App configuration: the manifest is missing or not JSON")
        }
        guard manifest["url"] is String else { return .html(422, "Invalid GitHub App configuration: url is required") }
        guard let redirect = manifest["redirect_url"] as? String, var location = URLComponents(string: redirect),
              location.scheme == "http" || location.scheme == "https" else {
            return .html(422, "Invalid GitHub App configuration: redirect_url must be an http(s) URL")
        }
        if let hook = manifest["hook_attributes"] as? [String: Any], !(hook["url"] is String) {
            return .html(422, "Invalid GitHub App configuration: hook_attributes.url is required")
        }
        let code = randomAlphanumeric(20).lowercased()
        store.withState { state in
            state.submittedManifests.append(text)
            state.manifestCodes[code] = PendingManifest(manifestJSON: text, owner: owner, createdAt: configuration.clock())
        }
        var items = location.queryItems ?? []
        items.append(URLQueryItem(name: "code", value: code))
        if let stateValue = query["state"] { items.append(URLQueryItem(name: "state", value: stateValue)) }
        location.queryItems = items
        return SimResponse(status: 302, headers: [("Location", location.string ?? redirect)])
    }

    /// `POST /app-manifests/{code}/conversions`: makes the App once per code (codes live one hour).
    func convertManifest(code: String) -> SimResponse {
        guard let keys = try? AppKeys.generate() else { return .message(500, "key generation failed") }
        let secret = randomAlphanumeric(40)
        return store.withState { state in
            guard let pending = state.manifestCodes.removeValue(forKey: code),
                  configuration.clock().timeIntervalSince(pending.createdAt) < 3600,
                  let manifest = (try? JSONSerialization.jsonObject(with: Data(pending.manifestJSON.utf8))) as? [String: Any] else {
                return .notFound
            }
            let name = manifest["name"] as? String ?? "asynccode"
            let slug = name.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }.reduce(into: "") { $0.append($1) }
            var app = state.registerApp(id: nil, slug: slug, name: name, clientID: nil, keys: keys)
            // The manifest's `callback_urls` become the App's registered callback URLs ("Sign in with GitHub").
            app.callbackURLs = manifest["callback_urls"] as? [String] ?? []
            state.apps[app.id] = app
            let hook = manifest["hook_attributes"] as? [String: Any]
            if let url = hook?["url"] as? String, hook?["active"] as? Bool ?? true {
                state.webhookURL = url
                state.webhookSecret = secret
            }
            let now = iso8601.string(from: configuration.clock())
            return .json(201, [
                "id": app.id, "slug": app.slug, "node_id": "A_\(app.id)", "name": app.name,
                "owner": userJSON(pending.owner), "description": manifest["description"] as? String ?? "",
                "external_url": manifest["url"] as? String ?? "", "html_url": "\(base)/apps/\(app.slug)",
                "created_at": now, "updated_at": now,
                "permissions": manifest["default_permissions"] as? [String: String] ?? [:],
                "events": manifest["default_events"] as? [String] ?? [],
                "client_id": app.clientID, "client_secret": app.clientSecret,
                "webhook_secret": hook == nil ? NSNull() : secret as Any, "pem": app.privateKeyPEM,
            ])
        }
    }
}

extension SimResponse {
    static func html(_ status: Int, _ text: String) -> SimResponse {
        SimResponse(status: status, headers: [("Content-Type", "text/html; charset=utf-8")], body: Array("<p>\(text)</p>\n".utf8))
    }
}

extension GitHubSimulator {
    /// Returns the manifests posted to the App-creation page, as JSON texts, oldest first.
    public var submittedManifests: [String] { store.withState { $0.submittedManifests } }

    /// Returns the installation page of an App made from a manifest (what GitHub links to).
    public func installURL(slug: String) -> String { "\(baseURL)/apps/\(slug)/installations/new" }
}
