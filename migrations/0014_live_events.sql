-- Live events (issue 21): every change to a task, its pull request or a ledger writes a `task_events` row in
-- the same transaction, and the row's id is sent with NOTIFY (the id only: payloads are visible to every
-- database user). Readers follow the table by id.
--
-- Ids are final in order: a writer takes a shared transaction lock before its id is drawn, so a reader that
-- sees a gap below a visible id takes the same lock exclusively once (every id drawn before then belongs to a
-- finished transaction) and then knows the gap is a rollback, not an event still to come.

ALTER TABLE task_events
    ADD COLUMN kind text NOT NULL DEFAULT 'task.step',
    ADD COLUMN repository_id bigint,
    ADD COLUMN account_id bigint,
    ALTER COLUMN task_id DROP NOT NULL,
    ALTER COLUMN id DROP DEFAULT;
ALTER TABLE task_events ADD CONSTRAINT task_events_kind CHECK (kind IN (
    'task.status_updated', 'task.step', 'task.log', 'task.completed', 'pr.status_updated', 'credits.updated'));
UPDATE task_events e SET repository_id = t.repository_id FROM tasks t WHERE t.id = e.task_id AND e.repository_id IS NULL;
CREATE INDEX task_events_created ON task_events (created_at);

-- The class of the events lock (two-key advisory locks never meet the one-key locks used elsewhere).
CREATE FUNCTION task_events_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1163413061, 0);
    NEW.id := nextval('task_events_id_seq');
    IF NEW.repository_id IS NULL AND NEW.task_id IS NOT NULL AND NEW.kind <> 'credits.updated' THEN
        SELECT repository_id INTO NEW.repository_id FROM tasks WHERE id = NEW.task_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER task_events_stamp BEFORE INSERT ON task_events FOR EACH ROW EXECUTE FUNCTION task_events_stamp();

CREATE FUNCTION task_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('asynccode_events', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER task_events_notify AFTER INSERT ON task_events FOR EACH ROW EXECUTE FUNCTION task_events_notify();

-- A task's status: `task.status_updated`, or `task.completed` once it ends (completed, failed, cancelled).
CREATE FUNCTION tasks_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous text := CASE WHEN TG_OP = 'UPDATE' THEN OLD.status::text END;
BEGIN
    INSERT INTO task_events (task_id, repository_id, kind, step, data)
    VALUES (NEW.id, NEW.repository_id,
            CASE WHEN NEW.status IN ('completed', 'failed', 'cancelled') THEN 'task.completed' ELSE 'task.status_updated' END,
            'status:' || NEW.status::text,
            jsonb_strip_nulls(jsonb_build_object('status', NEW.status::text, 'previous', previous,
                'error', left(NEW.error, 500), 'pr_number', NEW.pr_number, 'pr_url', NEW.pr_url,
                'credits_used', NEW.credits_used::text)));
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_status_event AFTER INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION tasks_status_event();
CREATE TRIGGER tasks_status_changed_event AFTER UPDATE OF status ON tasks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION tasks_status_event();

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
