#!/bin/sh
# Builds one C file into a Troupe WebAssembly component, from any directory:
#   /path/to/troupe/plugins/wasm/build-component.sh mine.c mine.wasm [more.c ...]
# It compiles for wasm32-wasi with clang-19 against the committed bindings
# (plugins/wasm/gen: the `module` world, or the `ws-module` world when
# SOURCE.c includes "ws_module.h", a WebSocket handler) and helpers
# (plugins/wasm/common), then wraps the core
# module into a component with troupe-componentize, which it builds from
# plugins/wasm/componentize the first time (the server's release build does
# not include it). clang-19, lld-19, wasi-libc and libclang-rt-19-dev-wasm32
# are installed from Debian when missing. Paths are taken as given, relative
# to the current directory; nothing is written inside the repository but the
# componentize tool under target/.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 SOURCE.c OUT.wasm [MORE.c ...]" >&2
    exit 2
fi
src=$1 out=$2
shift 2
root=$(cd "$(dirname "$0")/../.." && pwd)
wasm="$root/plugins/wasm"
target="${CARGO_TARGET_DIR:-$root/target}"

clang=$(command -v clang-19 || true)
if [ -z "$clang" ] || [ ! -d /usr/lib/wasm32-wasi ] || [ ! -e /usr/lib/llvm-19/lib/clang/19/lib/wasi ]; then
    echo "build-component.sh: installing clang-19, lld-19 and wasi-libc for WebAssembly" >&2
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 >/dev/null
    clang=$(command -v clang-19)
fi

# Cargo rebuilds it only when its sources changed.
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p troupe-componentize
componentize="$target/release/troupe-componentize"

# A WebSocket component is built against the ws-module world's bindings.
world=module
if grep -q '^#include "ws_module.h"' "$src"; then
    world=ws_module
fi

core="$out.core.wasm"
"$clang" --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor -Wall -Werror \
    -I "$wasm/gen" -I "$wasm/common" \
    "$src" "$@" "$wasm/gen/$world.c" "$wasm/gen/${world}_component_type.o" -o "$core"
"$componentize" "$core" "$out.tmp"
rm -f "$core"
mv "$out.tmp" "$out"
