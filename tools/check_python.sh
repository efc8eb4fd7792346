#!/usr/bin/env bash
# Fail early, with the fix, when the interpreter cannot make aiide's virtualenv.
set -euo pipefail
PY=${1:-python3}
if ! command -v "$PY" >/dev/null; then
  echo "aiide needs Python 3.10 or newer: install it (Debian/Ubuntu: sudo apt-get install python3 python3-venv)" >&2
  exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "aiide needs Python 3.10 or newer; $PY is $("$PY" --version 2>&1). Run: make PYTHON=python3.11 ..." >&2
  exit 1
fi
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "$PY cannot create virtualenvs. Debian/Ubuntu: sudo apt-get install python3-venv" >&2
  exit 1
fi
