#!/usr/bin/env bash
# Proxied WebSocket echo (issue 13): messages per second through Troupe
# and through nginx to the same echo backend, in one run.
#
#   benches/load/ws.sh     Env: DURATION (10 s a round), ROUNDS (3),
#                          CONNS (50), WINDOW (16 in flight per socket),
#                          BYTES (32 per message), PROFILE (release)
#
# One echo backend (examples/ws_bench.rs, tokio-tungstenite) on :18600;
# Troupe on :18610 and nginx on :18620 proxy `/` to it, nginx with the
# usual WebSocket location (Upgrade and Connection set, HTTP/1.1, one
# worker per core). The same client (ws_bench client) runs against each
# in turn, ROUNDS times; each line is `RESULT ws-echo target=… mps=…
# cpu_us_per_msg=…` (the proxy's own CPU, nginx's workers included), then
# the ratios of the medians (Troupe over nginx: ≥ 1.0 for messages, ≤ 1.0
# for CPU is the goal).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/common.sh"
profile=${PROFILE:-release}
duration=${DURATION:-10} rounds=${ROUNDS:-3}
conns=${CONNS:-50} window=${WINDOW:-16} bytes=${BYTES:-32}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$nginx" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
fi
cd "$repo"
flag=""; [ "$profile" = release ] && flag="--release"
cargo build $flag --quiet --bin troupe --example ws_bench
bin=$repo/target/$profile

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin/examples/ws_bench" echo 127.0.0.1:18600 &
pids+=($!)

cat >"$work/config.ron" <<RON
Config(
    listen: ["127.0.0.1:18610"],
    log: (access: Off),
    upstreams: { "echo": (backends: [(addr: "127.0.0.1:18600")]) },
    servers: [( routes: [ (path: "/{*rest}", handler: Proxy(upstream: "echo")) ] )],
)
RON
"$bin/troupe" -c "$work/config.ron" 2>"$work/troupe.log" &
pids+=($!)
troupe_pid=$!

mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<NGINX
worker_processes $(nproc);
pid $work/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
    upstream echo { server 127.0.0.1:18600; }
    server {
        listen 127.0.0.1:18620;
        location / {
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_read_timeout 60s;
        }
    }
}
NGINX
"$nginx" -c "$work/nginx.conf" -g 'daemon off;' &
pids+=($!)
nginx_pid=$!

# Both proxies up: a WebSocket handshake answers through each.
for port in 18610 18620; do
  for i in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
      -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
      -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "http://127.0.0.1:$port/" || true)
    [ "$code" = 101 ] && break
    [ "$i" = 100 ] && { echo "no WebSocket through :$port" >&2; cat "$work/troupe.log" >&2; exit 1; }
    sleep 0.1
  done
done

# The client and the echo backend share the machine's two cores with the
# proxy, so messages per second is mostly theirs; CPU per message
# (`ticks`, common.sh) is the proxy's own cost.
run() {
  local before after mps
  before=$(ticks "$4")
  mps=$("$bin/examples/ws_bench" client "ws://127.0.0.1:$2/" "$conns" "$duration" "$window" "$bytes" |
    sed -n 's/^messages_per_second=\([0-9]*\).*/\1/p')
  after=$(ticks "$4")
  # Microseconds of CPU per message (ticks are 1/CLK_TCK s).
  local us
  us=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v m="$mps" -v d="$duration" \
    'BEGIN {printf "%.2f", t / hz * 1e6 / (m * d)}')
  echo "RESULT ws-echo target=$1 round=$3 mps=$mps cpu_us_per_msg=$us conns=$conns window=$window bytes=$bytes"
}
results=$work/results
for r in $(seq "$rounds"); do
  run troupe 18610 "$r" "$troupe_pid" | tee -a "$results"
  run nginx 18620 "$r" "$nginx_pid" | tee -a "$results"
done
median() { grep "target=$1 " "$results" | sed "s/.* $2=\([0-9.]*\).*/\1/" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t=$(median troupe mps) n=$(median nginx mps)
tc=$(median troupe cpu_us_per_msg) nc=$(median nginx cpu_us_per_msg)
echo "RESULT ws-echo median troupe_mps=$t nginx_mps=$n ratio=$(awk -v t="$t" -v n="$n" 'BEGIN {printf "%.3f", t/n}')" \
  "troupe_cpu_us=$tc nginx_cpu_us=$nc cpu_ratio=$(awk -v t="$tc" -v n="$nc" 'BEGIN {printf "%.3f", t/n}')"
