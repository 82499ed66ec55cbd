#!/usr/bin/env bash
# Create .venv-keystone: a Keystone from PyPI that the tests start on loopback
# (lbaas/testing/keystone.py).  Idempotent: a venv whose stamp matches the
# pinned versions is left alone, so a second run costs a few milliseconds.
set -euo pipefail

VENV="${KEYSTONE_VENV:-.venv-keystone}"
# Pinned: a release that supports Python 3.11, the WSGI server it runs under, and the
# SQLAlchemy it was released with (2.1 leaves its SQLite writes "database is locked").
PACKAGES=(keystone==${KEYSTONE_VERSION:-27.0.0} gunicorn==23.0.0 "sqlalchemy>=2.0,<2.1")
STAMP="$VENV/.installed"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${PACKAGES[*]}" ]; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "${PACKAGES[@]}"
"$VENV/bin/keystone-manage" --version >/dev/null
echo "${PACKAGES[*]}" > "$STAMP"
