-- Live events (issue 21): every change to a task, its pull request or a ledger writes a `task_events` row in
-- the same transaction, and the row's id is sent with NOTIFY (the id only: payloads are visible to every
-- database user). Readers follow the table by id.
--
-- Ids are final in order: a writer takes a shared transaction lock before its ids are drawn, so a reader that
-- sees a gap below a visible id takes the same lock exclusively once (every id drawn before then belongs to a
-- finished transaction) and then knows the gap is a rollback, not an event still to come.

ALTER TABLE task_events
    ADD COLUMN kind text NOT NULL DEFAULT 'task.step',
    ADD COLUMN repository_id bigint,
    ADD COLUMN account_id bigint,
    ALTER COLUMN task_id DROP NOT NULL;
ALTER TABLE task_events ADD CONSTRAINT task_events_kind CHECK (kind IN (
    'task.status_updated', 'task.step', 'task.log', 'task.completed', 'pr.status_updated', 'credits.updated'));
UPDATE task_events e SET repository_id = t.repository_id FROM tasks t WHERE t.id = e.task_id AND e.repository_id IS NULL;
-- Pruning finds old rows by time; rows arrive in time order, so a BRIN index is enough and costs writers little.
CREATE INDEX task_events_created ON task_events USING brin (created_at);

-- Before a statement draws ids (the column's default, per row), it takes the shared lock (two-key advisory
-- locks never meet the one-key locks used elsewhere).
CREATE FUNCTION task_events_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1163413061, 0);
    RETURN NULL;
END
$$;
CREATE TRIGGER task_events_lock BEFORE INSERT ON task_events FOR EACH STATEMENT EXECUTE FUNCTION task_events_lock();

-- A task's event belongs to the task's repository (a ledger entry to its account only).
CREATE FUNCTION task_events_repository() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT repository_id INTO NEW.repository_id FROM tasks WHERE id = NEW.task_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER task_events_repository BEFORE INSERT ON task_events FOR EACH ROW
    WHEN (NEW.repository_id IS NULL AND NEW.task_id IS NOT NULL AND NEW.kind <> 'credits.updated')
    EXECUTE FUNCTION task_events_repository();

-- One notification per statement, carrying the newest id it wrote (the reader reads the table past its cursor).
CREATE FUNCTION task_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    newest bigint;
BEGIN
    SELECT max(id) INTO newest FROM inserted;
    IF newest IS NOT NULL THEN
        PERFORM pg_notify('asynccode_events', newest::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER task_events_notify AFTER INSERT ON task_events REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION task_events_notify();

-- A task's status: `task.status_updated`, or `task.completed` once it ends (completed, failed, cancelled). One
-- statement per statement on tasks (a claim of 32 tasks writes its 32 events at once).
CREATE FUNCTION tasks_status_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_events (task_id, repository_id, kind, step, data)
        SELECT n.id, n.repository_id, 'task.status_updated', 'status:' || n.status::text,
               jsonb_build_object('status', n.status::text, 'credits_used', n.credits_used::text)
        FROM new_rows n ORDER BY n.id;
    -- Most updates (leases, heartbeats) change no status: they write nothing, and take no lock.
    ELSIF EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE n.status IS DISTINCT FROM o.status) THEN
        INSERT INTO task_events (task_id, repository_id, kind, step, data)
        SELECT n.id, n.repository_id,
               CASE WHEN n.status IN ('completed', 'failed', 'cancelled') THEN 'task.completed' ELSE 'task.status_updated' END,
               'status:' || n.status::text,
               jsonb_strip_nulls(jsonb_build_object('status', n.status::text, 'previous', o.status::text,
                   'error', left(n.error, 500), 'pr_number', n.pr_number, 'pr_url', n.pr_url,
                   'credits_used', n.credits_used::text))
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status IS DISTINCT FROM o.status
        ORDER BY n.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_status_event AFTER INSERT ON tasks REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_status_events();
CREATE TRIGGER tasks_status_changed_event AFTER UPDATE ON tasks REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_status_events();

-- The bot's pull request opened, merged or closed.
CREATE FUNCTION pull_requests_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_events (task_id, repository_id, kind, step, data)
    VALUES (NEW.task_id, NEW.repository_id, 'pr.status_updated', 'pr:' || NEW.status::text,
            jsonb_build_object('number', NEW.number, 'status', NEW.status::text, 'url', NEW.url, 'title', left(NEW.title, 200)));
    RETURN NULL;
END
$$;
CREATE TRIGGER pull_requests_status_event AFTER INSERT ON pull_requests FOR EACH ROW EXECUTE FUNCTION pull_requests_status_event();
CREATE TRIGGER pull_requests_status_changed_event AFTER UPDATE OF status ON pull_requests
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION pull_requests_status_event();

-- A ledger entry (after credit_transactions_apply, so the balance is the new one).
CREATE FUNCTION credit_transactions_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_events (task_id, account_id, kind, step, data)
    SELECT NEW.task_id, a.id, 'credits.updated', 'credits:' || NEW.type::text,
           jsonb_build_object('account', a.login, 'amount', NEW.amount::text, 'kind', NEW.type::text, 'balance', a.credits::text)
    FROM accounts a WHERE a.id = NEW.account_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER credit_transactions_event AFTER INSERT ON credit_transactions
    FOR EACH ROW EXECUTE FUNCTION credit_transactions_event();
