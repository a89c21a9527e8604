#!/bin/sh
# Builds every example and test module into target/modules/, from source:
# C with the system compiler, Rust with cargo, WebAssembly components with
# clang-19 + wasi-libc (each installed from Debian if missing). The shipped
# config.ron and the test suite both load from there.
#   plugins/build.sh            # all modules
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out="${CARGO_TARGET_DIR:-$root/target}/modules"
mkdir -p "$out"

cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "plugins/build.sh: no C compiler; installing gcc" >&2
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq gcc libc6-dev >/dev/null
fi

for src in "$root"/plugins/c/examples/*.c "$root"/plugins/c/testing/*.c; do
    name=$(basename "$src" .c)
    lib="$out/lib$name.so"
    # Rebuild only what changed (the header counts as a change).
    if [ ! -f "$lib" ] || [ "$src" -nt "$lib" ] || [ "$root/plugins/include/troupe_module.h" -nt "$lib" ]; then
        "$cc" -shared -fPIC -O2 -Wall -Wextra -Werror -I "$root/plugins/include" -o "$lib.tmp" "$src"
        mv "$lib.tmp" "$lib"
    fi
done

target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p hello-rust -p panicky -p troupe-componentize
for crate in hello_rust panicky; do
    cp "$target/release/lib$crate.so" "$out/lib$crate.so.tmp"
    mv "$out/lib$crate.so.tmp" "$out/lib$crate.so"
done

# WebAssembly components from C: clang for wasm32 with wasi-libc, the
# committed wit-bindgen bindings (plugins/wasm/gen), then our own
# componentize step (wit-component, no wasm-tools to build).
clang=$(command -v clang-19 || true)
if [ -z "$clang" ] || [ ! -d /usr/lib/wasm32-wasi ] || [ ! -e /usr/lib/llvm-19/lib/clang/19/lib/wasi ]; then
    echo "plugins/build.sh: installing clang-19, lld-19 and wasi-libc for WebAssembly" >&2
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 >/dev/null
    clang=$(command -v clang-19)
fi
wasm="$root/plugins/wasm"
for src in "$wasm"/examples/*.c "$wasm"/testing/*.c; do
    name=$(basename "$src" .c)
    component="$out/${name}_wasm.wasm"
    newest=$(ls -t "$src" "$wasm"/common/*.h "$wasm"/gen/* "$target/release/troupe-componentize" | head -1)
    if [ ! -f "$component" ] || [ "$newest" -nt "$component" ]; then
        "$clang" --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor -Wall -Werror \
            -I "$wasm/gen" -I "$wasm/common" \
            "$src" "$wasm/gen/module.c" "$wasm/gen/module_component_type.o" -o "$out/$name.core.wasm"
        "$target/release/troupe-componentize" "$out/$name.core.wasm" "$component.tmp"
        rm -f "$out/$name.core.wasm"
        mv "$component.tmp" "$component"
    fi
done
