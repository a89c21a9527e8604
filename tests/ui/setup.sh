#!/usr/bin/env bash
# Installs what the browser test (tests/it/ui.rs) needs, when missing:
# Debian's Chromium, Node.js, and playwright-core from the npm registry into
# target/tools/playwright (never a browser download of Playwright's own).
# Prints the directory playwright-core is installed under.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
tools=${CARGO_TARGET_DIR:-$repo/target}/tools/playwright
apt() {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
[ -x /usr/bin/chromium ] || apt chromium >&2
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt nodejs npm >&2
if [ ! -f "$tools/node_modules/playwright-core/package.json" ]; then
  mkdir -p "$tools"
  npm install --silent --no-audit --no-fund --prefix "$tools" playwright-core@1.64.1 >&2
fi
echo "$tools"
