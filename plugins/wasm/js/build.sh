#!/bin/sh
# Builds app.js into a wasi:http/proxy component with componentize-js
# (StarlingMonkey; installed from npm into target/tools/componentize-js if
# missing), into target/modules/hello_js_wasm.wasm. Not part of
# plugins/build.sh: it needs the package registry and ~100 MB of tools; the
# tests run it.
#   plugins/wasm/js/build.sh
#
# StarlingMonkey implements wasi:http at one version (componentize-js
# 0.23.0: 0.2.10), so the WIT it is given must name that version: a copy of
# plugins/wasm/wit is rewritten to it (0.2.10 to 0.2.12 differ only in
# cli's exit-with-code, still unstable in 0.2.10). Troupe serves 0.2.10.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
tools="$target/tools/componentize-js"
out="$target/modules/hello_js_wasm.wasm"
version=0.23.0
wasi=0.2.10
mkdir -p "$target/modules"

if ! command -v npm >/dev/null 2>&1; then
    echo "plugins/wasm/js/build.sh: installing nodejs and npm" >&2
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq nodejs npm >/dev/null
fi
cjs="$tools/node_modules/.bin/componentize-js"
installed=$(cat "$tools/version" 2>/dev/null || true)
if [ ! -x "$cjs" ] || [ "$installed" != "$version" ]; then
    rm -rf "$tools"
    mkdir -p "$tools"
    echo '{"private":true}' >"$tools/package.json"
    npm install --prefix "$tools" --no-audit --no-fund --silent "@bytecodealliance/componentize-js@$version"
    echo "$version" >"$tools/version"
fi

if [ ! -f "$out" ] || [ "$here/app.js" -nt "$out" ] || [ "$here/world.wit" -nt "$out" ] || [ "$tools/version" -nt "$out" ]; then
    wit="$tools/wit"
    rm -rf "$wit"
    mkdir -p "$wit/deps"
    for f in "$root"/plugins/wasm/wit/deps/*.wit; do
        grep -q '^package wasi:' "$f" || continue
        sed -E -e "s#(wasi:[a-z-]+(/[a-z-]+)?)@0\.2\.[0-9]+#\1@$wasi#g" \
            -e "s/@since\(version = 0\.2\.1[12]\)/@unstable(feature = cli-exit-with-code)/" \
            "$f" >"$wit/deps/$(basename "$f")"
    done
    sed "s/WASI_VERSION/$wasi/" "$here/world.wit" >"$wit/world.wit"
    cd "$here"
    "$cjs" app.js --wit "$wit" --world-name hello -o "$out.tmp" >/dev/null
    mv "$out.tmp" "$out"
fi
