#!/usr/bin/env bash
# Property-based API tests: runs schemathesis against a live `mutt control` (TARGET
# `control`, the default: a fresh PostgreSQL database and a fresh Redis prefix, with
# schemas/control.openapi.yaml) or a live `mutt ingest` (TARGET `ingest`, with
# schemas/ingest.openapi.yaml), and fails on any 5xx and on any answer that the document
# does not describe (status code, content type, body schema, headers). For ingest, whose
# document is the contract of every sender, it also fails when a request the document
# allows is refused or one it forbids is accepted.
#
# Usage: .ci/schemathesis.sh [control|ingest] [st run arguments]
#
# Needs: target/debug/mutt (cargo build --bins), PostgreSQL on 127.0.0.1:5432 (user postgres,
# trust auth), Redis on 127.0.0.1:6379, python3 (3.11+) with venv, curl.
# Extra arguments go to `st run` (e.g. --seed 1234, --include-operation-id createRule).
# Environment: ST_MAX_EXAMPLES (default 30), ST_TIMEOUT (seconds for the whole schemathesis
# run, default 170), ST_VENV (default ~/.cache/mutt-schemathesis-$ST_VERSION).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=control
if [[ ${1:-} == control || ${1:-} == ingest ]]; then
  TARGET=$1
  shift
fi

ST_VERSION=4.32.5
ST_VENV=${ST_VENV:-$HOME/.cache/mutt-schemathesis-$ST_VERSION}
BIN=$ROOT/target/debug/mutt
SPEC=$ROOT/schemas/$TARGET.openapi.yaml
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-30}
ST_TIMEOUT=${ST_TIMEOUT:-170}
PG="psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qtA"
REDIS="redis-cli -h 127.0.0.1 -p 6379"

if [[ ! -x $BIN ]]; then
  echo "schemathesis.sh: $BIN is missing: run cargo build --bins first" >&2
  exit 1
fi

# --- schemathesis, in its own virtualenv
if ! "$ST_VENV/bin/st" --version 2>/dev/null | grep -q "version $ST_VERSION\$"; then
  echo "--- installing schemathesis $ST_VERSION into $ST_VENV"
  rm -rf "$ST_VENV"
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi
"$ST_VENV/bin/st" --version

