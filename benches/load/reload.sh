#!/usr/bin/env bash
# Live-operations speed (issue 5), written into BENCHMARKS.md:
#   1. SIGHUP → the new config serving, on a config with 100+ routes;
#   2. one module reloaded through the admin API: Lua, and WebAssembly
#      with its compiled artifact cached;
#   3. `compare lua` against nginx, without reloads and then while
#      reload.py reloads once a second (the Lua module and the config, in
#      turn): the second ratio over the first is the cost of reloading.
#
#   benches/load/reload.sh       Env: DURATION (10), ROUNDS (3), BENCH
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/common.sh"
bench=${BENCH:-$repo/../shared/bench}
need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || [ ! -e /usr/share/nginx/modules-available/mod-http-lua.conf ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-http-lua wrk >/dev/null
fi
cd "$repo"
cargo build --release --quiet
plugins/build.sh
"$bench/gen-www" "$here/www" >/dev/null

work=$(mktemp -d)
python3 "$here/reload.py" config "$work"
./target/release/troupe -c "$work/config.ron" 2>"$here/reload.log" &
pid=$!
loop=""
trap 'kill $loop $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
wait_for http://127.0.0.1:18480/wasm

results=$(mktemp)
python3 "$here/reload.py" measure "$work" "$pid" | tee -a "$results"
lua() {
  "$bench/compare" lua --target http://127.0.0.1:18480 --target-pid "$pid" \
    --duration "${DURATION:-10}" --rounds "${ROUNDS:-3}" | tee /dev/stderr | grep '^RESULT' | sed "s/^RESULT/RESULT $1/"
}
lua quiet | tee -a "$results"
status() { curl -fsS http://127.0.0.1:18482/config/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["reloads"])'; }
lua_loads() { curl -fsS http://127.0.0.1:18482/modules | python3 -c 'import json,sys; print([m["loads"] for m in json.load(sys.stdin) if m["name"]=="lua"][0])'; }
config0=$(status); lua0=$(lua_loads)
python3 "$here/reload.py" loop "$work" "$pid" 2>/dev/null &
loop=$!
lua reloading-every-second | tee -a "$results"
kill $loop
# Proof that the loop reloaded while the load ran.
echo "RESULT reload during-the-second-run config_reloads=$(( $(status) - config0 )) lua_module_reloads=$(( $(lua_loads) - lua0 ))" | tee -a "$results"
python3 "$here/record.py" reload "$results" benches/load/reload.sh
echo "RESULT lines written to BENCHMARKS.md" >&2
