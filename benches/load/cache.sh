#!/usr/bin/env bash
# Cache hits (issue 15): a proxied route answered from Troupe's memory
# tier against the same route answered by nginx's `proxy_cache`, in one
# run, for a small body and for 1 MiB; then the disk tier: 2000 keys
# (`/d/hello?k=N`, picked at random by wrk) behind a zone whose memory
# holds about a tenth of them, so most hits read their file back (nginx
# reads every hit from its cache files; both sit in the page cache).
#
#   benches/load/cache.sh     Env: DURATION (8 s a round), ROUNDS (3),
#                             CONNS (64), PROFILE (release)
#
# An origin nginx on :18700 serves `/hello` and the gen-www docroot under
# `/static/`, each with `Cache-Control: max-age=3600`. Troupe on :18710
# and nginx on :18720 (one worker each, access logs off, keep-alive to
# the origin) proxy `/` to it behind a cache; after one warming request
# every answer is a hit, so the origin is idle during the runs (checked:
# its request count does not move). wrk (one thread) runs against each
# in turn, ROUNDS times; each line is `RESULT cache path=… target=…
# rps=… cpu_us_per_req=…` (the cache's own CPU, nginx's worker included),
# then the ratios of the medians (Troupe over nginx: ≥ 1.0 for requests,
# ≤ 1.0 for CPU is the goal).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/common.sh"
profile=${PROFILE:-release}
duration=${DURATION:-8} rounds=${ROUNDS:-3} conns=${CONNS:-64}
bench=${BENCH:-$repo/../shared/bench}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$nginx" ] || ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
fi
cd "$repo"
flag=""; [ "$profile" = release ] && flag="--release"
cargo build $flag --quiet --bin troupe
bin=$repo/target/$profile/troupe

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
"$bench/gen-www" "$work/www" >/dev/null

# Both nginx instances share these lines.
common="pid PIDFILE; error_log $work/ERR warn; events { worker_connections 4096; }"
temps="client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work; uwsgi_temp_path $work; scgi_temp_path $work;"

cat >"$work/origin.conf" <<NGINX
worker_processes 1;
${common//PIDFILE/$work/origin.pid}
http {
    access_log $work/origin.log;
    $temps
    server {
        listen 127.0.0.1:18700;
        keepalive_requests 10000000;
        add_header Cache-Control "max-age=3600";
        location = /hello { default_type text/plain; return 200 "Hello, World!\n"; }
        location = /d/hello { default_type text/plain; return 200 "Hello, World!\n"; }
        location /static/ { alias $work/www/; }
    }
}
NGINX
"$nginx" -c "$work/origin.conf" -g 'daemon off;' &
pids+=($!)

mkdir -p "$work/cache"
cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
${common//PIDFILE/$work/nginx.pid}
http {
    access_log off;
    $temps
    proxy_cache_path $work/cache levels=1:2 keys_zone=pages:10m max_size=256m inactive=1h use_temp_path=off;
    upstream origin { server 127.0.0.1:18700; keepalive 16; }
    server {
        listen 127.0.0.1:18720;
        keepalive_requests 10000000;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache pages;
        }
    }
}
NGINX
"$nginx" -c "$work/nginx.conf" -g 'daemon off;' &
pids+=($!)
nginx_pid=$!

cat >"$work/config.ron" <<RON
Config(
    listen: ["127.0.0.1:18710"],
    workers: 1,
    limits: (keepalive_requests: 10000000),
    log: (level: "warn", access: Off),
    admin: (listen: "127.0.0.1:18711"),
    upstreams: { "origin": (backends: [(addr: "127.0.0.1:18700")]) },
    cache_zones: {
        "pages": (memory_bytes: 268435456, max_entry_bytes: 8388608),
        "disk": (memory_bytes: 65536, max_entry_bytes: 4096,
                 disk: (path: "$work/troupe-cache", max_bytes: 268435456, inactive: "1h")),
    },
    servers: [( routes: [
        (path: "/d/{*rest}", handler: Proxy(upstream: "origin"), cache: (zone: "disk")),
        (path: "/{*rest}", handler: Proxy(upstream: "origin"), cache: (zone: "pages")),
    ] )],
)
RON
"$bin" -c "$work/config.ron" 2>"$work/troupe.log" &
pids+=($!)
troupe_pid=$!

for port in 18700 18710 18720; do wait_for "http://127.0.0.1:$port/hello"; done
# Warm both caches, and check that the second answer is a hit.
for path in /hello /static/1m.bin; do
  for port in 18710 18720; do curl -fsS -o /dev/null "http://127.0.0.1:$port$path"; done
done
curl -fsS -D - -o /dev/null http://127.0.0.1:18710/static/1m.bin | grep -qi '^cache-status: troupe; hit' || {
  echo "troupe did not answer from its cache" >&2; exit 1; }
# Every disk key, once through each cache (keep-alive, so it is quick).
python3 - <<'PY'
import http.client
for port in (18710, 18720):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for k in range(1, 2001):
        c.request("GET", f"/d/hello?k={k}")
        c.getresponse().read()
PY
cat >"$work/keys.lua" <<'LUA'
math.randomseed(os.time())
request = function() return wrk.format("GET", "/d/hello?k=" .. math.random(1, 2000)) end
LUA
troupe_disk_reads() {
  curl -fsS "http://127.0.0.1:18711/metrics" | sed -n 's/^troupe_cache_disk_reads_total{zone="disk"} //p'
}
origin_before=$(wc -l <"$work/origin.log")

run() { # run PATH TARGET PORT PID ROUND (PATH /d/hello: random keys)
  local before after rps us script=()
  [ "$1" = /d/hello ] && script=(-s "$work/keys.lua")
  before=$(ticks "$4")
  rps=$(wrk -t1 -c"$conns" -d"${duration}s" "${script[@]}" "http://127.0.0.1:$3$1" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
  after=$(ticks "$4")
  us=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v r="$rps" -v d="$duration" \
    'BEGIN {printf "%.2f", t / hz * 1e6 / (r * d)}')
  echo "RESULT cache path=$1 target=$2 round=$5 rps=$rps cpu_us_per_req=$us conns=$conns"
}
results=$work/results
reads_before=$(troupe_disk_reads)
for path in /hello /static/1m.bin /d/hello; do
  for r in $(seq "$rounds"); do
    run "$path" troupe 18710 "$troupe_pid" "$r" | tee -a "$results"
    run "$path" nginx 18720 "$nginx_pid" "$r" | tee -a "$results"
  done
done
origin_after=$(wc -l <"$work/origin.log")
[ "$origin_after" = "$origin_before" ] || echo "note: the origin was asked $((origin_after - origin_before)) times during the runs" >&2
echo "RESULT cache disk_reads_during_runs=$(( $(troupe_disk_reads) - reads_before ))"

median() { grep "path=$1 target=$2 " "$results" | sed "s/.* $3=\([0-9.]*\).*/\1/" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for path in /hello /static/1m.bin /d/hello; do
  t=$(median "$path" troupe rps) n=$(median "$path" nginx rps)
  tc=$(median "$path" troupe cpu_us_per_req) nc=$(median "$path" nginx cpu_us_per_req)
  echo "RESULT cache path=$path median troupe_rps=$t nginx_rps=$n ratio=$(awk -v t="$t" -v n="$n" 'BEGIN {printf "%.3f", t/n}')" \
    "troupe_cpu_us=$tc nginx_cpu_us=$nc cpu_ratio=$(awk -v t="$tc" -v n="$nc" 'BEGIN {printf "%.3f", t/n}')"
done
