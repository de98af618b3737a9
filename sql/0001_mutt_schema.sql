-- MUTT schema: the tables of MUTT v2.x with their names and columns, plus the columns
-- MUTT 3 adds (each with a default, so that a MUTT v2 INSERT, ids included, still works).
-- Every statement is idempotent, so this migration also upgrades a v2 database in place.

-- Rules ------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS alert_rules (
    id              SERIAL PRIMARY KEY,
    match_string    TEXT,
    trap_oid        VARCHAR(255),
    syslog_severity INT,
    match_type      VARCHAR(20) NOT NULL DEFAULT 'contains',
    priority        INT NOT NULL DEFAULT 100,
    prod_handling   VARCHAR(100) NOT NULL,
    dev_handling    VARCHAR(100) NOT NULL,
    team_assignment VARCHAR(100) NOT NULL,
    is_active       BOOLEAN DEFAULT true
);
ALTER TABLE alert_rules ALTER COLUMN match_string TYPE TEXT;
ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS created_at TIMESTAMPTZ NOT NULL DEFAULT now();
ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS updated_at TIMESTAMPTZ NOT NULL DEFAULT now();
ALTER TABLE alert_rules DROP CONSTRAINT IF EXISTS alert_rules_syslog_severity_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_syslog_severity_check
    CHECK (syslog_severity IS NULL OR syslog_severity BETWEEN 0 AND 7);
ALTER TABLE alert_rules DROP CONSTRAINT IF EXISTS alert_rules_match_type_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_match_type_check
    CHECK (match_type IN ('contains', 'regex', 'oid_prefix'));
ALTER TABLE alert_rules DROP CONSTRAINT IF EXISTS alert_rules_check;
ALTER TABLE alert_rules DROP CONSTRAINT IF EXISTS alert_rules_match_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_match_check
    CHECK (match_string IS NOT NULL OR trap_oid IS NOT NULL);
CREATE INDEX IF NOT EXISTS idx_alert_rules_active_priority ON alert_rules (is_active, priority, id);

CREATE TABLE IF NOT EXISTS development_hosts (
    hostname VARCHAR(255) PRIMARY KEY
);
ALTER TABLE development_hosts ADD COLUMN IF NOT EXISTS created_at TIMESTAMPTZ NOT NULL DEFAULT now();

CREATE TABLE IF NOT EXISTS device_teams (
    hostname        VARCHAR(255) PRIMARY KEY,
    team_assignment VARCHAR(100) NOT NULL
);
ALTER TABLE device_teams ADD COLUMN IF NOT EXISTS created_at TIMESTAMPTZ NOT NULL DEFAULT now();

-- Event audit -------------------------------------------------------------------------
-- One row per decision: each handled event, and each unhandled meta-alert. Partitioned by
-- month of the event's own time; the DEFAULT partition takes whatever no monthly partition
-- covers, so an insert never fails for lack of a partition.
CREATE TABLE IF NOT EXISTS event_audit_log (
    id                BIGSERIAL,
    event_timestamp   TIMESTAMPTZ NOT NULL,
    hostname          VARCHAR(255) NOT NULL,
    matched_rule_id   INT,
    handling_decision VARCHAR(100),
    forwarded_to_moog BOOLEAN,
    raw_message       TEXT,
    PRIMARY KEY (id, event_timestamp)
) PARTITION BY RANGE (event_timestamp);

