-- Which process configuration lists which model (issue 18, item 10). Several `serve`/`worker` processes
-- may share one database with different agent files: each registers its models under its own source
-- (host name and agent file path) and, at start, drops only its own registrations of models its file no
-- longer lists. A model is active while at least one source lists it, so processes no longer mark each
-- other's models inactive.
CREATE TABLE ai_model_sources (
    model_id bigint NOT NULL REFERENCES ai_models (id) ON DELETE CASCADE,
    source text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, model_id)
);
CREATE INDEX ai_model_sources_model ON ai_model_sources (model_id);
