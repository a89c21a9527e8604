#!/bin/sh
# Builds every example and test module into target/modules/, from source:
# C with the system compiler (installed from Debian if missing), Rust with
# cargo. The shipped config.ron and the test suite both load from there.
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

cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p hello-rust -p panicky
for crate in hello_rust panicky; do
    cp "${CARGO_TARGET_DIR:-$root/target}/release/lib$crate.so" "$out/lib$crate.so.tmp"
    mv "$out/lib$crate.so.tmp" "$out/lib$crate.so"
done
