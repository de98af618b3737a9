-- Control plane: versioned snapshots of the hot settings, and named API keys.

-- Every change of a hot setting stores the whole set of overrides as a new version. The
-- newest row is the current configuration; older rows are its history.
CREATE TABLE IF NOT EXISTS config_snapshots (
    version    BIGSERIAL PRIMARY KEY,
    "values"   JSONB NOT NULL,
    changed_by VARCHAR(100) NOT NULL,
    reason     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 digests of long random keys, never as text.
CREATE TABLE IF NOT EXISTS api_keys (
    id           BIGSERIAL PRIMARY KEY,
    name         VARCHAR(100) NOT NULL,
    key_hash     CHAR(64) NOT NULL UNIQUE,
    scopes       TEXT[] NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by   VARCHAR(100) NOT NULL,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    CHECK (scopes <@ ARRAY['ingest', 'read', 'write', 'admin']::TEXT[] AND cardinality(scopes) > 0)
);
-- One live key per name (a rotation keeps the old one until it expires: see below).
CREATE INDEX IF NOT EXISTS idx_api_keys_name ON api_keys (name);

-- Event audit queries by time.
CREATE INDEX IF NOT EXISTS idx_event_audit_time ON event_audit_log (event_timestamp DESC);
