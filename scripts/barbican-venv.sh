#!/usr/bin/env bash
# A real Barbican from PyPI in a virtualenv of its own (.venv-barbican by default), for the
# key manager tests (lbaas/testing/barbican.py starts it).  Idempotent: a venv that already
# holds the pinned release is left alone, so `make test` pays for it once.
set -euo pipefail
VENV=${1:-.venv-barbican}
VERSION=${BARBICAN_VERSION:-23.0.0}
marker="$VENV/.barbican-$VERSION"
[ -f "$marker" ] && exit 0
echo "creating $VENV with barbican $VERSION (once)"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "barbican==$VERSION"
touch "$marker"
