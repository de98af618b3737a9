# Shared by compose/ci/*.sh (sourced, not run). Paths are relative to the repository root,
# which every script cd's to first.

CI_DIR=compose/ci
# The CI run's own files, inside the repository's ignored target/.
CI_OUT=target/compose-ci
CI_PROJECT=mutt-ci
# The user stack and the CI override, in this order (paths in both resolve from compose/).
CI_FILES=(compose/docker-compose.yml compose/ci/docker-compose.ci.yml)

# Seconds since the epoch, for the phase timings.
now() { date +%s; }
# phase NAME START [NOTE]: prints "NAME: N s (NOTE)" and keeps it for the summary.
PHASES=()
phase() {
  local line="$1: $(($(now) - $2)) s${3:+ ($3)}"
  PHASES+=("$line")
  echo "=== $line" >&2
}

log() { echo "compose/ci: $*" >&2; }
die() { echo "compose/ci: error: $*" >&2; exit 1; }

# As .ci/test's apt_install: the package lists of a fresh machine may be stale or absent.
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

# Installs Docker, Compose 1.29 and debootstrap from Debian when missing, and starts dockerd
# when `docker info` fails (a CI machine has no init system to do it). Returns once the
# engine answers, or fails after 60 s with the end of its log.
ensure_docker() {
  local missing=()
  command -v docker >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
  fi
  docker info >/dev/null 2>&1 && return 0
  mkdir -p "$CI_OUT"
  log "starting dockerd (log: $CI_OUT/dockerd.log)"
  # setsid: the engine must outlive this script and not get its terminal's signals.
  setsid dockerd >"$CI_OUT/dockerd.log" 2>&1 < /dev/null &
  local i
  for i in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  tail -n 30 "$CI_OUT/dockerd.log" >&2 || true
  die "dockerd did not answer within 60 s"
}

# The Debian suite the base image is made from.
CI_SUITE=${MUTT_CI_SUITE:-bookworm}
# mutt-ci-base:<hash>: a content hash of base.sh (which holds the package list and every
# step that makes the image) and of the suite.
base_image_tag() {
  local h
  h=$( { echo "suite=$CI_SUITE"; cat "$CI_DIR/base.sh"; } | sha256sum | cut -c1-16)
  echo "mutt-ci-base:$h"
}

# The file every compose command of the CI project reads (--env-file): the images, the
# project name and files, the URLs. Written by up.sh.
CI_ENV=$CI_OUT/stack.env

# docker-compose for the CI project, with stack.env when up.sh has written it; without it
# (down.sh before any up) the images are placeholders, which is enough to find the
# project's containers and volumes.
compose() {
  local env=()
  if [ -f "$CI_ENV" ]; then
    env=(--env-file "$PWD/$CI_ENV")
  else
    export MUTT_IMAGE=${MUTT_IMAGE:-mutt-ci:none} MUTT_CI_BASE_IMAGE=${MUTT_CI_BASE_IMAGE:-mutt-ci-base:none}
  fi
  docker-compose "${env[@]}" -p "$CI_PROJECT" -f "${CI_FILES[0]}" -f "${CI_FILES[1]}" "$@"
}
