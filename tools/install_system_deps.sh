#!/usr/bin/env bash
# The system components the tests use beyond Python and Node: the sandbox (bubblewrap),
# Docker (a second sandbox backend; its image is built with debootstrap), Chromium for
# the browser tests, Redis and PostgreSQL for shared state, libseccomp and libcairo for the
# seccomp filter and SVG rasterising. One list, used by .ci/run and
# by `make test`.
#
#   tools/install_system_deps.sh            install what is missing (root, Debian-like), start dockerd
#   tools/install_system_deps.sh --check    only say what is missing and how to add it
#
# Not root, or not Debian: says what is missing and carries on; the tests that need a
# missing component skip with the command that enables it (fail under CI=true).
set -euo pipefail
PACKAGES=(bubblewrap docker.io debootstrap chromium redis-server postgresql util-linux e2fsprogs libseccomp2 libcairo2)
mode=${1:-install}

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$mode" = --check ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "optional system components missing: ${missing[*]}"
    echo "  their tests are skipped; to run them: sudo $0"
    exit 0
  fi
  echo "== installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Docker's daemon: started here when we may, as CI and a fresh root machine need it.
if [ "$mode" != --check ] && [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null \
  && ! docker info >/dev/null 2>&1; then
  echo "== starting dockerd"
  (dockerd >/tmp/aiide-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start"; tail -50 /tmp/aiide-dockerd.log; exit 1; }
fi
