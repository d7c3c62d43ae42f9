-- What signed-in users may see (issue 20): `user_repository_access` (also the executor's cache of GitHub's
-- collaborator-permission answers) is replaced per user from GitHub's lists of the user's installations and
-- their repositories, at sign-in and when older than 10 minutes; this records when.
ALTER TABLE accounts ADD COLUMN access_synced_at timestamptz;
