#!/usr/bin/env bash
# Jupyter Enterprise Gateway in its own virtualenv, for the remote-kernel tests and a local
# gateway. EG 3.3 pins jupyter_server < 2 and jupyter_client < 7, so it cannot share .venv.
#   tools/install_eg.sh [VENV_BIN]     (default .venv/bin: the Python the sandboxed kernels use)
# The gateway venv is cached under ${XDG_CACHE_HOME:-~/.cache}/aiide/eg/<hash of the inputs>
# (the install recipe, the EG version, the base interpreter), so the second run only checks it.
# Every run (re)writes the `aiide-python` kernelspec into the gateway venv's kernels dir:
# its argv names VENV_BIN's python, which runs aiide_kernel.launch (the sandbox launcher).
# Prints the gateway venv's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-.venv/bin}"
EG_VERSION="${EG_VERSION:-3.3.0}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# The gateway runs on the interpreter .venv was made from (a venv of a venv would break
# when .venv is rebuilt).
BASE_PY="$("$BIN/python" -c 'import sys; print(sys._base_executable)')"
[ -x "$BASE_PY" ] || BASE_PY="$(command -v python3)"
PY_ID="$("$BASE_PY" -c 'import sys; print(sys.version)') $BASE_PY"
# Bump RECIPE when the install steps below change.
RECIPE=1
HASH="$(echo "$RECIPE $EG_VERSION $PY_ID" | sha256sum | cut -c1-16)"
EG_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/aiide/eg"
EG_VENV="$EG_ROOT/$HASH"

if [ ! -f "$EG_VENV/.complete" ]; then
	mkdir -p "$EG_ROOT"
	# One installer at a time (parallel test workers, two checkouts).
	exec 9>"$EG_ROOT/.lock"
	flock 9
	if [ ! -f "$EG_VENV/.complete" ]; then
		# No marker: a half-made venv from an interrupted run. Venv scripts name their
		# path in their shebangs, so the venv is built in place, not moved there.
		rm -rf "$EG_VENV"
		"$BASE_PY" -m venv "$EG_VENV"
		"$EG_VENV/bin/pip" install -qq "jupyter_enterprise_gateway==$EG_VERSION" >&2
		"$EG_VENV/bin/jupyter-enterprisegateway" --version >/dev/null
		touch "$EG_VENV/.complete"
	fi
	flock -u 9
fi

# The kernelspec: cheap, so always rewritten (a new checkout has a new .venv path).
"$BIN/python" -m aiide_kernel.launch.kernelspec --prefix "$EG_VENV" --quiet
echo "$EG_VENV"
