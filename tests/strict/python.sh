#!/usr/bin/env bash
# Installs the Python packages the strict-parsing tests use, when they
# are missing, and prints the directory to put on PYTHONPATH
# (tests/it/differential.rs, tests/it/strict_rfc.rs):
# - h11 (a strict RFC 9112 parser, the differential test's reference);
# - h2 (hyper-h2: HTTP/2 frames and HPACK, to send malformed requests).
# Everything goes under target/tools/python with `pip install --target`;
# nothing is installed outside the repo's target/. Fails, saying why.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
h11=0.16.0
h2=4.3.0
dir=${CARGO_TARGET_DIR:-$repo/target}/tools/python
py=$(command -v python3 || true)
if [ -z "$py" ]; then
  echo "no python3 on PATH" >&2
  exit 1
fi
if [ ! -f "$dir/site/h11-$h11.dist-info/METADATA" ] || [ ! -f "$dir/site/h2-$h2.dist-info/METADATA" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  "$py" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$dir/site" "h11==$h11" "h2==$h2" >&2 2> >(grep -v "as the 'root' user" >&2)
fi
echo "$dir/site"
