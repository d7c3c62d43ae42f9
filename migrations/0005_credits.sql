-- Who pays and who decides: the credits ledger, reservations, usage limits, per-repository configuration.

-- The ledger decides the balance. Amounts are signed: a debit takes credits (negative), bonus, refund and
-- credit give them (a credit may be negative: an operator's correction). A trigger applies every row to
-- accounts.credits and accounts.total_credits_used, so balance = sum(ledger) whoever writes.
ALTER TABLE credit_transactions ADD CONSTRAINT credit_transactions_sign CHECK (
    (type = 'debit' AND amount <= 0) OR (type IN ('bonus', 'refund') AND amount >= 0) OR type = 'credit');

-- Accounts recorded before the ledger existed: their balance so far becomes an opening row.
INSERT INTO credit_transactions (account_id, type, amount, description)
SELECT a.id, CASE WHEN a.credits - COALESCE(l.total, 0) >= 0 THEN 'bonus' ELSE 'credit' END::credit_transaction_type,
       a.credits - COALESCE(l.total, 0), 'opening balance'
FROM accounts a
LEFT JOIN (SELECT account_id, sum(amount) AS total FROM credit_transactions GROUP BY account_id) l ON l.account_id = a.id
WHERE a.credits - COALESCE(l.total, 0) <> 0;

CREATE FUNCTION apply_credit_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET
        credits = credits + NEW.amount,
        total_credits_used = total_credits_used - CASE WHEN NEW.type IN ('debit', 'refund') THEN NEW.amount ELSE 0 END
    WHERE id = NEW.account_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER credit_transactions_apply AFTER INSERT ON credit_transactions
    FOR EACH ROW EXECUTE FUNCTION apply_credit_transaction();
CREATE TRIGGER credit_transactions_append_only BEFORE UPDATE OR DELETE ON credit_transactions
    FOR EACH ROW EXECUTE FUNCTION refuse_update();

-- New accounts start with 100 free credits, written as a bonus row (the balance starts at 0 and the
-- ledger trigger applies it).
ALTER TABLE accounts ALTER COLUMN credits SET DEFAULT 0;
CREATE FUNCTION grant_welcome_credits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO credit_transactions (account_id, type, amount, description)
    VALUES (NEW.id, 'bonus', 100, 'welcome credits');
    RETURN NEW;
END
$$;
CREATE TRIGGER accounts_welcome_credits AFTER INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION grant_welcome_credits();
CREATE INDEX credit_transactions_task ON credit_transactions (task_id) WHERE task_id IS NOT NULL;

-- A task's money: the `--budget` cap, the open reservation (NULL once settled or released), the usage
-- the agent reported, and when it was admitted past the usage limits.
ALTER TABLE tasks ADD COLUMN budget numeric(14, 4) CHECK (budget IS NULL OR budget > 0);
ALTER TABLE tasks ADD COLUMN credits_reserved numeric(14, 4);
ALTER TABLE tasks ADD COLUMN input_tokens bigint;
ALTER TABLE tasks ADD COLUMN output_tokens bigint;
ALTER TABLE tasks ADD COLUMN admitted_at timestamptz;
-- No new index on tasks: every claim rewrites each one. The limits' counts use tasks_requested_by_status
-- and tasks_repository_status.

ALTER TABLE task_analytics ADD COLUMN status task_status;
ALTER TABLE task_analytics ADD COLUMN credits_used numeric(14, 4) NOT NULL DEFAULT 0;
ALTER TABLE task_analytics ADD COLUMN lines_deleted integer NOT NULL DEFAULT 0;
ALTER TABLE task_analytics ADD COLUMN agent text;

ALTER TABLE ai_models ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE TRIGGER ai_models_updated_at BEFORE UPDATE ON ai_models FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- `.github/asynccode.yml` as read at a commit of the default branch (content NULL: no file there).
CREATE TABLE repository_configs (
    repository_id bigint NOT NULL REFERENCES repositories (id),
    commit_sha text NOT NULL,
    content text,
    fetched_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, commit_sha)
);
-- One comment per thread about an invalid file at a commit.
CREATE TABLE repository_config_warnings (
    repository_id bigint NOT NULL REFERENCES repositories (id),
    commit_sha text NOT NULL,
    issue_number bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, commit_sha, issue_number)
);

-- A label added to an issue: the executor checks it against the repository's trigger label.
ALTER TABLE control_commands DROP CONSTRAINT control_commands_verb_check;
ALTER TABLE control_commands ADD CONSTRAINT control_commands_verb_check
    CHECK (verb IN ('cancel', 'retry', 'status', 'help', 'invalid', 'label'));
