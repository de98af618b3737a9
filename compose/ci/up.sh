#!/usr/bin/env bash
# Starts the CI variant of the compose stack (compose/ci/docker-compose.ci.yml over
# compose/docker-compose.yml, project mutt-ci) and waits until it is ready; idempotent.
#
#   1. docker    installs docker.io, docker-compose and debootstrap when missing and starts
#                dockerd when `docker info` fails;
#   2. base      mutt-ci-base:<hash> (compose/ci/base.sh: present, else from the tarball
#                in target/compose-ci/cache/, else debootstrap);
#   3. binaries  cargo build --release --bins --locked;
#   4. image     mutt-ci:<hash>, the base plus the binaries (compose/ci/image.sh);
#   5. stack     writes target/compose-ci/stack.env, `docker-compose up -d --no-build`, and
#                waits until every service is healthy and the one-shots (migrate, jaeger's
#                placeholder, the Grafana check) have exited 0.
#
# Fails after MUTT_CI_UP_TIMEOUT seconds (180) for step 5, printing `docker-compose ps` and
# the logs of what is not ready. Prints the time of each step. Stop it with
# compose/ci/down.sh.
#
# Settings: MUTT_BIND (127.0.0.1) the host address of the published ports;
# MUTT_CI_OTLP_PORT (4318) the port of the tests' OTLP receiver; MUTT_API_KEY
# (dev-change-me); POSTGRES_PASSWORD (mutt-dev); MUTT_CI_SUITE, MUTT_CI_MIRROR (base.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
. compose/ci/lib.sh

T0=$(now)
mkdir -p "$CI_OUT"

t=$(now)
ensure_docker
phase docker "$t"

t=$(now)
BASE=$(bash "$CI_DIR/base.sh" --tag)
if docker image inspect "$BASE" >/dev/null 2>&1; then how=cached
elif [ -s "$CI_OUT/cache/mutt-ci-base-${BASE#*:}.tar" ]; then how="imported from target/compose-ci/cache"
else how=debootstrap
fi
BASE=$(bash "$CI_DIR/base.sh")
phase base "$t" "$how, $BASE"

t=$(now)
cargo build --release --bins --locked -q
phase binaries "$t" "cargo build --release --bins"

t=$(now)
IMAGE=$(bash "$CI_DIR/image.sh" "$BASE")
phase image "$t" "$IMAGE"

