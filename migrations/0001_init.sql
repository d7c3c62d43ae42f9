-- asynccode: the whole schema. Tables later issues fill are created here too.

CREATE TYPE task_status AS ENUM ('pending', 'running', 'completed', 'failed', 'cancelled');
CREATE TYPE task_kind AS ENUM ('code', 'ask', 'plan', 'review', 'docs', 'debug');
CREATE TYPE subscription_tier AS ENUM ('free', 'pro', 'enterprise');
CREATE TYPE access_level AS ENUM ('admin', 'maintain', 'write', 'triage', 'read', 'none');
CREATE TYPE pull_request_status AS ENUM ('open', 'closed', 'merged', 'draft');
CREATE TYPE credit_transaction_type AS ENUM ('debit', 'credit', 'bonus', 'refund');

-- Keeps updated_at current on every UPDATE.
CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- GitHub users and organizations: installation owners and the people who ask for work.
CREATE TABLE accounts (
    id bigserial PRIMARY KEY,
    github_id bigint NOT NULL UNIQUE,
    login text NOT NULL,
    type text NOT NULL DEFAULT 'User',
    avatar_url text,
    credits numeric(14, 4) NOT NULL DEFAULT 100,
    total_credits_used numeric(14, 4) NOT NULL DEFAULT 0,
    subscription_tier subscription_tier NOT NULL DEFAULT 'free',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_login ON accounts (lower(login));

CREATE TABLE installations (
    id bigserial PRIMARY KEY,
    github_id bigint NOT NULL UNIQUE,
    account_id bigint REFERENCES accounts (id),
    repository_selection text CHECK (repository_selection IN ('all', 'selected')),
    suspended_at timestamptz,
    deleted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE repositories (
    id bigserial PRIMARY KEY,
    github_id bigint NOT NULL UNIQUE,
    installation_id bigint REFERENCES installations (id),
    full_name text NOT NULL,
    name text NOT NULL,
    owner_login text NOT NULL,
    description text,
    private boolean NOT NULL DEFAULT true,
    default_branch text,
    language text,
    html_url text,
    clone_url text,
    is_active boolean NOT NULL DEFAULT true,
    settings jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX repositories_installation ON repositories (installation_id);

-- The cache of GitHub's collaborator-permission answers.
CREATE TABLE user_repository_access (
    id bigserial PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id),
    repository_id bigint NOT NULL REFERENCES repositories (id),
    access_level access_level NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, repository_id)
);

-- The agents users may choose, synced from the YAML configuration.
CREATE TABLE ai_models (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    display_name text NOT NULL,
    provider text NOT NULL DEFAULT 'custom',
    description text,
    cost_per_token numeric(10, 8) NOT NULL DEFAULT 0,
    cost_per_minute numeric(10, 4) NOT NULL DEFAULT 0,
    max_tokens integer,
    capabilities jsonb NOT NULL DEFAULT '{}',
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasks (
    id bigserial PRIMARY KEY,
    repository_id bigint NOT NULL REFERENCES repositories (id),
    installation_id bigint NOT NULL REFERENCES installations (id),
    requested_by bigint NOT NULL REFERENCES accounts (id),
    issue_number bigint NOT NULL,
    is_pull_request boolean NOT NULL DEFAULT false,
    -- Where the command was written: issue_comment, pull_request_review, pull_request_review_comment or label.
    source text NOT NULL CHECK (source IN ('issue_comment', 'pull_request_review', 'pull_request_review_comment', 'label')),
    comment_id bigint,
    command_index integer NOT NULL DEFAULT 0 CHECK (command_index >= 0),
    source_url text,
    delivery_id text,
    kind task_kind NOT NULL DEFAULT 'code',
    status task_status NOT NULL DEFAULT 'pending',
    priority integer NOT NULL DEFAULT 2,
    agent text,
    prompt text NOT NULL DEFAULT '',
    chat_messages jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(chat_messages) = 'array'),
    target_branch text,
    pr_branch text,
    commit_hash text,
    pr_number bigint,
    pr_url text,
    git_diff text,
    git_patch text,
    changed_files jsonb NOT NULL DEFAULT '[]',
    error text,
    execution_metadata jsonb NOT NULL DEFAULT '{}',
    credits_used numeric(14, 4) NOT NULL DEFAULT 0,
    estimated_credits numeric(14, 4),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts > 0),
    run_after timestamptz NOT NULL DEFAULT now(),
    lease_owner text,
    lease_expires_at timestamptz,
    progress_comment_id bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    completed_at timestamptz,
    -- One comment can never make two tasks, whatever GitHub sends (redeliveries under new GUIDs included).
    CONSTRAINT tasks_one_per_command UNIQUE (repository_id, source, comment_id, command_index)
);
CREATE INDEX tasks_requested_by_status ON tasks (requested_by, status);
CREATE INDEX tasks_created_at ON tasks (created_at DESC);
CREATE INDEX tasks_repository_status ON tasks (repository_id, status);
CREATE INDEX tasks_thread ON tasks (repository_id, issue_number, created_at);
CREATE INDEX tasks_claimable ON tasks (priority DESC, created_at, id) WHERE status = 'pending';
CREATE INDEX tasks_leased ON tasks (lease_expires_at) WHERE status = 'running';

