#!/bin/sh
# Makes a throw-away local CA and a server certificate for localhost, 127.0.0.1 and ::1 (and the
# address in $MKCERT_IP, if set), so that `curl --cacert DIR/ca.pem https://127.0.0.1:PORT/`
# trusts the balancer without -k.
# Usage: scripts/mkcert.sh DIR    (writes DIR/ca.pem, DIR/cert.pem, DIR/key.pem; P-256 keys,
# valid 30 days). The CA key is deleted once the certificate is signed: nothing else can be
# signed with it later.
set -eu
case ${1:-} in
-h | --help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
-*) echo "mkcert.sh: unknown option '$1' (usage: $0 DIR)" >&2; exit 2 ;;
esac
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
mkdir -p "$dir"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/server.cnf" <<CNF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1${MKCERT_IP:+, IP:$MKCERT_IP}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
CNF
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 30 \
    -subj "/CN=auth-demo local CA" -keyout "$tmp/ca.key" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -subj "/CN=localhost" -keyout "$dir/key.pem" -out "$tmp/server.csr" 2>/dev/null
openssl x509 -req -in "$tmp/server.csr" -CA "$dir/ca.pem" -CAkey "$tmp/ca.key" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -days 30 -sha256 -extfile "$tmp/server.cnf" \
    -out "$dir/cert.pem" 2>/dev/null
chmod 644 "$dir/ca.pem" "$dir/cert.pem"
echo "$dir/ca.pem $dir/cert.pem $dir/key.pem"
