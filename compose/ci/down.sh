#!/usr/bin/env bash
# Stops and removes the CI compose stack (project mutt-ci): containers, including scaled-out
# ones, the network and the volumes (Redis, PostgreSQL and Prometheus data). The images stay,
# so that the next compose/ci/up.sh on this machine starts at once. Nothing to do when
# Docker is not installed or not running.
set -euo pipefail
cd "$(dirname "$0")/../.."
. compose/ci/lib.sh

if ! command -v docker-compose >/dev/null || ! docker info >/dev/null 2>&1; then
  log "no Docker engine: nothing to stop"
  exit 0
fi
t=$(now)
compose down --volumes --remove-orphans --timeout 10
rm -f "$CI_ENV"
phase down "$t"
