#!/usr/bin/env bash
# Entrypoint of the CI stack's postgres service (Debian's PostgreSQL in mutt-ci-base, run
# as user postgres): what the upstream postgres image's entrypoint does for the user stack.
# On the first start (an empty data volume) it creates the cluster with the superuser
# `postgres` and POSTGRES_PASSWORD (scram-sha-256 over TCP, trust on the local socket, as
# upstream) and the database POSTGRES_DB; then it runs the server in the foreground.
set -euo pipefail

PGDATA=${PGDATA:-/var/lib/postgresql/data}
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
  echo "postgres.sh: initialising $PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  "$BIN/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" --encoding=UTF8 \
    --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  # initdb only allows loopback over TCP; the roles connect from other containers.
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  db=${POSTGRES_DB:-postgres}
  if [ "$db" != postgres ]; then
    # Single-user mode: no server, no socket, nothing can connect before it is done.
    echo "CREATE DATABASE \"$db\"" | "$BIN/postgres" --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "postgres.sh: cluster ready (database $db)"
fi

exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c jit=off \
  -c unix_socket_directories=/var/run/postgresql
