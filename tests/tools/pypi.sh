#!/usr/bin/env bash
# pypi.sh NAME PACKAGE==VERSION...: installs Python 3 packages from PyPI
# for the tests when they are missing, and prints the directory to put on
# PYTHONPATH (commands the packages install are in its bin/).
#
# Everything goes under target/tools/NAME with `pip install --target`;
# nothing is installed outside the repo's target/. Fails, saying why
# (offline: pip's error). Used for h11 and h2 (tests/it/support/strict.rs)
# and REDbot (tests/it/compression.rs).
set -euo pipefail
name=${1:?usage: pypi.sh NAME PACKAGE==VERSION...}
shift
[ $# -gt 0 ] || { echo "usage: pypi.sh NAME PACKAGE==VERSION..." >&2; exit 2; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=${CARGO_TARGET_DIR:-$repo/target}/tools/$name
py=$(command -v python3 || true)
if [ -z "$py" ]; then
  echo "no python3 on PATH" >&2
  exit 1
fi
missing=0
for spec in "$@"; do
  [ -f "$dir/site/${spec%%==*}-${spec##*==}.dist-info/METADATA" ] || missing=1
done
if [ "$missing" = 1 ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  "$py" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$dir/site" "$@" >&2 2> >(grep -v "as the 'root' user" >&2)
fi
echo "$dir/site"
