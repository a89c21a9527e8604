#!/bin/sh
# Builds app.py into a wasi:http/proxy component with componentize-py
# (installed from PyPI into target/tools/componentize-py if missing), into
# target/modules/hello_py_wasm.wasm. Not part of plugins/build.sh: it needs
# the package registry and ~20 MB of tools; the tests run it.
#   plugins/wasm/python/build.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
tools="$target/tools/componentize-py"
out="$target/modules/hello_py_wasm.wasm"
version=0.25.1
mkdir -p "$target/modules"

cpy="$tools/bin/componentize-py"
if [ ! -x "$cpy" ] || [ "$("$cpy" --version 2>/dev/null)" != "componentize-py $version" ]; then
    if ! python3 -m venv --help >/dev/null 2>&1; then
        echo "plugins/wasm/python/build.sh: installing python3-venv" >&2
        sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq && $sudo apt-get install -y -qq python3 python3-venv >/dev/null
    fi
    rm -rf "$tools"
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
fi

if [ ! -f "$out" ] || [ "$here/app.py" -nt "$out" ] || [ "$cpy" -nt "$out" ]; then
    # The tool's own venv must not become the app's import path; no
    # __pycache__ in the source tree.
    export PYTHONDONTWRITEBYTECODE=1
    unset VIRTUAL_ENV
    cd "$here"
    "$cpy" -d "$root/plugins/wasm/wit" -w wasi:http/proxy@0.2.12 componentize app -p "$here" -o "$out.tmp" >/dev/null
    mv "$out.tmp" "$out"
fi
