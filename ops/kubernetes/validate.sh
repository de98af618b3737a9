#!/usr/bin/env bash
# Renders ops/kubernetes/base and every overlay and validates every object: Kubernetes
# objects against Kubernetes 1.32's schemas (kubernetes-validate, pinned), KEDA objects
# against the KEDA v2.16.1 CRD schemas kept in ops/kubernetes/schemas, and MUTT's own rules
# (settings, probes, grace period, secret files, stream names). Exits non-zero on any
# invalid object. Run from anywhere; needs python3 (3.10+) with venv and PyPI.
#
#   ops/kubernetes/validate.sh
#
# The pinned packages (ops/kubernetes/tools/requirements.txt) go into a venv under the
# repository's target/ (ignored by git), reinstalled when the requirements change.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
req="$here/tools/requirements.txt"
venv="${MUTT_K8S_VENV:-$repo/target/k8s-validate-venv}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "validate.sh: installing $(grep -c '==' "$req") pinned packages into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$req"
  echo "$want" > "$stamp"
fi

# No __pycache__ in the work tree.
PYTHONDONTWRITEBYTECODE=1 exec "$venv/bin/python" "$here/tools/validate.py"
