#!/usr/bin/env bash
# Module call cost under load: one troupe (1 worker) serves the same hello
# from the core Return handler, an InProcess C module, a Process C module
# and a C WebAssembly component (fresh instance per request, and reused);
# wrk hits each in turn, ROUNDS times, and the ratios to Return of each
# round are printed and written into BENCHMARKS.md between markers.
#
#   benches/load/modules.sh          Env: DURATION (10), ROUNDS (3), CONNECTIONS (64)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
command -v wrk >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}
cd "$repo"
cargo build --release --quiet
plugins/build.sh
./target/release/troupe -c "$here/modules.ron" 2>"$here/modules.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
base=http://127.0.0.1:18481
for path in /hello /mod-c /mod-p /mod-w /mod-r; do
  for _ in $(seq 100); do
    [ "$(curl -fsS "$base$path" 2>/dev/null)" = "Hello, World!" ] && break
    sleep 0.1
  done
  [ "$(curl -fsS "$base$path")" = "Hello, World!" ] || { echo "$path does not answer hello" >&2; exit 2; }
done

rps() { wrk -t1 -c"${CONNECTIONS:-64}" -d"${DURATION:-10}s" "$base$1" | awk '/Requests\/sec/ {print $2}'; }
results=$(mktemp)
for round in $(seq "${ROUNDS:-3}"); do
  ret=$(rps /hello); inproc=$(rps /mod-c); proc=$(rps /mod-p); wasm=$(rps /mod-w); reused=$(rps /mod-r)
  python3 - "$round" "$ret" "$inproc" "$proc" "$wasm" "$reused" <<'PY' | tee -a "$results"
import sys
r, ret, inproc, proc, wasm, reused = sys.argv[1], *map(float, sys.argv[2:])
print(f"RESULT modules round={r} inprocess/return={inproc/ret:.3f} process/return={proc/ret:.3f} wasm/return={wasm/ret:.3f} wasm-reused/return={reused/ret:.3f}")
PY
done

python3 "$here/record.py" modules "$results" benches/load/modules.sh
