-- The queue's invariants.

-- One task runs at a time per issue or pull request: a second claim of the same thread fails here even
-- when two workers race past the claim query's NOT EXISTS check.
CREATE UNIQUE INDEX tasks_one_running_per_thread ON tasks (repository_id, issue_number) WHERE status = 'running';

-- The claim query's scan: pending tasks by priority, then age.
DROP INDEX tasks_claimable;
CREATE INDEX tasks_claimable ON tasks (priority DESC, created_at, id) INCLUDE (repository_id, issue_number, run_after)
    WHERE status = 'pending';
