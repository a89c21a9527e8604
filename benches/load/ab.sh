#!/usr/bin/env bash
# A/B against nginx: two builds of troupe (say, the commit before a change
# and after it) each compared with nginx on the same scenario, alternating
# OLD, NEW, OLD, NEW in the same minutes, so the two ratios share the
# machine's state. Each build serves benches/load/config.ron on its own port.
#
#   benches/load/ab.sh OLD_BINARY NEW_BINARY [SCENARIO]   default scenario: hello
#
# Env: PAIRS (default 2), DURATION (default 5), ROUNDS (default 3), BENCH.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/common.sh"
bench=${BENCH:-$repo/../shared/bench}
old=$(realpath "$1"); new=$(realpath "$2"); scenario=${3:-hello}
"$bench/gen-www" "$here/www" >/dev/null
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -f "$here"/ab-*.ron' EXIT
serve() { # serve NAME BINARY PORT
  sed "s/127.0.0.1:18480/127.0.0.1:$3/" "$here/config.ron" >"$here/ab-$1.ron"
  (cd "$here" && exec "$2" -c "$here/ab-$1.ron" 2>"$here/ab-$1.log") &
  pids+=($!)
  wait_for "http://127.0.0.1:$3/hello"
}
serve old "$old" 18481; old_pid=${pids[0]}
serve new "$new" 18482; new_pid=${pids[1]}
for _ in $(seq "${PAIRS:-2}"); do
  for side in old new; do
    if [ $side = old ]; then port=18481; pid=$old_pid; else port=18482; pid=$new_pid; fi
    "$bench/compare" "$scenario" --target "http://127.0.0.1:$port" --target-pid "$pid" \
      --duration "${DURATION:-5}" --rounds "${ROUNDS:-3}" | grep '^RESULT' | sed "s/^RESULT/RESULT $side/"
  done
done
