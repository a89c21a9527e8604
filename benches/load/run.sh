#!/usr/bin/env bash
# Side-by-side load benchmark against nginx (1 worker each), using the shared
# harness ../shared/bench/compare. Builds troupe in release mode, starts it
# with the full actor tree on benches/load/config.ron, runs the scenarios,
# and writes the RESULT lines into BENCHMARKS.md between the markers.
#
#   benches/load/run.sh [SCENARIO...]      default: hello static-1k static-1m h2
#
# Env: DURATION (default 10), ROUNDS (default 3), BENCH (path to the harness).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bench=${BENCH:-$repo/../shared/bench}
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(hello static-1k static-1m h2)

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || ! need h2load; then
  echo "installing nginx-light, wrk, nghttp2-client (Debian packages)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk nghttp2-client >/dev/null
fi

cd "$repo"
cargo build --release --quiet
"$bench/gen-www" "$here/www" >/dev/null

./target/release/troupe -c "$here/config.ron" 2>"$here/troupe.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS -o /dev/null http://127.0.0.1:18480/hello 2>/dev/null && break
  sleep 0.1
done

results=$(mktemp)
for s in "${scenarios[@]}"; do
  "$bench/compare" "$s" --target http://127.0.0.1:18480 --target-pid "$pid" \
    --duration "${DURATION:-10}" --rounds "${ROUNDS:-3}" | tee /dev/stderr | grep '^RESULT' >>"$results" || true
done

# Replace the block between the markers in BENCHMARKS.md.
python3 - "$repo/BENCHMARKS.md" "$results" <<'PY'
import sys, datetime
doc, res = sys.argv[1], open(sys.argv[2]).read().strip()
text = open(doc).read()
start, end = "<!-- load:begin -->", "<!-- load:end -->"
block = f"{start}\n```text\n# {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, benches/load/run.sh\n{res}\n```\n{end}"
if start in text:
    text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
else:
    text += "\n" + block + "\n"
open(doc, "w").write(text)
PY
echo "RESULT lines written to BENCHMARKS.md" >&2