-- MUTT v2 refused to delete a rule that audit rows referenced (ON DELETE RESTRICT). Audit
-- rows now outlive their rule, keeping its id: drop any such foreign key.
DO $$
DECLARE c record;
BEGIN
    FOR c IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'event_audit_log'::regclass AND contype = 'f'
    LOOP
        EXECUTE format('ALTER TABLE event_audit_log DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$;
ALTER TABLE event_audit_log ALTER COLUMN matched_rule_id DROP NOT NULL;
ALTER TABLE event_audit_log ADD COLUMN IF NOT EXISTS event_id TEXT;
ALTER TABLE event_audit_log ADD COLUMN IF NOT EXISTS correlation_id VARCHAR(64);
ALTER TABLE event_audit_log ADD COLUMN IF NOT EXISTS team_assignment VARCHAR(100);
ALTER TABLE event_audit_log ADD COLUMN IF NOT EXISTS audited_at TIMESTAMPTZ NOT NULL DEFAULT now();

CREATE TABLE IF NOT EXISTS event_audit_log_default PARTITION OF event_audit_log DEFAULT;

-- The idempotency key: a redelivered or replayed event finds its row and adds none.
-- (A unique index on a partitioned table must include the partition key.)
CREATE UNIQUE INDEX IF NOT EXISTS event_audit_log_event_id_key
    ON event_audit_log (event_id, event_timestamp);
CREATE INDEX IF NOT EXISTS idx_event_audit_host_time ON event_audit_log (hostname, event_timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_event_audit_rule ON event_audit_log (matched_rule_id);
CREATE INDEX IF NOT EXISTS idx_event_audit_correlation ON event_audit_log (correlation_id);

-- Creates the monthly partition holding `month` (any date in it), in UTC. Rows that the
-- DEFAULT partition already holds for that month are moved into the new partition, in the
-- same transaction, so creating a partition late never fails and never loses a row.
CREATE OR REPLACE FUNCTION mutt_ensure_event_audit_partition(month date)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    lo    timestamptz := (date_trunc('month', month::timestamp) AT TIME ZONE 'UTC');
    hi    timestamptz := ((date_trunc('month', month::timestamp) + interval '1 month') AT TIME ZONE 'UTC');
    part  text := format('event_audit_log_%s', to_char(month, 'YYYY_MM'));
    moved bigint;
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    PERFORM 1 FROM event_audit_log_default
        WHERE event_timestamp >= lo AND event_timestamp < hi LIMIT 1;
    IF NOT FOUND THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF event_audit_log FOR VALUES FROM (%L) TO (%L)',
            part, lo, hi);
        RETURN part;
    END IF;
    -- Writers block for the duration of the move: ATTACH needs this lock anyway.
    LOCK TABLE event_audit_log_default IN ACCESS EXCLUSIVE MODE;
    EXECUTE format(
        'CREATE TABLE %I (LIKE event_audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    EXECUTE format(
        'WITH m AS (DELETE FROM event_audit_log_default
                    WHERE event_timestamp >= %L AND event_timestamp < %L RETURNING *)
         INSERT INTO %I SELECT * FROM m', lo, hi, part);
    GET DIAGNOSTICS moved = ROW_COUNT;
    EXECUTE format(
        'ALTER TABLE event_audit_log ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        part, lo, hi);
    RAISE NOTICE 'created % and moved % rows into it from the default partition', part, moved;
    RETURN part;
END $$;

-- Ensures partitions from `months_back` months ago to `months_ahead` months ahead.
CREATE OR REPLACE FUNCTION mutt_ensure_event_audit_partitions(months_back int, months_ahead int)
RETURNS SETOF text
LANGUAGE plpgsql
AS $$
DECLARE i int;
BEGIN
    FOR i IN -months_back .. months_ahead LOOP
        RETURN NEXT mutt_ensure_event_audit_partition(
            ((date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i)))::date);
    END LOOP;
END $$;

-- The partitions are made by `mutt migrate` after the last migration, with the newest
-- definition of these functions: here, a MUTT v2 database in a time zone west of UTC
-- would fail (see sql/0006_v2_upgrade.sql).

-- Config audit ------------------------------------------------------------------------
-- Who changed what, when and why. Rows are append-only: a trigger refuses UPDATE, and
-- DELETE unless the retention job says so for its transaction (see ops/runbooks).
CREATE TABLE IF NOT EXISTS config_audit_log (
    id             BIGSERIAL PRIMARY KEY,
    changed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    changed_by     VARCHAR(100) NOT NULL,
    operation      VARCHAR(10) NOT NULL,
    table_name     VARCHAR(50) NOT NULL,
    record_id      INT,
    old_values     JSONB,
    new_values     JSONB,
    reason         TEXT,
    correlation_id VARCHAR(36)
);
ALTER TABLE config_audit_log ALTER COLUMN record_id DROP NOT NULL;
ALTER TABLE config_audit_log ALTER COLUMN correlation_id TYPE VARCHAR(64);
ALTER TABLE config_audit_log ADD COLUMN IF NOT EXISTS record_key TEXT;
ALTER TABLE config_audit_log DROP CONSTRAINT IF EXISTS config_audit_log_operation_check;
ALTER TABLE config_audit_log ADD CONSTRAINT config_audit_log_operation_check
    CHECK (operation IN ('CREATE', 'UPDATE', 'DELETE', 'REPLAY', 'PURGE', 'ROTATE', 'REVOKE', 'EXPIRE'));
CREATE INDEX IF NOT EXISTS idx_config_audit_changed_at ON config_audit_log (changed_at DESC);
CREATE INDEX IF NOT EXISTS idx_config_audit_record ON config_audit_log (table_name, record_id);
CREATE INDEX IF NOT EXISTS idx_config_audit_key ON config_audit_log (table_name, record_key);
CREATE INDEX IF NOT EXISTS idx_config_audit_changed_by ON config_audit_log (changed_by);
CREATE INDEX IF NOT EXISTS idx_config_audit_correlation ON config_audit_log (correlation_id);

CREATE OR REPLACE FUNCTION mutt_config_audit_append_only()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('mutt.retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'config_audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS config_audit_log_append_only ON config_audit_log;
CREATE TRIGGER config_audit_log_append_only
    BEFORE UPDATE OR DELETE ON config_audit_log
    FOR EACH ROW EXECUTE FUNCTION mutt_config_audit_append_only();
DROP TRIGGER IF EXISTS config_audit_log_no_truncate ON config_audit_log;
CREATE TRIGGER config_audit_log_no_truncate
    BEFORE TRUNCATE ON config_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION mutt_config_audit_append_only();
