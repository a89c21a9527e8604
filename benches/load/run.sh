#!/usr/bin/env bash
# Side-by-side load benchmark against nginx (1 worker each), using the shared
# load harness $BENCH/compare (an outside tool, like wrk). Builds troupe in release mode, starts it
# with the full actor tree on benches/load/config.ron, runs the scenarios,
# and writes the RESULT lines into BENCHMARKS.md between the markers.
#
#   benches/load/run.sh [SCENARIO...]      default: hello static-1k static-1m h2 lua
#   TLS=1 benches/load/run.sh [SCENARIO...] default: hello static-1k h2 handshake handshake-tls12
#
# TLS=1 serves benches/load/tls.ron (the same routes on an HTTPS address,
# with the localhost certificate) and records into the "tls" block.
# `handshake-tls12` is `handshake` with the client held to TLS 1.2
# (tls12-client.cnf), the version the harness's nginx 1.22 speaks.
#
# Env: DURATION (default 10), ROUNDS (default 3), BENCH (path to the harness),
# TLS (1 for HTTPS).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/common.sh"
bench=${BENCH:-$repo/../shared/bench}
scenarios=("$@")
if [ "${TLS:-0}" = 1 ]; then
  conf=tls.ron url=https://127.0.0.1:18483 block=tls
  [ ${#scenarios[@]} -gt 0 ] || scenarios=(hello static-1k h2 handshake handshake-tls12)
else
  conf=config.ron url=http://127.0.0.1:18480 block=load
  [ ${#scenarios[@]} -gt 0 ] || scenarios=(hello static-1k static-1m h2 lua)
fi

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || ! need h2load || [ ! -e /usr/share/nginx/modules-available/mod-http-lua.conf ]; then
  echo "installing nginx-light, its Lua module, wrk, nghttp2-client (Debian packages)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-http-lua wrk nghttp2-client >/dev/null
fi

cd "$repo"
cargo build --release --quiet
"$bench/gen-www" "$here/www" >/dev/null
[ "$block" = load ] || scripts/localhost-cert.sh

./target/release/troupe -c "$here/$conf" 2>"$here/troupe.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
wait_for "$url/hello"

results=$(mktemp)
for s in "${scenarios[@]}"; do
  case $s in
    handshake-tls12) run=(env OPENSSL_CONF="$here/tls12-client.cnf" "$bench/compare" handshake) ;;
    *) run=("$bench/compare" "$s") ;;
  esac
  "${run[@]}" --target "$url" --target-pid "$pid" \
    --duration "${DURATION:-10}" --rounds "${ROUNDS:-3}" | tee /dev/stderr | grep '^RESULT' |
    sed "s/^RESULT scenario=[^ ]*/RESULT scenario=$s/" >>"$results" || true
done

python3 "$here/record.py" "$block" "$results" "${TLS:+TLS=$TLS }benches/load/run.sh"
echo "RESULT lines written to BENCHMARKS.md" >&2
