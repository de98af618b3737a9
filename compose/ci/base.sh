#!/usr/bin/env bash
# Builds mutt-ci-base:<hash>, the one image of the CI compose stack (compose/ci/): a Debian
# root filesystem made on the host with debootstrap and turned into an image with
# `docker import`, because no container registry is reachable from a CI machine.
# Redis, PostgreSQL and Prometheus run the Debian binaries in it; the Grafana check runs its
# python3; MUTT's image (compose/ci/image.sh) is this plus the release binaries.
#
# <hash> covers this file (package list and every step below) and the Debian suite, so an
# edit here makes a new tag. Skipped when `docker image inspect` finds the tag; otherwise
# imported from target/compose-ci/cache/<tag>.tar when a run on this checkout made it;
# otherwise debootstrapped (about 3 min). Prints the tag on stdout.
#
# Needs root (debootstrap, chroot) and the Debian mirror ($MUTT_CI_MIRROR); the suite is
# $MUTT_CI_SUITE (bookworm).
set -euo pipefail
cd "$(dirname "$0")/../.."
. compose/ci/lib.sh

MIRROR=${MUTT_CI_MIRROR:-http://deb.debian.org/debian}
# What the CI services run: redis-server (redis-cli for its healthcheck), postgresql
# (pg_isready), prometheus, python3 + python3-yaml (the Grafana provisioning check),
# wget (Prometheus' healthcheck, as in the user stack), procps (ps/pgrep when debugging),
# ca-certificates. bash, coreutils, grep and passwd (useradd) are in minbase already.
PACKAGES=(redis-server postgresql prometheus python3 python3-yaml wget procps ca-certificates)

TAG=$(base_image_tag)
HASH=${TAG#*:}
CACHE_DIR=$CI_OUT/cache
TARBALL=$CACHE_DIR/mutt-ci-base-$HASH.tar

if [ "${1:-}" = --tag ]; then echo "$TAG"; exit 0; fi
ensure_docker

if docker image inspect "$TAG" >/dev/null 2>&1; then
  log "base image $TAG present"
  echo "$TAG"
  exit 0
fi

mkdir -p "$CACHE_DIR"
if [ ! -s "$TARBALL" ]; then
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  ROOT=$CI_OUT/rootfs-$HASH
  # Unmounts what debootstrap may have left mounted (it mounts proc and sys in the
  # target), then removes the tree; refuses to remove a tree that still has a mount.
  cleanup_root() {
    [ -d "$ROOT" ] || return 0
    local abs m
    abs=$(cd "$ROOT" && pwd -P)
    for m in $(awk -v r="$abs/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r); do
      umount -l "$m" || true
    done
    if awk -v r="$abs/" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
      log "mounts remain under $abs: not removing it"
      return 0
    fi
    rm -rf "$abs"
  }
  trap cleanup_root EXIT
  cleanup_root
  log "debootstrap $CI_SUITE minbase + ${PACKAGES[*]} from $MIRROR"
  debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    "$CI_SUITE" "$ROOT" "$MIRROR" > "$CI_OUT/debootstrap.log" 2>&1 \
    || { tail -n 30 "$CI_OUT/debootstrap.log" >&2; die "debootstrap failed (log: $CI_OUT/debootstrap.log)"; }

  # Shrink: package caches and lists (nothing installs at run time), documentation,
  # translations, the time-zone history that prometheus' old web console depends on
  # (218 MB of JSON), the cluster postgresql-common creates on install (the CI service
  # makes its own), and LLVM, which PostgreSQL only loads for JIT (the service runs with
  # jit=off).
  rm -rf "$ROOT"/var/cache/apt/* "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/* \
    "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
    "$ROOT"/usr/share/locale/* "$ROOT"/usr/share/javascript/moment-timezone/data \
    "$ROOT"/etc/postgresql/* "$ROOT"/var/lib/postgresql/*
  find "$ROOT"/usr/lib -name 'libLLVM*.so*' -delete -o -name 'libz3.so*' -delete \
    -o -name 'llvmjit*' -delete
  # Data directories the services run as their Debian users with; a fresh named volume
  # takes the owner and mode of the directory it is mounted on.
  chroot "$ROOT" /bin/sh -eu -c '
    install -d -o redis -g redis -m 0750 /data
    install -d -o prometheus -g prometheus -m 0750 /prometheus
    install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
    install -d -o postgres -g postgres -m 2775 /run/postgresql
  '
  log "packing the root filesystem"
  tar --numeric-owner -C "$ROOT" --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* \
    -cf "$TARBALL.part" .
  mv "$TARBALL.part" "$TARBALL"
  # A new hash makes the older tarballs useless.
  find "$CACHE_DIR" -maxdepth 1 -name 'mutt-ci-base-*.tar' ! -name "${TARBALL##*/}" -delete
  cleanup_root
  trap - EXIT
fi

log "importing $TARBALL as $TAG"
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["bash"]' \
  --message "mutt CI base $HASH: debootstrap $CI_SUITE minbase + ${PACKAGES[*]}" \
  "$TARBALL" "$TAG" >/dev/null
echo "$TAG"
