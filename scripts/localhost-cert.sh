#!/bin/sh
# Makes the certificate the shipped config.ron serves HTTPS with, in
# target/tls/: a throwaway CA (ca.crt; its key is deleted once it has
# signed) and, signed by it, a certificate for localhost, secure.localhost,
# 127.0.0.1 and ::1 (localhost.crt, localhost.key). Nothing here is ever
# committed. Trust it per command: curl --cacert target/tls/ca.crt ...
#   scripts/localhost-cert.sh    # plugins/build.sh runs it; a no-op while
#                                # the certificate has 30 days left
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out="${CARGO_TARGET_DIR:-$root/target}/tls"
mkdir -p "$out"

if ! command -v openssl >/dev/null 2>&1; then
    echo "scripts/localhost-cert.sh: no openssl; installing it" >&2
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq openssl >/dev/null
fi
if [ -f "$out/localhost.crt" ] && [ -f "$out/localhost.key" ] && [ -f "$out/ca.crt" ] &&
    openssl x509 -checkend $((30 * 86400)) -noout -in "$out/localhost.crt" >/dev/null 2>&1; then
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
    -subj "/CN=Troupe localhost CA" -keyout "$tmp/ca.key" -out "$tmp/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout "$tmp/localhost.key" -out "$tmp/localhost.csr" 2>/dev/null
cat >"$tmp/ext" <<'EXT'
subjectAltName=DNS:localhost,DNS:secure.localhost,IP:127.0.0.1,IP:::1
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
EXT
openssl x509 -req -in "$tmp/localhost.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
    -CAcreateserial -days 397 -extfile "$tmp/ext" -out "$tmp/localhost.crt" 2>/dev/null
chmod 600 "$tmp/localhost.key"
mv "$tmp/localhost.key" "$out/localhost.key"
mv "$tmp/localhost.crt" "$out/localhost.crt"
mv "$tmp/ca.crt" "$out/ca.crt"
echo "scripts/localhost-cert.sh: made $out/localhost.crt (trust $out/ca.crt)" >&2
