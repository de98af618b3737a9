-- The version of the API key set: every statement that changes api_keys bumps it, in the
-- changing transaction. The row lock serialises key changes, so versions follow commit
-- order, and the control plane publishes the keys to Redis with the version they were read
-- at: Redis keeps the newest and refuses an older set, so a slow publisher can never bring
-- a revoked key back.
CREATE TABLE IF NOT EXISTS api_key_version (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    version   BIGINT NOT NULL
);
INSERT INTO api_key_version (singleton, version) VALUES (true, 1) ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION mutt_bump_api_key_version()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE api_key_version SET version = version + 1;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS api_keys_version ON api_keys;
CREATE TRIGGER api_keys_version
    AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION mutt_bump_api_key_version();

DO $$
BEGIN
    IF to_regrole('mutt_app') IS NOT NULL THEN
        GRANT SELECT, UPDATE ON api_key_version TO mutt_app;
    END IF;
END $$;
