-- Agents as Kubernetes Jobs (issue 22): what an agent's pod downloads (the checkout as a git bundle, the prompt)
-- and uploads (the change as a patch, the output tail), kept per task attempt, so that any of the bot's processes
-- can answer the pod (a worker that dies mid-Job is replaced by another, which adopts the Job). The pod
-- authenticates with tokens for its task and attempt only, stored as SHA-256 hashes: `fetch` may download,
-- `report` may upload, each until it expires.

CREATE TABLE agent_job_files (
    task_id bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt integer NOT NULL CHECK (attempt > 0),
    name text NOT NULL CHECK (name IN ('bundle', 'prompt', 'patch', 'output')),
    content bytea NOT NULL,
    sha256 text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, attempt, name)
);

CREATE TABLE agent_job_tokens (
    token_hash bytea PRIMARY KEY,
    task_id bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt integer NOT NULL CHECK (attempt > 0),
    scope text NOT NULL CHECK (scope IN ('fetch', 'report')),
    expires_at timestamptz NOT NULL
);
CREATE INDEX agent_job_tokens_task ON agent_job_tokens (task_id, attempt);
