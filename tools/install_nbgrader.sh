#!/usr/bin/env bash
# nbgrader in its own virtualenv, for the tutoring tests (issue 15): nbgrader brings
# notebook 7 and server/lab extensions of its own, which in .venv would change every lab
# the tests start (and the server's start time), so it never goes there.
#   tools/install_nbgrader.sh [VENV_BIN]   (default .venv/bin: only its interpreter is used)
# Cached under ${XDG_CACHE_HOME:-~/.cache}/aiide/nbgrader/<hash of the inputs> (the recipe,
# the nbgrader version, the base interpreter), so the second run only checks it.
# Prints the venv's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-.venv/bin}"
NBGRADER_VERSION="${NBGRADER_VERSION:-0.9.6}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

BASE_PY="$("$BIN/python" -c 'import sys; print(sys._base_executable)')"
[ -x "$BASE_PY" ] || BASE_PY="$(command -v python3)"
PY_ID="$("$BASE_PY" -c 'import sys; print(sys.version)') $BASE_PY"
# Bump RECIPE when the install steps below change.
RECIPE=1
HASH="$(echo "$RECIPE $NBGRADER_VERSION $PY_ID" | sha256sum | cut -c1-16)"
ROOT_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/aiide/nbgrader"
VENV="$ROOT_DIR/$HASH"

if [ ! -f "$VENV/.complete" ]; then
	mkdir -p "$ROOT_DIR"
	exec 9>"$ROOT_DIR/.lock" # one installer at a time (parallel test workers)
	flock 9
	if [ ! -f "$VENV/.complete" ]; then
		rm -rf "$VENV" # a half-made venv from an interrupted run
		"$BASE_PY" -m venv "$VENV"
		"$VENV/bin/pip" install -qq "nbgrader==$NBGRADER_VERSION" >&2
		"$VENV/bin/nbgrader" --version >/dev/null
		touch "$VENV/.complete"
	fi
	flock -u 9
fi
echo "$VENV"
