-- Sign in with GitHub (issue 20). User tokens are stored encrypted (AES-256-GCM, keys from
-- ASYNCCODE_ENCRYPTION_KEYS): each value is nonce ‖ ciphertext ‖ tag, sealed for its table, column and row,
-- with the id of the key beside it. Sessions and sign-in states are stored as SHA-256 hashes only.
ALTER TABLE accounts ADD COLUMN display_name text CHECK (display_name IS NULL OR length(display_name) <= 100);

CREATE TABLE user_tokens (
    account_id bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    access_token bytea NOT NULL,
    access_key_id text NOT NULL,
    access_expires_at timestamptz,
    refresh_token bytea,
    refresh_key_id text,
    refresh_expires_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_sessions (
    id_sha256 bytea PRIMARY KEY CHECK (length(id_sha256) = 32),
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX user_sessions_account ON user_sessions (account_id);
CREATE INDEX user_sessions_expires ON user_sessions (expires_at);

-- A sign-in in progress: the state's hash, the PKCE verifier (sealed), until it expires or is used once.
CREATE TABLE oauth_states (
    state_sha256 bytea PRIMARY KEY CHECK (length(state_sha256) = 32),
    verifier bytea NOT NULL,
    key_id text NOT NULL,
    expires_at timestamptz NOT NULL
);
