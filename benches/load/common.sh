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
