#!/bin/bash
# Archives one month of 1,000,000 event-audit rows and prints the time `mutt retention`
# took (BENCHMARKS.md, "Retention"). Needs the local PostgreSQL (trust auth); drops and
# recreates the database mutt_rt1m. MUTT=path/to/mutt, EXTRA="--export DIR" to export too.
set -euo pipefail
export MUTT_DATABASE_URL=postgres://postgres@127.0.0.1:5432/mutt_rt1m MUTT_PREFIX=rt1m MUTT_LOG_LEVEL=warn
MUTT=${MUTT:-target/release/mutt}
EXTRA=${EXTRA:-}
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS mutt_rt1m" 2>/dev/null
$MUTT migrate >/dev/null 2>&1
psql -h 127.0.0.1 -U postgres -d mutt_rt1m -q -c "SELECT mutt_ensure_event_audit_partition((date_trunc('month', now()) - interval '6 months')::date)" -c "INSERT INTO event_audit_log (event_timestamp, hostname, matched_rule_id, handling_decision, forwarded_to_moog, raw_message, event_id, correlation_id, team_assignment) SELECT date_trunc('month', now()) - interval '6 months' + make_interval(secs => g * 2.5), 'router-' || (g % 500), g % 40, 'Page_and_ticket', true, 'LINK-3-UPDOWN: Interface GigabitEthernet0/' || (g % 48) || ', changed state to down', 'ev-' || g, 'cid-' || (g/100), 'NETO' FROM generate_series(1, 1000000) g" -c "CHECKPOINT" >/dev/null
s=$(date +%s.%N)
# shellcheck disable=SC2086
$MUTT retention $EXTRA > /dev/null
e=$(date +%s.%N)
archived=$(psql -h 127.0.0.1 -U postgres -d mutt_rt1m -At -c "select count(*) from event_audit_log_archive")
echo "archived=$archived seconds=$(echo "$e - $s" | bc)"
