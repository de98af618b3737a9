-- Upgrading a MUTT v2.x database in place: monthly partitions beside MUTT v2's.
--
-- MUTT v2 created `event_audit_log_YYYY_MM` with date bounds (`FROM ('2026-11-01')`),
-- which the server reads in the session's time zone, so on a server that does not run in
-- UTC its months start at local midnight. MUTT's months start at UTC midnight: next to a v2
-- partition, the month MUTT adds would overlap it by the zone's offset (west of UTC, and
-- CREATE fails) or leave a gap of that size (east, and rows in it fall into DEFAULT). A
-- month is therefore made to meet its neighbours: a bound within a day of a neighbour's
-- bound is moved onto it. Should a month still overlap an existing partition (one made by
-- hand), it is not created and the DEFAULT partition keeps taking its rows: making a
-- partition never fails and never loses a row.
CREATE OR REPLACE FUNCTION mutt_ensure_event_audit_partition(month date)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    m_lo    timestamptz := (date_trunc('month', month::timestamp) AT TIME ZONE 'UTC');
    m_hi    timestamptz := ((date_trunc('month', month::timestamp) + interval '1 month') AT TIME ZONE 'UTC');
    part    text := format('event_audit_log_%s', to_char(month, 'YYYY_MM'));
    overlap text;
    moved   bigint;
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    SELECT coalesce(max(p.hi), m_lo) INTO m_lo FROM mutt_partitions('event_audit_log') p
        WHERE p.hi BETWEEN m_lo - interval '1 day' AND m_lo + interval '1 day';
    SELECT coalesce(min(p.lo), m_hi) INTO m_hi FROM mutt_partitions('event_audit_log') p
        WHERE p.lo BETWEEN m_hi - interval '1 day' AND m_hi + interval '1 day';
    SELECT p.name INTO overlap FROM mutt_partitions('event_audit_log') p
        WHERE p.lo < m_hi AND p.hi > m_lo
        ORDER BY p.lo LIMIT 1;
    IF overlap IS NOT NULL OR m_lo >= m_hi THEN
        RAISE NOTICE '% not created: % already covers part of its range', part, overlap;
        RETURN coalesce(overlap, part);
    END IF;
    PERFORM 1 FROM event_audit_log_default
        WHERE event_timestamp >= m_lo AND event_timestamp < m_hi LIMIT 1;
    IF NOT FOUND THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF event_audit_log FOR VALUES FROM (%L) TO (%L)',
            part, m_lo, m_hi);
        RETURN part;
    END IF;
    -- Writers block for the duration of the move: ATTACH needs this lock anyway.
    LOCK TABLE event_audit_log_default IN ACCESS EXCLUSIVE MODE;
    EXECUTE format(
        'CREATE TABLE %I (LIKE event_audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    EXECUTE format(
        'WITH m AS (DELETE FROM event_audit_log_default
                    WHERE event_timestamp >= %L AND event_timestamp < %L RETURNING *)
         INSERT INTO %I SELECT * FROM m', m_lo, m_hi, part);
    GET DIAGNOSTICS moved = ROW_COUNT;
    EXECUTE format(
        'ALTER TABLE event_audit_log ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        part, m_lo, m_hi);
    RAISE NOTICE 'created % and moved % rows into it from the default partition', part, moved;
    RETURN part;
END $$;
