#!/usr/bin/env bash
# Installs a TLS scanner the outside checks (tests/it/tls_outside.rs) run,
# when it is missing, and prints the path of its command:
#   tests/tls/setup.sh testssl   Debian's testssl.sh (`testssl`)
#   tests/tls/setup.sh sslyze    sslyze from PyPI, in a venv under
#                                target/tools/sslyze (python3-venv from
#                                Debian if `python3 -m venv` is missing)
# Fails, saying why, when it cannot be installed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
# Waits for another apt (the other scanner's set-up, run by a test beside
# this one) instead of failing on its lock.
apt() {
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@" >/dev/null
}
case "${1:-}" in
testssl)
  command -v testssl >/dev/null 2>&1 || apt testssl.sh >&2
  command -v testssl
  ;;
sslyze)
  # Pinned, so the profile it checks (Mozilla's, shipped inside it) changes
  # only when this line does.
  version=6.3.1
  venv=${CARGO_TARGET_DIR:-$repo/target}/tools/sslyze
  if ! "$venv/bin/sslyze" --help 2>/dev/null | grep -q "SSLyze version $version"; then
    rm -rf "$venv"
    # Debian's python3 makes no venv (no ensurepip) without python3-venv.
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      apt python3 python3-venv >&2
      rm -rf "$venv"
      python3 -m venv "$venv" >&2
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check "sslyze==$version" >&2
  fi
  echo "$venv/bin/sslyze"
  ;;
*)
  echo "usage: $0 testssl|sslyze" >&2
  exit 2
  ;;
esac
