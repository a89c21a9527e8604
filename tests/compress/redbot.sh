#!/usr/bin/env bash
# Installs REDbot (PyPI `redbot`, the HTTP linter) for tests/it/compression.rs
# when it is missing, and prints the directory to put on PYTHONPATH; its
# command is bin/redbot there. Everything goes under target/tools/redbot
# with `pip install --target`; nothing is installed outside the repo's
# target/. Fails, saying why (offline: pip's error).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
version=2.7.1
dir=${CARGO_TARGET_DIR:-$repo/target}/tools/redbot
py=$(command -v python3 || true)
if [ -z "$py" ]; then
  echo "no python3 on PATH" >&2
  exit 1
fi
if [ ! -f "$dir/site/redbot-$version.dist-info/METADATA" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  "$py" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$dir/site" "redbot==$version" >&2 2> >(grep -v "as the 'root' user" >&2)
fi
echo "$dir/site"
