-- Automatic fixes of failed CI on the bot's own pull requests (issue 19). A `check_suite` or `workflow_run`
-- that failed on the head commit of an open pull request the bot opened makes a task of source `ci_failure`,
-- requested on behalf of whoever asked for that pull request. One head commit makes at most one such task,
-- whatever GitHub sends (redeliveries, several failing suites or workflows of one commit).
ALTER TABLE tasks DROP CONSTRAINT tasks_source_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_source_check
    CHECK (source IN ('issue_comment', 'pull_request_review', 'pull_request_review_comment', 'label', 'ci_failure'));
ALTER TABLE tasks ADD COLUMN ci_head_sha text CHECK (ci_head_sha IS NULL OR ci_head_sha ~ '^[0-9a-f]{40}$');
CREATE UNIQUE INDEX tasks_one_per_failed_commit ON tasks (repository_id, issue_number, ci_head_sha) WHERE ci_head_sha IS NOT NULL;
-- When the pull request's one "limit reached" comment was posted (`maxAutomaticFixes`).
ALTER TABLE pull_requests ADD COLUMN automatic_fix_limit_noticed_at timestamptz;
