-- Tasks started through the API (issue 20): source `api`. One without an issue gets minus its own id as
-- issue_number, a thread of its own (nothing on GitHub is numbered below 1).
ALTER TABLE tasks DROP CONSTRAINT tasks_source_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_source_check
    CHECK (source IN ('issue_comment', 'pull_request_review', 'pull_request_review_comment', 'label', 'ci_failure', 'api'));
