#!/bin/sh
# Builds every example and test module into target/modules/, from source:
# C with the system compiler, Rust with cargo, WebAssembly components with
# clang-19 + wasi-libc (each installed from Debian if missing). The shipped
# config.ron and the test suite both load from there. Last, the localhost
# certificate the shipped config serves HTTPS with (scripts/localhost-cert.sh).
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

# WebAssembly components from C, with the recipe module authors use
# (plugins/wasm/build-component.sh: clang-19 + wasi-libc, the committed
# wit-bindgen bindings in plugins/wasm/gen, then our own componentize step).
wasm="$root/plugins/wasm"
for src in "$wasm"/examples/*.c "$wasm"/testing/*.c; do
    name=$(basename "$src" .c)
    component="$out/${name}_wasm.wasm"
    newest=$(ls -t "$src" "$wasm"/common/*.h "$wasm"/gen/* "$wasm/build-component.sh" "$target/release/troupe-componentize" | head -1)
    if [ ! -f "$component" ] || [ "$newest" -nt "$component" ]; then
        "$wasm/build-component.sh" "$src" "$component"
    fi
done

# The shipped config's HTTPS certificate (target/tls/), made once.
"$root/scripts/localhost-cert.sh"
