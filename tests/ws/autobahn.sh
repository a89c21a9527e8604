#!/usr/bin/env bash
# Installs the Autobahn test suite's `wstest` (PyPI autobahntestsuite,
# Python 2.7 only) when it is missing, and prints the path of a command
# that runs it (tests/it/websocket_autobahn.rs).
#
# Python 2.7: `python2.7` on PATH, else pyenv's 2.7 (the Rust machines
# have one), else Debian's package where the release still has it (12
# does not). The suite goes under target/tools/autobahn with
# `pip install --target` (never --prefix: that uninstalls the base
# interpreter's setuptools). Fails, saying why, when it cannot be done.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
version=25.10.1
dir=${CARGO_TARGET_DIR:-$repo/target}/tools/autobahn
works() { "$1" -c 'import sys; assert sys.version_info[:2] == (2, 7)' >/dev/null 2>&1; }
py=""
for c in "$(command -v python2.7 || true)" \
         "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python2.7; do
  if [ -n "$c" ] && [ -x "$c" ] && works "$c"; then py=$c; break; fi
done
if [ -z "$py" ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq python2.7 >/dev/null 2>&1 || true
  if command -v python2.7 >/dev/null 2>&1 && works "$(command -v python2.7)"; then
    py=$(command -v python2.7)
  fi
fi
if [ -z "$py" ]; then
  echo "no Python 2.7: not on PATH, not in pyenv, and this Debian has no python2.7 package" >&2
  exit 1
fi
if [ ! -f "$dir/site/autobahntestsuite-$version.dist-info/METADATA" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  "$py" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$dir/site" "autobahntestsuite==$version" >&2 2> >(grep -v DEPRECATION >&2)
fi
# zope's namespace package needs its .pth read: addsitedir, not PYTHONPATH.
cat >"$dir/wstest" <<WRAP
#!/bin/sh
exec "$py" -c 'import site, sys; site.addsitedir("$dir/site"); sys.argv[0] = "wstest"; from autobahntestsuite.wstest import run; sys.exit(run())' "\$@"
WRAP
chmod +x "$dir/wstest"
echo "$dir/wstest"
