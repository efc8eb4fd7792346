#!/usr/bin/env bash
# Build the prebuilt labextension, cached by a hash of its inputs: an unchanged
# extension is copied from the cache instead of rebuilt (also across clones).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=aiide_server_ext/labextension
CACHE_ROOT=${AIIDE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aiide}/labextension
inputs=$(find labextension -path labextension/node_modules -prune -o -path labextension/lib -prune \
  -o -type f \( -path 'labextension/src/*' -o -path 'labextension/style/*' -o -path 'labextension/schema/*' \
  -o -name package.json -o -name yarn.lock -o -name tsconfig.json -o -name .yarnrc.yml \) -print | sort)
hash=$( (cat $inputs; jupyter lab --version) | sha256sum | cut -c1-16)
if [ -f "$OUT/.inputs" ] && [ "$(cat "$OUT/.inputs")" = "$hash" ]; then
  exit 0
fi
if [ -f "$CACHE_ROOT/$hash/package.json" ]; then
  rm -rf "$OUT" && mkdir -p "$OUT" && cp -a "$CACHE_ROOT/$hash/." "$OUT/"
  echo "aiide: labextension restored from cache ($hash)"
  exit 0
fi
echo "aiide: building the labextension ($hash)..."
(cd labextension && jlpm install --immutable >/dev/null && jlpm build:prod)
echo "$hash" > "$OUT/.inputs"
mkdir -p "$CACHE_ROOT" && rm -rf "$CACHE_ROOT/$hash.tmp" && cp -a "$OUT" "$CACHE_ROOT/$hash.tmp" \
  && mv -T "$CACHE_ROOT/$hash.tmp" "$CACHE_ROOT/$hash"
