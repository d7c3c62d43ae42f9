-- The executor: acknowledgements, cancellation, control commands with retries.

-- A worker acknowledging a task (eyes reaction and progress comment) holds it briefly so no other worker
-- acknowledges or starts it at the same moment: one progress comment per task.
ALTER TABLE tasks ADD COLUMN ack_owner text;
ALTER TABLE tasks ADD COLUMN ack_until timestamptz;
-- Set by `/asynccode cancel` on a running task; its worker polls it and stops the agent.
ALTER TABLE tasks ADD COLUMN cancel_requested_at timestamptz;
CREATE INDEX tasks_unacknowledged ON tasks (id) WHERE status = 'pending' AND progress_comment_id IS NULL;
CREATE INDEX tasks_pr_branch ON tasks (repository_id, pr_branch) WHERE pr_branch IS NOT NULL;

-- Control commands are claimed like tasks: a lease, and retries after transient GitHub failures.
ALTER TABLE control_commands ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE control_commands ADD COLUMN run_after timestamptz NOT NULL DEFAULT now();
ALTER TABLE control_commands ADD COLUMN lease_owner text;
ALTER TABLE control_commands ADD COLUMN lease_expires_at timestamptz;
