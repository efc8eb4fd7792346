#!/usr/bin/env bash
# Every test: lint, types, TypeScript, then Python (unit, integration, sandbox, browser).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.venv/bin}
export PATH="$PWD/$BIN:$PATH"
start=$(date +%s)
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy
echo "== TypeScript tests"; (cd labextension && jlpm test)
echo "== Python tests"
python -m pytest -n 2 --dist loadgroup ${PYTEST_ARGS:-}
echo "== all tests passed in $(( $(date +%s) - start ))s"
