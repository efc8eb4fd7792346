#!/usr/bin/env bash
# Make sure the default sandbox backend can run kernels here. Installs bubblewrap
# when it can (root + apt-get); otherwise prints the one command that does.
# Never falls back to an unsandboxed kernel. With --optional (for `make test`) a missing
# sandbox is said and not fatal: the sandbox tests then skip, saying how to enable them.
set -euo pipefail
BIN=${1:-.venv/bin}
OPTIONAL=${2:-}
give_up() {
  if [ "$OPTIONAL" = --optional ]; then
    echo "aiide: going on without a working sandbox: its tests will be skipped." >&2
    exit 0
  fi
  exit 1
}
if ! command -v bwrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "aiide: installing bubblewrap (the kernel sandbox)..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; }
  else
    echo "aiide: the kernel sandbox needs bubblewrap, which is not installed." >&2
    echo "       Install it with:  sudo apt-get install bubblewrap" >&2
    echo "       (Fedora: sudo dnf install bubblewrap; Arch: sudo pacman -S bubblewrap)" >&2
    give_up
  fi
fi
if ! "$BIN/jupyter" aiide check; then
  echo "aiide: the configured sandbox backend cannot start kernels (see above); refusing to go on." >&2
  give_up
fi
