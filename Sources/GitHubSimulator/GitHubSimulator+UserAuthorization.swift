import Foundation

// MARK: "Sign in with GitHub": setting up and inspecting users' authorizations of Apps

extension GitHubSimulator {
    /// Registers an App's callback URLs: `/login/oauth/authorize` then accepts only these as `redirect_uri` (and
    /// uses the first when none is given). With none registered (the default) any `redirect_uri` is accepted.
    public func setCallbackURLs(appID: Int64, _ urls: [String]) {
        store.withState { $0.apps[appID]?.callbackURLs = urls }
    }

    /// Signs `login` in to the simulated github.com in "the browser" (nil: signed out). The authorize page
    /// approves for this user at once; without one it shows a sign-in page (200). A `login` query parameter on
    /// the authorize URL overrides it.
    public func setSignedInUser(_ login: String?) {
        store.withState { $0.signedInUser = login }
    }

    /// Makes the user click "Cancel" on the authorize page: it redirects with `error=access_denied` (until set back).
    public func setAuthorizationDenied(_ denied: Bool) {
        store.withState { $0.authorizationDenied = denied }
    }

    /// Sets the `name` and `email` that `GET /user` shows for `login` (both null by default).
    public func setUserProfile(login: String, name: String?, email: String? = nil) {
        store.withState { state in
            state.userProfiles[login.lowercased()] = SimulatedUserProfile(name: name, email: email)
            state.knownUsers.insert(login)
        }
    }

    /// Every approval on the authorize page, oldest first.
    public var oauthAuthorizations: [SimulatedOAuthAuthorization] { store.withState { $0.oauthAuthorizations } }

    /// Every user access token issued (by a code or a refresh), oldest first, with its state.
    public var userTokens: [SimulatedUserToken] { store.withState { $0.userTokens } }

    /// How many times `login`'s tokens were refreshed (successful refresh-token grants), for one App or all.
    public func userTokenRefreshCount(login: String, appID: Int64? = nil) -> Int {
        store.withState { state in
            if let appID { return state.userTokenRefreshes[SimulatorStore.State.userKey(appID: appID, login: login)] ?? 0 }
            return state.userTokenRefreshes.filter { $0.key.hasSuffix("/\(login.lowercased())") }.values.reduce(0, +)
        }
    }

    /// Makes `login`'s user access tokens (of every App) expire now, on the simulator's clock; their refresh
    /// tokens keep working unless `includingRefreshTokens`.
    public func expireUserTokens(login: String, includingRefreshTokens: Bool = false) {
        let past = configuration.clock().addingTimeInterval(-1)
        store.withState { state in
            for index in state.userTokens.indices where state.userTokens[index].login.lowercased() == login.lowercased() {
                state.userTokens[index].expiresAt = min(state.userTokens[index].expiresAt, past)
                if includingRefreshTokens {
                    state.userTokens[index].refreshTokenExpiresAt = min(state.userTokens[index].refreshTokenExpiresAt, past)
                }
            }
        }
    }

    /// The user revokes the App's authorization (Settings → Applications → Revoke): every access and refresh token
    /// the user holds for the App stops working (401 "Bad credentials", `bad_refresh_token`), codes not yet
    /// exchanged too, and GitHub sends the `github_app_authorization` webhook (`action: revoked`, `sender`: the
    /// user; no installation). Returns the delivery.
    @discardableResult
    public func revokeUserAuthorization(login: String, appID: Int64) async throws -> SimulatedDelivery {
        let api = SimulatorAPI(store: store, configuration: configuration, webhooks: webhooks)
        let sender = store.withState { state in
            let wanted = login.lowercased()
            for index in state.userTokens.indices where state.userTokens[index].appID == appID && state.userTokens[index].login.lowercased() == wanted {
                state.userTokens[index].revoked = true
            }
            state.oauthCodes = state.oauthCodes.filter { !($0.value.appID == appID && $0.value.login.lowercased() == wanted) }
            return api.simpleUserJSON(login, state: state)
        }
        return try await deliverWebhook(event: "github_app_authorization", payload: ["action": "revoked", "sender": sender],
                                        installationID: nil, repositoryID: nil)
    }
}

extension GitHubSimulator {
    /// Returns the App with `id`, as the simulator holds it now (its callback URLs, client secret…).
    public func app(id: Int64) -> SimulatedApp? {
        store.withState { $0.apps[id] }
    }
}
