#!/usr/bin/env bash
# Builds mutt-ci:<hash>, MUTT's image for the CI compose stack: the base image
# (compose/ci/base.sh) plus the release binaries target/release/mutt and muttdev, a non-root
# user 10001 and ENTRYPOINT mutt, as compose/Dockerfile's final stage. Nothing is pulled or
# downloaded: FROM is the local base image, the build context is a directory holding only
# the Dockerfile and the two binaries, and the classic builder is used (no BuildKit, no
# `# syntax=` frontend to fetch).
#
# Usage: compose/ci/image.sh BASE_TAG   (prints the tag on stdout)
# <hash> covers the base tag, the Dockerfile and the binaries: an unchanged build is reused.
# Run `cargo build --release --bins` first (compose/ci/up.sh does).
set -euo pipefail
cd "$(dirname "$0")/../.."
. compose/ci/lib.sh

BASE=${1:?usage: compose/ci/image.sh BASE_TAG}
CTX=$CI_OUT/image
for b in mutt muttdev; do
  [ -x "target/release/$b" ] || die "target/release/$b is missing: cargo build --release --bins"
done
rm -rf "$CTX"
mkdir -p "$CTX"
cp target/release/mutt target/release/muttdev "$CTX/"
cat > "$CTX/Dockerfile" <<EOF
FROM $BASE
RUN groupadd --system --gid 10001 mutt \\
 && useradd --system --uid 10001 --gid mutt --no-create-home --home-dir /nonexistent \\
      --shell /usr/sbin/nologin mutt
COPY mutt muttdev /usr/local/bin/
USER 10001:10001
EXPOSE 8080 8090 9464
ENTRYPOINT ["mutt"]
CMD ["--help"]
EOF
TAG=mutt-ci:$(cd "$CTX" && sha256sum Dockerfile mutt muttdev | sha256sum | cut -c1-16)
if docker image inspect "$TAG" >/dev/null 2>&1; then
  log "MUTT image $TAG present"
else
  log "building $TAG from $CTX"
  DOCKER_BUILDKIT=0 docker build --pull=false -q -t "$TAG" "$CTX" >/dev/null 2>"$CI_OUT/image-build.log" \
    || { cat "$CI_OUT/image-build.log" >&2; die "docker build failed"; }
  # Older builds are a copy of the binaries each: remove those no container uses (docker
  # refuses the others).
  docker images --format '{{.Repository}}:{{.Tag}}' mutt-ci | grep -vxF "$TAG" \
    | xargs -r docker rmi >/dev/null 2>&1 || true
fi
echo "$TAG"
