#!/usr/bin/env bash
# Side-by-side load benchmark against nginx (1 worker each), using the shared
# load harness $BENCH/compare (an outside tool, like wrk). Builds troupe in release mode, starts it
# with the full actor tree on benches/load/config.ron, runs the scenarios,
# and writes the RESULT lines into BENCHMARKS.md between the markers.
#
#   benches/load/run.sh [SCENARIO...]      default: hello static-1k static-1m h2 lua
#
# Env: DURATION (default 10), ROUNDS (default 3), BENCH (path to the harness).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/common.sh"
bench=${BENCH:-$repo/../shared/bench}
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(hello static-1k static-1m h2 lua)

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || ! need h2load || [ ! -e /usr/share/nginx/modules-available/mod-http-lua.conf ]; then
  echo "installing nginx-light, its Lua module, wrk, nghttp2-client (Debian packages)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-http-lua wrk nghttp2-client >/dev/null
fi

cd "$repo"
cargo build --release --quiet
"$bench/gen-www" "$here/www" >/dev/null

./target/release/troupe -c "$here/config.ron" 2>"$here/troupe.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
wait_for http://127.0.0.1:18480/hello

results=$(mktemp)
for s in "${scenarios[@]}"; do
  "$bench/compare" "$s" --target http://127.0.0.1:18480 --target-pid "$pid" \
    --duration "${DURATION:-10}" --rounds "${ROUNDS:-3}" | tee /dev/stderr | grep '^RESULT' >>"$results" || true
done

python3 "$here/record.py" load "$results" benches/load/run.sh
echo "RESULT lines written to BENCHMARKS.md" >&2
