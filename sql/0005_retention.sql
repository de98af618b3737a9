-- Data retention (`mutt retention`, and `mutt control` on a schedule).
--
-- The event audit is archived by partition, not by row: a month whose whole range is past
-- the policy is DETACHed from event_audit_log and ATTACHed to event_audit_log_archive
-- (MUTT v2.5's name, here partitioned by month like its source), a catalogue operation
-- whatever the month's size. The privileged steps are SECURITY DEFINER functions owned by
-- the migrating user and executable by mutt_retention only; each enforces MUTT's minimum
-- policy itself, so that no setting, bug or session can archive or drop younger data.

-- MUTT v2.5's archive was a plain table with archive columns; it is kept, renamed, with
-- its rows (see ops/runbooks/retention.md).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = current_schema() AND c.relname = 'event_audit_log_archive'
                 AND c.relkind = 'r') THEN
        ALTER TABLE event_audit_log_archive RENAME TO event_audit_log_archive_v2;
    END IF;
END $$;

-- Same columns as event_audit_log (ATTACH requires it), no defaults: nothing inserts here.
CREATE TABLE IF NOT EXISTS event_audit_log_archive (
    LIKE event_audit_log INCLUDING CONSTRAINTS INCLUDING INDEXES
) PARTITION BY RANGE (event_timestamp);

-- One row per retention run that changed or could have changed something (dry runs are
-- not recorded): what it did, for the status endpoint and the metrics.
CREATE TABLE IF NOT EXISTS retention_runs (
    id          BIGSERIAL PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    run_by      VARCHAR(255) NOT NULL,
    report      JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_retention_runs_finished ON retention_runs (finished_at DESC);

-- The range of a partition of `parent`, from its bound expression; NULL for DEFAULT.
CREATE OR REPLACE FUNCTION mutt_partition_range(part regclass, OUT lo timestamptz, OUT hi timestamptz)
LANGUAGE sql STABLE
AS $$
    SELECT m[1]::timestamptz, m[2]::timestamptz
    FROM (SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid),
                              'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') AS m
          FROM pg_class c WHERE c.oid = part) b
$$;

-- The monthly partitions of `parent` with their ranges and row estimates, oldest first.
CREATE OR REPLACE FUNCTION mutt_partitions(parent regclass)
RETURNS TABLE (name text, lo timestamptz, hi timestamptz, rows_estimate bigint)
LANGUAGE sql STABLE
AS $$
    SELECT c.relname::text, r.lo, r.hi, greatest(c.reltuples, 0)::bigint
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL mutt_partition_range(c.oid) r
    WHERE i.inhparent = parent AND r.lo IS NOT NULL
    ORDER BY r.lo
$$;

-- Moves one monthly partition of event_audit_log into the archive. Refuses a month that
-- ends less than 30 days ago (MUTT's minimum event-audit policy), and rolls back unless
-- the archive then holds exactly the rows the partition held. Returns the row count.
CREATE OR REPLACE FUNCTION mutt_archive_event_audit_partition(part text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    r      record;
    before bigint;
    after  bigint;
BEGIN
    SELECT p.lo, p.hi INTO r FROM mutt_partitions('event_audit_log') p WHERE p.name = part;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is not a monthly partition of event_audit_log', part
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF r.hi > now() - interval '30 days' THEN
        RAISE EXCEPTION '% ends at %: event audit rows are kept at least 30 days', part, r.hi
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('SELECT count(*) FROM %I', part) INTO before;
    EXECUTE format('ALTER TABLE event_audit_log DETACH PARTITION %I', part);
    EXECUTE format('ALTER TABLE event_audit_log_archive ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, r.lo, r.hi);
    SELECT count(*) INTO after FROM event_audit_log_archive
        WHERE event_timestamp >= r.lo AND event_timestamp < r.hi;
    IF after <> before THEN
        RAISE EXCEPTION 'archiving % would change its rows (% before, % after)', part, before, after;
    END IF;
    RETURN before;
END $$;

-- Drops one monthly partition of the archive. Refuses a month that ends less than 365
-- days ago. Returns the row count it held.
CREATE OR REPLACE FUNCTION mutt_drop_event_audit_archive_partition(part text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    r    record;
    held bigint;
BEGIN
    SELECT p.lo, p.hi INTO r FROM mutt_partitions('event_audit_log_archive') p WHERE p.name = part;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is not a monthly partition of event_audit_log_archive', part
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF r.hi > now() - interval '365 days' THEN
        RAISE EXCEPTION '% ends at %: archived rows are kept at least 365 days', part, r.hi
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('SELECT count(*) FROM %I', part) INTO held;
    EXECUTE format('ALTER TABLE event_audit_log_archive DETACH PARTITION %I', part);
    EXECUTE format('DROP TABLE %I', part);
    RETURN held;
END $$;

-- Creating partitions needs the owner too: the retention run (as mutt_retention) and the
-- alerters (as mutt_app, for a row far in the future or past) create them through these.
ALTER FUNCTION mutt_ensure_event_audit_partition(date) SECURITY DEFINER;
ALTER FUNCTION mutt_ensure_event_audit_partition(date) SET search_path = public, pg_temp;
ALTER FUNCTION mutt_ensure_event_audit_partitions(int, int) SECURITY DEFINER;
ALTER FUNCTION mutt_ensure_event_audit_partitions(int, int) SET search_path = public, pg_temp;

REVOKE ALL ON FUNCTION mutt_archive_event_audit_partition(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mutt_drop_event_audit_archive_partition(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mutt_ensure_event_audit_partition(date) FROM PUBLIC;
REVOKE ALL ON FUNCTION mutt_ensure_event_audit_partitions(int, int) FROM PUBLIC;

DO $$
BEGIN
    IF to_regrole('mutt_app') IS NOT NULL THEN
        GRANT SELECT ON retention_runs, event_audit_log_archive TO mutt_app;
        GRANT EXECUTE ON FUNCTION mutt_ensure_event_audit_partition(date) TO mutt_app;
    END IF;
    IF to_regrole('mutt_retention') IS NOT NULL THEN
        GRANT SELECT ON event_audit_log, event_audit_log_archive, retention_runs TO mutt_retention;
        GRANT INSERT ON retention_runs, config_audit_log TO mutt_retention;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO mutt_retention;
        GRANT EXECUTE ON FUNCTION
            mutt_archive_event_audit_partition(text),
            mutt_drop_event_audit_archive_partition(text),
            mutt_ensure_event_audit_partition(date),
            mutt_ensure_event_audit_partitions(int, int)
            TO mutt_retention;
    END IF;
END $$;

-- A retention run is audited like any other change, as operation RETAIN; the remediation
-- loop's parking of dead letters as PARK.
ALTER TABLE config_audit_log DROP CONSTRAINT IF EXISTS config_audit_log_operation_check;
ALTER TABLE config_audit_log ADD CONSTRAINT config_audit_log_operation_check
    CHECK (operation IN ('CREATE', 'UPDATE', 'DELETE', 'REPLAY', 'PURGE', 'ROTATE', 'REVOKE',
                         'EXPIRE', 'RETAIN', 'PARK')) NOT VALID;
