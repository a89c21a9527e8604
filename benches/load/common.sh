# Sourced by the load scripts in this directory.

# wait_for URL: waits up to 10 s for URL to answer 2xx (troupe starting;
# an https URL may use the self-signed localhost certificate).
wait_for() {
  for _ in $(seq 100); do
    curl -fksS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 does not answer" >&2
  return 1
}

# ticks PID: CPU ticks (user + system, 1/CLK_TCK s each) of a process and
# its children (nginx's workers), from /proc.
ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
