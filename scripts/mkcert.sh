#!/bin/sh
# Makes a local CA and a server certificate for localhost, 127.0.0.1 and ::1 (and the address in
# $MKCERT_IP, if set), so that `curl --cacert DIR/ca.pem https://127.0.0.1:PORT/` trusts the
# balancer without -k.
# Usage: scripts/mkcert.sh DIR    (writes DIR/ca.pem, DIR/cert.pem, DIR/key.pem; P-256 keys,
# valid 30 days). Without MKCERT_CA_DIR the CA is thrown away: its key is deleted once the
# certificate is signed. With MKCERT_CA_DIR=D the CA is kept in D (ca.pem, ca.key 0600; made once,
# valid a year, constrained to localhost and loopback addresses) so it is trusted once, not per run.
set -eu
case ${1:-} in
-h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

# make_ca CERT KEY DAYS [EXTRA -addext ARGS...]
make_ca() {
	c=$1 k=$2 days=$3
	shift 3
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days "$days" \
	    -subj "/CN=auth-demo local CA" -keyout "$k" -out "$c" \
	    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
	    -addext "keyUsage=critical,keyCertSign,cRLSign" "$@" 2>/dev/null
}

if [ -n "${MKCERT_CA_DIR:-}" ]; then
	mkdir -p "$MKCERT_CA_DIR"
	ca=$MKCERT_CA_DIR/ca.pem cakey=$MKCERT_CA_DIR/ca.key
	# Clusters start side by side: one of them makes the CA, the others wait for it.
	exec 9>"$MKCERT_CA_DIR/.lock"
	flock 9
	if ! [ -s "$ca" ] || ! [ -s "$cakey" ] || ! openssl x509 -in "$ca" -noout -checkend 2678400 >/dev/null 2>&1; then
		make_ca "$tmp/ca.pem" "$tmp/ca.key" 365 \
		    -addext "nameConstraints=critical,permitted;DNS:localhost,permitted;IP:127.0.0.0/255.0.0.0,permitted;IP:::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
		mv "$tmp/ca.key" "$cakey"
		chmod 644 "$tmp/ca.pem"
		mv "$tmp/ca.pem" "$ca"
	fi
	flock -u 9
else
	ca=$tmp/ca.pem cakey=$tmp/ca.key
	make_ca "$ca" "$cakey" 30
fi
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -subj "/CN=localhost" -keyout "$dir/key.pem" -out "$tmp/server.csr" 2>/dev/null
openssl x509 -req -in "$tmp/server.csr" -CA "$ca" -CAkey "$cakey" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -days 30 -sha256 -extfile "$tmp/server.cnf" \
    -out "$dir/cert.pem" 2>/dev/null
[ "$ca" = "$dir/ca.pem" ] || cp "$ca" "$dir/ca.pem"
chmod 644 "$dir/ca.pem" "$dir/cert.pem"
echo "$dir/ca.pem $dir/cert.pem $dir/key.pem"