# --- a scratch world: database, Redis prefix, ports, key
rand() { python3 -c 'import secrets; print(secrets.token_hex(8))'; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
ID=$(rand)
DB=mutt_st_$ID
PREFIX=mutt_st_$ID
PORT=$(free_port)
OPS_PORT=$(free_port)
while [[ $OPS_PORT == "$PORT" ]]; do OPS_PORT=$(free_port); done
API_KEY=st_$(rand)$(rand)
WORK=$(mktemp -d /tmp/mutt-schemathesis.XXXXXX)
LOG=$WORK/control.log
PID=
PROM_PID=

cleanup() {
  local rc=$?
  set +e
  if [[ -n $PROM_PID ]]; then kill "$PROM_PID" 2>/dev/null; wait "$PROM_PID" 2>/dev/null; fi
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
    kill "$PID"
    for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PID" 2>/dev/null && kill -9 "$PID"
    wait "$PID" 2>/dev/null
  fi
  $PG -d postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null
  $REDIS --scan --pattern "$PREFIX:*" | xargs -r $REDIS del >/dev/null
  if [[ $rc -ne 0 && -s $LOG ]]; then
    echo "--- last lines of the control log ($LOG)"
    tail -n 30 "$LOG"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "--- $TARGET on 127.0.0.1:$PORT, database $DB, prefix $PREFIX"
$PG -d postgres -c "CREATE DATABASE \"$DB\"" >/dev/null
export MUTT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export MUTT_REDIS_URL=redis://127.0.0.1:6379
export MUTT_PREFIX=$PREFIX
export MUTT_OPS_LISTEN=127.0.0.1:$OPS_PORT
export MUTT_API_KEY=$API_KEY
export MUTT_LOG_LEVEL=${MUTT_LOG_LEVEL:-warn}
BASE=http://127.0.0.1:$PORT

if [[ $TARGET == ingest ]]; then
  # Ingest needs Redis only. Every check: the document is the contract of every sender, so a
  # request it allows must be accepted and one it forbids refused.
  CHECKS=all
  export MUTT_INGEST_LISTEN=127.0.0.1:$PORT
  "$BIN" ingest >"$LOG" 2>&1 &
  PID=$!
  for i in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$OPS_PORT/ready" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || { echo "mutt ingest exited at start" >&2; exit 1; }
    [[ $i == 100 ]] && { echo "mutt ingest was not ready within 20 s" >&2; exit 1; }
    sleep 0.2
  done
else
  CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
  export MUTT_CONTROL_LISTEN=127.0.0.1:$PORT
  # A real Prometheus scraping the process, so that GET /api/v2/slo answers 200 (with
  # no_data while it has no history) instead of 503 for an absent Prometheus.
  PROM_PORT=$(free_port)
  mkdir -p "$WORK/prom"
  cat >"$WORK/prom/prometheus.yml" <<YAML
  global: {scrape_interval: 1s}
  scrape_configs:
    - job_name: mutt
      static_configs: [{targets: ['127.0.0.1:$OPS_PORT']}]
YAML
  prometheus --config.file="$WORK/prom/prometheus.yml" --storage.tsdb.path="$WORK/prom/data" \
    --web.listen-address=127.0.0.1:$PROM_PORT >"$WORK/prom/log" 2>&1 &
  PROM_PID=$!
  export MUTT_PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null && break; sleep 0.1; done
  # A webhook token, so that the secret-rotation endpoints have one secret to move through
  # its steps (the Redis and PostgreSQL of CI run without passwords: 409 not_configured).
  export MUTT_WEBHOOK_TOKEN=st_token_$(rand)
  "$BIN" migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log"; exit 1; }

  "$BIN" control >"$LOG" 2>&1 &
  PID=$!
  for i in $(seq 1 100); do
    curl -fsS -o /dev/null "$BASE/api/v2/version" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || { echo "mutt control exited at start" >&2; exit 1; }
    [[ $i == 100 ]] && { echo "mutt control did not answer GET /api/v2/version within 20 s" >&2; exit 1; }
    sleep 0.2
  done

  # Dead letters to page through, replay and purge: three per DLQ, with provenance and a payload
  # that does not decode (so the payload_error / payload_base64 branch is exercised). Their ids
  # start at 1700000000000-0, the example id of the document, so the examples phase finds one.
  for g in alerter forwarder; do
    src=$PREFIX:events
    [[ $g == forwarder ]] && src=$PREFIX:alerts
    for n in 0 1 2; do
      $REDIS XADD "$PREFIX:dlq:$g" "1700000000000-$n" source_stream "$src" source_id "1690000000000-$n" \
        group "$g" consumer schemathesis delivery_count 5 last_error "seeded by schemathesis.sh" \
        first_failure_ms 1700000000000 last_failure_ms 1700000000001 payload "not messagepack" >/dev/null
    done
  done

  # Event audit rows to query: one with JSON, one whose raw message is not JSON.
  $PG -d "$DB" -c "INSERT INTO event_audit_log
      (event_timestamp, hostname, matched_rule_id, handling_decision, forwarded_to_moog, raw_message,
       event_id, team_assignment, correlation_id)
    VALUES (now(), 'st-host-1', 1, 'Page_and_ticket', true, '{\"message\": \"link down\"}', 'st-e1', 'NETO', 'st-c1'),
           (now() - interval '40 days', 'st-host-2', NULL, NULL, NULL, 'not json', NULL, NULL, NULL)" >/dev/null
fi

# --- the run
echo "--- schemathesis against $BASE (at most $MAX_EXAMPLES examples per operation)"
set +e
# From the scratch directory: schemathesis and hypothesis write their caches to the working
# directory, which must not be the repository.
# One worker: with two, Python 3.11.7's ast module sometimes fails inside hypothesis
# ("AST constructor recursion depth mismatch", CPython gh-106905), an error of the tool.
(cd "$WORK" && timeout -k 10 "$ST_TIMEOUT" "$ST_VENV/bin/st" run "$SPEC" \
  --url "$BASE" \
  --header "X-API-Key: $API_KEY" \
  --checks "$CHECKS" \
  --max-examples "$MAX_EXAMPLES" \
  --request-timeout 10 \
  --workers 1 \
  --generation-database none \
  --report junit --report-junit-path "$WORK/junit.xml" \
  "$@")
ST_RC=$?
set -e
[[ $ST_RC -eq 124 ]] && echo "schemathesis did not finish within ${ST_TIMEOUT}s" >&2
if ! kill -0 "$PID" 2>/dev/null; then
  echo "mutt $TARGET died during the run" >&2
  [[ $ST_RC -eq 0 ]] && ST_RC=1
fi
exit "$ST_RC"
