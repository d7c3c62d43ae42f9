import Foundation
import Hummingbird

/// `GET /credits`: the balances and ledgers the user may see, by the rule of `GET /api/credits`: their own account,
/// and the accounts owning repositories they administer (``APIController/creditAccounts(_:)``). A ledger entry
/// (`credits.updated`) makes the script read the page again and swap in the balances and ledgers.
extension PagesController {
    /// The ledger entries shown per account (the newest).
    static let ledgerEntries = 100

    func creditsPage(_ caller: Caller) async throws -> Response {
        let after = try await lastEventID()
        var accounts: [[String: Any]] = []
        for login in try await api.creditAccounts(caller) {
            guard let account = try await api.ledger.account(login) else { continue }
            let entries = try await api.ledger.history(accountID: account.accountID, limit: Self.ledgerEntries).map { entry -> [String: Any] in
                let amount = APIController.credits(entry.amount)
                var item: [String: Any] = ["amount": amount, "kind": entry.type, "reason": entry.description,
                                           "at": APIStore.timestamp(entry.createdAt), "at_text": PageFormat.time(entry.createdAt),
                                           "negative": entry.amount < 0]
                if let task = entry.taskID { item["task_id"] = task }
                return item
            }
            accounts.append(["login": account.login, "balance": APIController.credits(account.credits),
                             "reserved": APIController.credits(account.reserved), "used": APIController.credits(account.totalUsed),
                             "entries": entries, "has_entries": !entries.isEmpty])
        }
        return renderer.page(.ok, "credits", title: "Credits", user: caller.user, nav: "credits",
                             ["accounts": accounts, "has_accounts": !accounts.isEmpty, "after": after])
    }
}

extension PageRenderer {
    static let creditsTemplate = """
        {{<layout}}{{$main}}
        <div class="page-head"><h1>Credits</h1></div>
        <p class="live-state" data-live-state role="status" hidden></p>
        <div id="credits" data-live="credits" data-after="{{after}}">
        {{#accounts}}
        <section class="box" aria-labelledby="account-{{login}}">
          <h2 class="box-title" id="account-{{login}}">@{{login}}</h2>
          <dl class="balances box-body">
            <div><dt>Balance</dt><dd>{{balance}}</dd></div>
            <div><dt>Reserved</dt><dd>{{reserved}}</dd></div>
            <div><dt>Used</dt><dd>{{used}}</dd></div>
          </dl>
          {{#has_entries}}
          <div class="table-wrap">
          <table class="ledger">
            <caption class="visually-hidden">Ledger of @{{login}}, newest first</caption>
            <thead><tr><th scope="col">When</th><th scope="col">Kind</th><th scope="col" class="num">Amount</th><th scope="col">Reason</th><th scope="col">Task</th></tr></thead>
            <tbody>
            {{#entries}}<tr><td class="nowrap"><time datetime="{{at}}">{{at_text}}</time></td><td>{{kind}}</td><td class="num{{#negative}} negative{{/negative}}">{{amount}}</td><td>{{reason}}</td><td>{{#task_id}}<a href="/tasks/{{task_id}}">#{{task_id}}</a>{{/task_id}}</td></tr>
            {{/entries}}
            </tbody>
          </table>
          </div>
          {{/has_entries}}
          {{^has_entries}}<p class="box-body muted">No ledger entries yet.</p>{{/has_entries}}
        </section>
        {{/accounts}}
        {{^has_accounts}}<section class="blankslate"><p>No credit account yet: one is opened when a task is first charged.</p></section>{{/has_accounts}}
        </div>
        {{/main}}{{/layout}}
        """
}