-- cancel, retry, status, help, and unparseable commands, for the executor to answer.
CREATE TABLE control_commands (
    id bigserial PRIMARY KEY,
    repository_id bigint NOT NULL REFERENCES repositories (id),
    installation_id bigint NOT NULL REFERENCES installations (id),
    requested_by bigint NOT NULL REFERENCES accounts (id),
    issue_number bigint NOT NULL,
    is_pull_request boolean NOT NULL DEFAULT false,
    source text NOT NULL,
    comment_id bigint,
    command_index integer NOT NULL DEFAULT 0,
    verb text NOT NULL CHECK (verb IN ('cancel', 'retry', 'status', 'help', 'invalid')),
    argument text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    result text,
    delivery_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    handled_at timestamptz,
    CONSTRAINT control_commands_one_per_command UNIQUE (repository_id, source, comment_id, command_index)
);
CREATE INDEX control_commands_pending ON control_commands (created_at) WHERE status = 'pending';

CREATE TABLE task_results (
    id bigserial PRIMARY KEY,
    task_id bigint NOT NULL REFERENCES tasks (id),
    kind text NOT NULL DEFAULT 'summary',
    content text NOT NULL DEFAULT '',
    exit_code integer,
    output_tail text,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_results_task ON task_results (task_id);

CREATE TABLE pull_requests (
    id bigserial PRIMARY KEY,
    task_id bigint REFERENCES tasks (id),
    repository_id bigint NOT NULL REFERENCES repositories (id),
    github_pr_id bigint NOT NULL UNIQUE,
    number bigint NOT NULL,
    title text NOT NULL,
    description text,
    source_branch text NOT NULL,
    target_branch text NOT NULL,
    status pull_request_status NOT NULL DEFAULT 'open',
    url text,
    merged_at timestamptz,
    closed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pull_requests_repository_status ON pull_requests (repository_id, status);
CREATE INDEX pull_requests_repository_number ON pull_requests (repository_id, number);

CREATE TABLE credit_transactions (
    id bigserial PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id),
    task_id bigint REFERENCES tasks (id),
    type credit_transaction_type NOT NULL,
    amount numeric(14, 4) NOT NULL,
    description text NOT NULL DEFAULT '',
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_transactions_account_created ON credit_transactions (account_id, created_at DESC);

CREATE TABLE task_analytics (
    id bigserial PRIMARY KEY,
    task_id bigint NOT NULL UNIQUE REFERENCES tasks (id),
    execution_time_ms bigint NOT NULL DEFAULT 0,
    tokens_used bigint NOT NULL DEFAULT 0,
    lines_of_code_generated integer NOT NULL DEFAULT 0,
    files_modified integer NOT NULL DEFAULT 0,
    error_count integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Append-only: the steps of a task, as its progress comment shows them.
CREATE TABLE task_events (
    id bigserial PRIMARY KEY,
    task_id bigint NOT NULL REFERENCES tasks (id),
    step text NOT NULL,
    detail text NOT NULL DEFAULT '',
    data jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_events_task ON task_events (task_id, id);

CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER task_events_append_only BEFORE UPDATE ON task_events FOR EACH ROW EXECUTE FUNCTION refuse_update();

-- Every verified delivery, kept for audit and replay; the GUID makes redeliveries harmless.
CREATE TABLE webhook_deliveries (
    id bigserial PRIMARY KEY,
    delivery_guid text NOT NULL UNIQUE,
    event text NOT NULL,
    action text,
    -- GitHub's ids as the payload gives them (the installation may not be recorded yet).
    installation_github_id bigint,
    repository_github_id bigint,
    outcome text NOT NULL CHECK (outcome IN ('queued', 'recorded', 'duplicate', 'ignored')),
    received_at timestamptz NOT NULL DEFAULT now(),
    payload bytea NOT NULL
);
CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at DESC);

CREATE TRIGGER accounts_updated_at BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER installations_updated_at BEFORE UPDATE ON installations FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER repositories_updated_at BEFORE UPDATE ON repositories FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER tasks_updated_at BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER pull_requests_updated_at BEFORE UPDATE ON pull_requests FOR EACH ROW EXECUTE FUNCTION set_updated_at();
