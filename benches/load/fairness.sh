#!/usr/bin/env bash
# Fairness under a misbehaving module (issue 11): 16 keep-alive clients on
# good routes, quiet and then while 3 clients call a module that burns its
# whole budget on every request. Two kinds of good load: every good route
# in turn (`mix`: Return, a C module, a Lua module, a WebAssembly module)
# and the core Return route alone (`hello`); two culprits: a Lua script
# that loops until its instruction budget (1 000 000) stops it, and a
# WebAssembly component that loops until its time limit (300 ms). Each
# round measures quiet and loaded back to back and prints what the good
# routes kept: throughput loaded / quiet, and p99 loaded / quiet.
#
# With PIN=1 the server (one worker, one pool thread) runs on CPU 1 and
# the clients on CPU 0. Unpinned, the server's threads share both cores
# with wrk and wait on the run queue a third of the time even when quiet,
# which is most of the quiet p99; pinned, the loaded p99 shows what the
# module pool alone takes from the connection thread.
#
#   benches/load/fairness.sh [BIN]   Env: DURATION (8), ROUNDS (2), PIN (0)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/common.sh"
command -v wrk >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}
cd "$repo"
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet
  bin=./target/release/troupe
fi
plugins/build.sh
server=() client=() block=fairness label=benches/load/fairness.sh
if [ "${PIN:-0}" = 1 ]; then
  server=(taskset -c 1) client=(taskset -c 0)
  block=fairness-pinned label="$label (PIN=1)"
fi
"${server[@]}" "$bin" -c "$here/fairness.ron" 2>"$here/fairness.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
base=http://127.0.0.1:18491
for path in /hello /mod-c /lua /wasm; do wait_for "$base$path"; done
d=${DURATION:-8}

# good KIND [CULPRIT]: "rps p99_ms" of 16 clients on the good routes, with
# 3 clients on CULPRIT's looping route meanwhile.
good() {
  local kind=$1 culprit=${2:-} bad=""
  if [ -n "$culprit" ]; then
    "${client[@]}" wrk -t1 -c3 -d"$((d + 3))s" --timeout 30s "$base/$culprit?do=loop" >/dev/null 2>&1 &
    bad=$!
    sleep 1
  fi
  local args=("$base/hello")
  [ "$kind" = mix ] && args=(-s "$here/mix.lua" "$base/")
  "${client[@]}" wrk -t1 -c16 -d"${d}s" --latency "${args[@]}" | python3 -c '
import re, sys
out = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
v, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
print(rps, float(v) * {"us": 1e-3, "ms": 1, "s": 1e3}[unit])'
  [ -z "$bad" ] || wait "$bad" || true
}

results=$(mktemp)
for round in $(seq "${ROUNDS:-2}"); do
  for kind in hello mix; do
    for culprit in bad-lua bad-wasm; do
      read -r q_rps q_p99 < <(good "$kind")
      read -r l_rps l_p99 < <(good "$kind" "$culprit")
      python3 - "$round" "$kind" "$culprit" "${PIN:-0}" "$q_rps" "$q_p99" "$l_rps" "$l_p99" <<'PY' | tee -a "$results"
import sys
r, kind, culprit, pin, q_rps, q_p99, l_rps, l_p99 = sys.argv[1:5] + list(map(float, sys.argv[5:]))
print(f"RESULT fairness round={r} good={kind} culprit={culprit} kept={l_rps / q_rps:.3f} "
      f"p99_ratio={l_p99 / q_p99:.2f} quiet_rps={q_rps:.0f} loaded_rps={l_rps:.0f} "
      f"quiet_p99_ms={q_p99:.2f} loaded_p99_ms={l_p99:.2f} pinned={pin}")
PY
    done
  done
done

[ "${RECORD:-1}" = 0 ] || python3 "$here/record.py" "$block" "$results" "$label"
