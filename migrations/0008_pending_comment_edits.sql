-- A progress comment's final body that GitHub has not taken yet (issue 18, item 6). The executor records
-- it before its final edit and clears it once GitHub accepts the edit; `CommentRepair` edits what is
-- left, with bounded exponential backoff, until GitHub takes it. One row per comment: a newer final
-- body replaces an older one.
CREATE TABLE pending_comment_edits (
    comment_id bigint PRIMARY KEY,
    task_id bigint REFERENCES tasks (id) ON DELETE CASCADE,
    owner_login text NOT NULL,
    repository_name text NOT NULL,
    repository_github_id bigint NOT NULL,
    installation_github_id bigint NOT NULL,
    body text NOT NULL,
    -- Failed edits so far (the executor's own tries count as one).
    attempts integer NOT NULL DEFAULT 0,
    -- When the next edit is due; a repairer claiming the row moves it past its lease.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_comment_edits_due ON pending_comment_edits (next_attempt_at);
