#!/usr/bin/env bash
# JupyterHub and configurable-http-proxy for the hub tests, benchmark and a local classroom hub.
#   tools/install_hub_deps.sh [VENV_BIN]     (default .venv/bin)
# Installs the pip package `jupyterhub` into the venv and the npm package
# `configurable-http-proxy` into build/hub (project-local, gitignored). Quick when both
# are already there. Prints the proxy's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-.venv/bin}"
PREFIX="build/hub"
CHP="$PREFIX/node_modules/.bin/configurable-http-proxy"
CHP_VERSION="${CHP_VERSION:-5.3.0}"

if ! "$BIN/python" -c "import jupyterhub, sys; sys.exit(0 if int(jupyterhub.__version__.split('.')[0]) >= 6 else 1)" 2>/dev/null; then
	"$BIN/pip" install -q "jupyterhub>=6.1,<7"
fi
if [ ! -x "$CHP" ]; then
	command -v npm >/dev/null || { echo "npm is needed for configurable-http-proxy (apt-get install npm)" >&2; exit 1; }
	mkdir -p "$PREFIX"
	[ -f "$PREFIX/package.json" ] || echo '{"private": true}' > "$PREFIX/package.json"
	npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "configurable-http-proxy@$CHP_VERSION"
fi
"$CHP" --version >/dev/null
echo "$(pwd)/$CHP"
