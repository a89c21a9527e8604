#!/usr/bin/env bash
# User-space instructions per request on one path, counted by callgrind
# (exact and repeatable, unlike timings on this shared machine): runs the
# server under callgrind twice, sends FEW and then MANY requests with
# h2load (HTTP/1.1, 16 connections), and divides the difference in total
# instructions by MANY - FEW, so start-up and shutdown cancel out.
#
#   benches/load/callgrind.sh [BINARY] [PATH]    default: target/release/troupe /hello
#
# Env: FEW (default 5000), MANY (default 25000), BENCH (the load harness,
# for its docroot generator).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/common.sh"
bin=$(realpath "${1:-$repo/target/release/troupe}")
path=${2:-/hello}
few=${FEW:-5000}
many=${MANY:-25000}
command -v valgrind >/dev/null && command -v h2load >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind nghttp2-client >/dev/null
}
bench=${BENCH:-$repo/../shared/bench}
"$bench/gen-www" "$here/www" >/dev/null
work=$(mktemp -d)
# The bench config on a port of its own, so it can run beside run.sh.
sed 's/127.0.0.1:18480/127.0.0.1:18490/' "$here/config.ron" >"$here/callgrind.ron"
trap 'rm -rf "$work" "$here/callgrind.ron"' EXIT

total() { # total() REQUESTS -> instructions of one server run
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.$1" "$bin" -c "$here/callgrind.ron" 2>"$work/log.$1" &
  local pid=$!
  for _ in $(seq 600); do curl -fsS -o /dev/null "http://127.0.0.1:18490$path" 2>/dev/null && break; sleep 0.1; done
  h2load --h1 -n "$1" -c 16 "http://127.0.0.1:18490$path" >"$work/h2load.$1"
  grep -q "succeeded, 0 failed" "$work/h2load.$1" || { cat "$work/h2load.$1" >&2; exit 1; }
  kill -TERM "$pid"; wait "$pid" || true
  grep -E '^(summary|totals):' "$work/cg.$1" | head -1 | awk '{print $2}'
}
a=$(total "$few")
b=$(total "$many")
echo "RESULT callgrind $path $(basename "$bin"): $(( (b - a) / (many - few) )) instructions/request ($a at $few, $b at $many)"
