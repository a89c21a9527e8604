#!/bin/sh
# Makes the certificate the shipped config.ron serves HTTPS with, in
# target/tls/: a throwaway CA (ca.crt; its key is deleted once it has
# signed) and, signed by it, a certificate for localhost, secure.localhost,
# 127.0.0.1 and ::1 (localhost.crt, localhost.key), with the CA's
# revocation list (crl/ca.crl). Nothing here is ever committed. Trust it
# per command: curl --cacert target/tls/ca.crt ...
#   scripts/localhost-cert.sh    # plugins/build.sh runs it; a no-op while
#                                # the certificate has 60 days left
#
# Revocation: a certificate that names no way to check it (no CRL
# distribution point, no OCSP responder) cannot be revoked at all, and
# testssl.sh rates that HIGH. This one names
# http://localhost:8080/crl/ca.crl, which the shipped config serves from
# target/tls/crl/ over plain HTTP (CRLs are signed, so they need no TLS,
# and fetching one over HTTPS could need the very check it is for). The
# CA signs that CRL before its key is deleted: it lists nothing, and as no
# one can sign anything with this CA again, "nothing revoked" stays true
# until the CRL's nextUpdate, the day the certificate expires. To revoke
# the certificate, make a new one: delete target/tls/ and run this again.
# A real deployment gets its certificate from a CA that runs the CRL or
# OCSP service itself (ACME CAs do).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out="${CARGO_TARGET_DIR:-$root/target}/tls"
mkdir -p "$out"

if ! command -v openssl >/dev/null 2>&1; then
    echo "scripts/localhost-cert.sh: no openssl; installing it" >&2
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq openssl >/dev/null
fi
# Lifetime: 90 days, as ACME CAs issue and Mozilla's TLS guidelines
# recommend (sslyze checks their "intermediate" profile, which refuses more
# than 366). Made again once fewer than 60 days are left: testssl.sh rates
# a certificate that expires within 60 days MEDIUM, and a new one costs
# nothing here. The CRL is checked too: a certificate made before this
# script wrote one names no CRL, so it is made again.
days=90
if [ -f "$out/localhost.crt" ] && [ -f "$out/localhost.key" ] && [ -f "$out/ca.crt" ] &&
    [ -f "$out/crl/ca.crl" ] &&
    openssl x509 -checkend $((60 * 86400)) -noout -in "$out/localhost.crt" >/dev/null 2>&1; then
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
crlDistributionPoints=URI:http://localhost:8080/crl/ca.crl
EXT
openssl x509 -req -in "$tmp/localhost.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
    -CAcreateserial -days "$days" -extfile "$tmp/ext" -out "$tmp/localhost.crt" 2>/dev/null

# The CRL: `openssl ca` keeps its state in files; an empty index means
# nothing revoked.
: >"$tmp/index.txt"
echo 01 >"$tmp/crlnumber"
cat >"$tmp/ca.cnf" <<CNF
[ca]
default_ca = throwaway
[throwaway]
database = $tmp/index.txt
crlnumber = $tmp/crlnumber
default_md = sha256
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
CNF
openssl ca -batch -gencrl -config "$tmp/ca.cnf" -keyfile "$tmp/ca.key" -cert "$tmp/ca.crt" \
    -crldays "$days" -out "$tmp/ca.crl.pem" 2>/dev/null
# DER, as RFC 5280 asks of a CRL fetched over HTTP.
openssl crl -in "$tmp/ca.crl.pem" -outform DER -out "$tmp/ca.crl"
openssl verify -crl_check -CAfile "$tmp/ca.crt" -CRLfile "$tmp/ca.crl.pem" \
    "$tmp/localhost.crt" >/dev/null

chmod 600 "$tmp/localhost.key"
mkdir -p "$out/crl"
mv "$tmp/localhost.key" "$out/localhost.key"
mv "$tmp/localhost.crt" "$out/localhost.crt"
mv "$tmp/ca.crt" "$out/ca.crt"
mv "$tmp/ca.crl" "$out/crl/ca.crl"
echo "scripts/localhost-cert.sh: made $out/localhost.crt (trust $out/ca.crt)" >&2