t=$(now)
BIND=${MUTT_BIND:-127.0.0.1}
OTLP_PORT=${MUTT_CI_OTLP_PORT:-4318}
# The address host.docker.internal (host-gateway) resolves to: the default bridge's gateway.
GATEWAY=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null || true)
[ -n "$GATEWAY" ] || GATEWAY=$(ip -4 -o addr show docker0 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')
[ -n "$GATEWAY" ] || die "cannot find the docker0 bridge's address (host-gateway)"

# Published ports (the base file's; an override cannot move them, see the override's
# header): refuse to start over something else that listens there. Skipped when this
# project already runs, as then they are its own.
if [ -z "$(docker ps -q --filter "label=com.docker.compose.project=$CI_PROJECT")" ]; then
  for p in 8080 8090 9000 9090 3000 16686; do
    if timeout 2 bash -c "exec 3<>/dev/tcp/$BIND/$p" 2>/dev/null; then
      die "$BIND:$p is taken by another process (see: ss -ltnp 'sport = :$p'); stop it, or" \
        "start the stack on another loopback address, e.g. MUTT_BIND=127.0.0.2"
    fi
  done
fi
if timeout 2 bash -c "exec 3<>/dev/tcp/$GATEWAY/$OTLP_PORT" 2>/dev/null; then
  log "warning: $GATEWAY:$OTLP_PORT already answers; the tests' OTLP receiver must bind it"
fi

ROOT=$PWD
cat > "$CI_ENV.part" <<EOF
# Written by compose/ci/up.sh: the running CI compose stack. Every docker-compose command
# against it: docker-compose --env-file $ROOT/$CI_ENV <command>
# (COMPOSE_PROJECT_NAME and COMPOSE_FILE below select the project and files; the images
# are interpolated from MUTT_IMAGE and MUTT_CI_BASE_IMAGE). Start new scale-outs with
# --no-build: e.g. up -d --no-build --no-deps --scale alerter=3 alerter. A container
# stopped by docker(-compose) kill stays down (restart: unless-stopped): start it again.
INGEST_URL=http://$BIND:8080
CONTROL_URL=http://$BIND:8090
SINK_URL=http://$BIND:9000
PROMETHEUS_URL=http://$BIND:9090
API_KEY=${MUTT_API_KEY:-dev-change-me}
OTLP_BIND=$GATEWAY:$OTLP_PORT
OTLP_ENDPOINT_IN_STACK=http://host.docker.internal:$OTLP_PORT
COMPOSE_PROJECT=$CI_PROJECT
COMPOSE_FILES=-f $ROOT/${CI_FILES[0]} -f $ROOT/${CI_FILES[1]}
COMPOSE_ENV_FILE=$ROOT/$CI_ENV
COMPOSE_NETWORK=${CI_PROJECT}_default
COMPOSE_PROJECT_NAME=$CI_PROJECT
COMPOSE_FILE=$ROOT/${CI_FILES[0]}:$ROOT/${CI_FILES[1]}
MUTT_IMAGE=$IMAGE
MUTT_CI_BASE_IMAGE=$BASE
MUTT_BIND=$BIND
MUTT_CI_OTLP_PORT=$OTLP_PORT
MUTT_API_KEY=${MUTT_API_KEY:-dev-change-me}
POSTGRES_PASSWORD=${POSTGRES_PASSWORD:-mutt-dev}
EOF
mv "$CI_ENV.part" "$CI_ENV"

TIMEOUT=${MUTT_CI_UP_TIMEOUT:-180}
DEADLINE=$(($(now) + TIMEOUT))
ONESHOTS=" migrate jaeger grafana "

# Prints `docker-compose ps`, then the state and the last logs of each container that is
# not ready, and fails.
report() {
  echo "--- docker-compose ps" >&2
  compose ps >&2 || true
  local id name
  for id in $(docker ps -aq --filter "label=com.docker.compose.project=$CI_PROJECT"); do
    if ! ready_line "$id" >/dev/null; then
      name=$(docker inspect -f '{{.Name}}' "$id")
      echo "--- ${name#/}: $(docker inspect -f '{{.State.Status}} exit={{.State.ExitCode}}{{if .State.Health}} health={{.State.Health.Status}}{{end}}' "$id")" >&2
      docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}check exit {{.ExitCode}}: {{.Output}}{{end}}{{end}}' "$id" | tail -n 6 >&2 || true
      docker logs --tail 60 "$id" >&2 2>&1 || true
    fi
  done
  die "$*"
}

# ready_line ID: prints "service state" and succeeds when that container is ready (healthy,
# or running without a healthcheck; a one-shot exited 0); exits the script when a one-shot
# failed.
ready_line() {
  local svc status code health
  read -r svc status code health < <(docker inspect -f \
    '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1")
  echo "$svc $status${health:+/$health}"
  if [[ $ONESHOTS == *" $svc "* ]]; then
    [ "$status" = exited ] && [ "$code" = 0 ]
  else
    [ "$status" = running ] && { [ "$health" = healthy ] || [ "$health" = none ]; }
  fi
}

log "docker-compose up -d (project $CI_PROJECT, timeout ${TIMEOUT} s)"
# up -d itself waits for the depends_on conditions (healthy, completed) of what it starts.
if ! timeout "$TIMEOUT" docker-compose --env-file "$PWD/$CI_ENV" -p "$CI_PROJECT" \
    -f "${CI_FILES[0]}" -f "${CI_FILES[1]}" up -d --no-build --remove-orphans; then
  report "docker-compose up failed or did not finish within $TIMEOUT s"
fi

SERVICES=$(compose config --services)
while :; do
  pending=()
  for svc in $SERVICES; do
    ids=$(docker ps -aq --filter "label=com.docker.compose.project=$CI_PROJECT" \
      --filter "label=com.docker.compose.service=$svc")
    [ -n "$ids" ] || { pending+=("$svc: no container"); continue; }
    for id in $ids; do
      line=$(ready_line "$id") && continue
      if [[ $ONESHOTS == *" $svc "* ]] && [[ $line == *" exited"* ]]; then
        report "one-shot $svc failed"
      fi
      pending+=("$line")
    done
  done
  [ ${#pending[@]} -eq 0 ] && break
  if [ "$(now)" -ge "$DEADLINE" ]; then
    report "not ready after $TIMEOUT s: ${pending[*]}"
  fi
  sleep 2
done
phase stack "$t" "up and ready"

phase total "$T0"
{ printf '%s\n' "${PHASES[@]}"; } > "$CI_OUT/timings.txt"
log "ready; $CI_ENV:"
grep -v '^#' "$CI_ENV" >&2
