-- Who may do what. Audit rows are immutable against the application itself.
--
-- MUTT's processes connect as a login role that is a member of mutt_app: it reads and
-- writes rules, hosts, teams, snapshots and keys, and may only append to (and read) the
-- audit tables. Only a member of mutt_retention may delete config audit rows, and only rows
-- older than the minimum retention (365 days), whatever it asks. Neither role owns a table,
-- so neither can disable the append-only triggers or drop a table: the owner (the user
-- that runs `mutt migrate`) can, which is why MUTT must not run as the owner in production.
-- See README.md, "Database roles".
--
-- Roles are global to the server. They are created only when the migrating user may
-- create roles; otherwise an administrator creates them (CREATE ROLE mutt_app NOLOGIN;
-- CREATE ROLE mutt_retention NOLOGIN;) and runs `mutt migrate` again to apply the grants.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
        -- Several databases of one server may migrate at once: whoever comes second finds
        -- the role there (or loses the race on the catalog's unique index).
        BEGIN
            CREATE ROLE mutt_app NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
        BEGIN
            CREATE ROLE mutt_retention NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    ELSE
        RAISE NOTICE 'mutt_app and mutt_retention not created: % may not create roles', current_user;
    END IF;
END $$;

DO $$
BEGIN
    IF to_regrole('mutt_app') IS NOT NULL THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO mutt_app', current_database());
        GRANT USAGE ON SCHEMA public TO mutt_app;
        GRANT SELECT, INSERT, UPDATE, DELETE
            ON alert_rules, development_hosts, device_teams, config_snapshots, api_keys
            TO mutt_app;
        -- Append and read only.
        GRANT SELECT, INSERT ON config_audit_log, event_audit_log TO mutt_app;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO mutt_app;
    END IF;
    IF to_regrole('mutt_retention') IS NOT NULL THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO mutt_retention', current_database());
        GRANT USAGE ON SCHEMA public TO mutt_retention;
        GRANT SELECT, DELETE ON config_audit_log TO mutt_retention;
    END IF;
END $$;

-- The config audit trail: UPDATE and TRUNCATE are refused to everyone; DELETE only to a
-- member of mutt_retention, and only for rows older than 365 days. (Before, any session
-- could `SET LOCAL mutt.retention = 'on'` and delete.)
CREATE OR REPLACE FUNCTION mutt_config_audit_append_only()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF to_regrole('mutt_retention') IS NULL
           OR NOT pg_has_role(current_user, 'mutt_retention', 'MEMBER') THEN
            RAISE EXCEPTION 'config_audit_log is append-only: only mutt_retention may delete'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF OLD.changed_at > now() - interval '365 days' THEN
            RAISE EXCEPTION 'config_audit_log rows are kept at least 365 days (row % is from %)',
                OLD.id, OLD.changed_at
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'config_audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
