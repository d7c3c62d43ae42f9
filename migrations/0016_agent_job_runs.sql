-- Agents as Kubernetes Jobs (issue 22): the Job each agent run of a task was given, so that a worker taking over a
-- task whose worker died adopts the Job still running (same attempt, same name) instead of starting another, and
-- so that a task's attempts are numbered once. `snapshot` is the commit the pod was given (the checkout as the
-- agent starts on it): a Job is adopted only for the same commit.

CREATE TABLE agent_jobs (
    task_id bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt integer NOT NULL CHECK (attempt > 0),
    namespace text NOT NULL,
    name text NOT NULL,
    snapshot text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (task_id, attempt)
);
-- At most one Job of a task runs at a time.
CREATE UNIQUE INDEX agent_jobs_open ON agent_jobs (task_id) WHERE finished_at IS NULL;
