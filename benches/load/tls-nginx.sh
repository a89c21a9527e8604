#!/usr/bin/env bash
# TLS costs the harness's `compare` does not show, Troupe beside nginx in
# the same run:
# - server CPU per handshake, full and resumed (`openssl s_time -new` /
#   `-reuse`: one client, a new connection per request, `GET /hello`),
#   over TLS 1.3 and over TLS 1.2, each side speaking the same version;
# - memory per idle TLS keep-alive connection (idle.py: IDLE connections
#   each make one request, then stay open; growth of the resident set).
# The harness's
# `compare handshake` uses wrk, which resumes after its first connection
# (it keeps the session across `SSL_clear`), so it measures resumed
# handshakes only; this script measures both, and reports CPU per
# handshake (what the server spends), not the rate (which the one client
# caps).
#
#   benches/load/tls-nginx.sh [BINARY]     default: target/release/troupe
#
# Env: SECONDS_PER_RUN (default 8), ROUNDS (default 3), IDLE (default
# 10000; each server needs as many descriptors). Needs nginx, python3 and
# openssl (installed when missing) and the localhost certificate
# (scripts/localhost-cert.sh, run here).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=$(realpath "${1:-$repo/target/release/troupe}")
secs=${SECONDS_PER_RUN:-8}
rounds=${ROUNDS:-3}
idle=${IDLE:-10000}
command -v nginx >/dev/null && command -v openssl >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx openssl >/dev/null
}
"$repo/scripts/localhost-cert.sh"
tls="${CARGO_TARGET_DIR:-$repo/target}/tls"
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT

# nginx as the harness configures it for TLS: one worker, the same
# certificate, tickets on and no session cache (its defaults), except that
# TLS 1.3 is on: nginx 1.22's default `ssl_protocols` stops at TLS 1.2
# (1.3 joined the default in 1.23.4), which is what the harness's anchor
# speaks.
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 20000; }
http {
    access_log off;
    client_body_temp_path $work/body;
    server {
        listen 127.0.0.1:18494 ssl http2 backlog=4096;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate     $tls/localhost.crt;
        ssl_certificate_key $tls/localhost.key;
        location = /hello { default_type text/plain; return 200 "Hello, World!\n"; }
    }
}
EOF
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' &
pids+=($!)
(cd "$here" && exec "$bin" -c tls.ron) &
pids+=($!)
for port in 18483 18494; do
  for _ in $(seq 100); do curl -fsk -o /dev/null "https://127.0.0.1:$port/hello" && break; sleep 0.1; done
done

# cpu PID...: user+system clock ticks of the processes (nginx: master and
# worker), all threads.
cpu() {
  local sum=0 p
  for p in "$@"; do
    sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$sum"
}
nginx_pids() { echo "$(cat "$work/nginx.pid") $(pgrep -P "$(cat "$work/nginx.pid")")"; }
troupe_pid=${pids[1]}
tick=$(getconf CLK_TCK)

# run MODE PROTO PORT PIDS...: prints "connections cpu_us_per_handshake".
run() {
  local mode=$1 proto=$2 port=$3
  shift 3
  local before after n
  before=$(cpu "$@")
  n=$(openssl s_time -connect "127.0.0.1:$port" "-$mode" "-$proto" -time "$secs" -www /hello 2>/dev/null |
    awk '/connections in .* real seconds/ {print $1; exit}')
  after=$(cpu "$@")
  python3 -c "print($n, round(($after - $before) * 1e6 / $tick / max($n, 1), 1))"
}

# Memory first, while both heaps are fresh.
printf '%-8s %10s %22s %22s %9s\n' idle conns "troupe B/conn" "nginx B/conn" ratio
read -r _ _ _ tb < <(python3 "$here/idle.py" 18483 "$idle" "$troupe_pid")
# shellcheck disable=SC2046
read -r _ _ _ nb < <(python3 "$here/idle.py" 18494 "$idle" $(nginx_pids))
printf '%-8s %10s %22s %22s %9s\n' idle "$idle" "$tb" "$nb" "$(python3 -c "print(round($tb / $nb, 3))")"

printf '\n%-8s %-7s %5s %22s %22s %9s\n' mode proto round "troupe conns us/hs" "nginx conns us/hs" cpu_ratio
for proto in tls1_3 tls1_2; do
  for mode in new reuse; do
    for r in $(seq "$rounds"); do
      read -r tn tc < <(run "$mode" "$proto" 18483 "$troupe_pid")
      # shellcheck disable=SC2046
      read -r nn nc < <(run "$mode" "$proto" 18494 $(nginx_pids))
      printf '%-8s %-7s %5s %10s %11s %10s %11s %9s\n' "$mode" "$proto" "$r" "$tn" "$tc" "$nn" "$nc" \
        "$(python3 -c "print(round($tc / $nc, 3) if $nc else 'n/a')")"
    done
  done
done
