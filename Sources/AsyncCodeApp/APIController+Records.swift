import Accounting
import Foundation
import Hummingbird
import SignIn

/// `GET /api/pull-requests`, `GET /api/credits` and `GET /api/credits/{account}/transactions`.
///
/// Pull requests: the bot's, on repositories the user may read. Credits: the user's own account, and an
/// organization's (or another owner's) when the user is an admin of one of its repositories; any other account
/// answers 404.
extension APIController {
    func addRecordRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/api/pull-requests") { request, context in
            await session.respond(request, context) { signIn in
                let caller = try await session.caller(request, signIn)
                try await refreshAccess(caller)
                return jsonResponse(.ok, ["pull_requests": try await store.pullRequests(accountID: caller.user.accountID)])
            }
        }
        router.get("/api/credits") { request, context in
            await session.respond(request, context) { signIn in
                let caller = try await session.caller(request, signIn)
                var accounts: [[String: Any]] = []
                for login in try await creditAccounts(caller) {
                    guard let account = try await ledger.account(login) else { continue }
                    accounts.append(["account": account.login, "balance": Self.credits(account.credits), "reserved": Self.credits(account.reserved),
                                     "used": Self.credits(account.totalUsed)])
                }
                return jsonResponse(.ok, ["accounts": accounts])
            }
        }
        router.get("/api/credits/{account}/transactions") { request, context in
            await session.respond(request, context) { signIn in
                let caller = try await session.caller(request, signIn)
                let name = context.parameters.get("account") ?? ""
                guard try await creditAccounts(caller).contains(where: { $0.lowercased() == name.lowercased() }),
                      let account = try await ledger.account(name) else { throw Problem.notFound() }
                let entries = try await ledger.history(accountID: account.accountID, limit: 200).map { entry -> [String: Any] in
                    ["id": entry.id, "amount": Self.credits(entry.amount), "kind": entry.type, "reason": entry.description,
                     "task_id": entry.taskID ?? NSNull(), "created_at": APIStore.timestamp(entry.createdAt)]
                }
                return jsonResponse(.ok, ["transactions": entries])
            }
        }
    }

    /// Returns credits as the API writes them: a string with four decimals, such as `"12.5000"`.
    static func credits(_ amount: Decimal) -> String {
        var value = amount
        var rounded = Decimal()
        NSDecimalRound(&rounded, &value, 4, .plain)
        let formatter = NumberFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.numberStyle = .decimal
        formatter.usesGroupingSeparator = false
        formatter.minimumFractionDigits = 4
        formatter.maximumFractionDigits = 4
        return formatter.string(from: rounded as NSDecimalNumber) ?? "\(rounded)"
    }

    /// Returns the logins of the accounts whose credits the caller may see.
    func creditAccounts(_ caller: Caller) async throws -> [String] {
        Self.creditLogins(caller.user.login, try await accessible(caller, force: false))
    }

    /// The user's own account and the owners of the repositories they administer.
    static func creditLogins(_ login: String, _ repositories: [AccessibleRepository]) -> [String] {
        let admin = repositories.filter { $0.permission == "admin" }.compactMap { $0.fullName.split(separator: "/").first.map(String.init) }
        var logins = [login]
        for owner in admin where !logins.contains(where: { $0.lowercased() == owner.lowercased() }) { logins.append(owner) }
        return logins
    }
}
