#!/usr/bin/env bash
# Hardening run for CI (make hardening): (1) builds the libFuzzer harnesses and runs each for
# SECONDS; (2) runs session_server (memory and Redis store), jwt_server and the balancer under
# valgrind memcheck through a short login/profile/logout session and a graceful SIGTERM, and
# fails on any memcheck error, any definite leak, or an exit status other than 0.
# Usage: scripts/hardening.sh [SECONDS]   (default 60)
# Environment: BIN, the binaries to run under valgrind (default bin/; an ASan build cannot run
# under valgrind); FUZZ_BUILD, the fuzzers' build directory (default build/fuzzer).
set -eu
# shellcheck disable=SC2034 # read by lib.sh
LIB_PROG=hardening.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
case ${1:-} in
-h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
[ $# -le 1 ] || lib_usage_error "usage: scripts/hardening.sh [SECONDS]"
seconds=${1:-60}
case $seconds in '' | *[!0-9]* | 0) lib_usage_error "SECONDS must be a positive whole number, not '$seconds'" ;; esac
root=$LIB_ROOT
bin=${BIN:-$root/bin}
fuzzbuild=${FUZZ_BUILD:-build/fuzzer}
make=${MAKE:-make}
cd "$root"

echo "hardening: building the fuzzers"
$make --no-print-directory SANITIZER=fuzzer BUILD="$fuzzbuild" fuzz-build
echo "hardening: fuzzing each harness for ${seconds}s"
scripts/fuzz.sh "$fuzzbuild/fuzz" "$seconds"

command -v valgrind >/dev/null || { echo "hardening: valgrind is not installed" >&2; exit 1; }
tmp=$(mktemp -d)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Waits for a listener; valgrind makes start-up slow.
wait_port() {
	lib_wait_port "$1" "" "" 30 || { echo "hardening: nothing listens on $1" >&2; exit 1; }
}

# Starts NAME under memcheck with the remaining arguments; sets $last to its pid.
vg_start() {
	name=$1
	shift
	valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
	    --log-file="$tmp/vg-$name.log" "$@" 2>"$tmp/$name.log" &
	last=$!
	pids="$pids $last"
}

# SIGTERM, then the exit status must be 0 and memcheck's log empty (-q logs only problems).
vg_stop() {
	name=$1 pid=$2
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	if [ $rc -ne 0 ] || [ -s "$tmp/vg-$name.log" ]; then
		echo "hardening: $name exited $rc under valgrind" >&2
		cat "$tmp/vg-$name.log" >&2
		tail -n 20 "$tmp/$name.log" >&2
		failed=1
	else
		echo "hardening: $name: exit 0, no memcheck errors, no definite leaks"
	fi
}

# expect STATUS curl-arguments...: one request that must get STATUS.
expect() {
	want=$1
	shift
	got=$(curl -s -o "$tmp/body" -w '%{http_code}' -m 20 -b "$tmp/jar" -c "$tmp/jar" "$@") || true
	if [ "$got" != "$want" ]; then
		echo "hardening: curl $*: got $got, want $want" >&2
		cat "$tmp/body" >&2
		failed=1
	fi
}

# The flow every login server gets: good and bad logins, profile, logout, limits. A second
# argument "jwt" adds the token checks.
flow() {
	url=$1 kind=${2:-session}
	rm -f "$tmp/jar"
	expect 200 "$url/healthz"
	expect 200 "$url/metrics"
	expect 404 "$url/nowhere"
	expect 401 "$url/profile"
	expect 401 -H 'Content-Type: application/json' -d '{"username":"alice","password":"wrong"}' "$url/login"
	expect 400 -H 'Content-Type: application/json' -d '{"username":"alice"' "$url/login"
	expect 413 -H 'Content-Type: application/json' --data-binary "@$tmp/big" "$url/login"
	expect 200 -H 'Content-Type: application/json' -d '{"username":"alice","password":"alice-password"}' "$url/login"
	expect 200 "$url/profile"
	expect 200 "$url/profile"
	if [ "$kind" = jwt ]; then
		# A bad header is not rescued by the good cookie in the jar.
		expect 401 -H 'Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.' "$url/profile"
	fi
	expect 200 -d 'username=bob&password=bob-password' "$url/login"
	expect 200 "$url/profile"
	logout=$(curl -s -o /dev/null -w '%{http_code}' -m 20 -b "$tmp/jar" -c "$tmp/jar" -X POST "$url/logout")
	case $logout in 200|204) ;; *) echo "hardening: logout at $url: $logout" >&2; failed=1 ;; esac
}

failed=0
echo "hardening: valgrind memcheck run with $bin"
printf 'alice-password\n' | "$bin/authctl" useradd --users "$tmp/users.json" --ln 4 alice >/dev/null 2>&1
printf 'bob-password\n' | "$bin/authctl" useradd --users "$tmp/users.json" --ln 4 bob >/dev/null 2>&1
"$bin/authctl" keygen hs256 --out "$tmp/secret" >/dev/null 2>&1
python3 -c 'import json; print(json.dumps({"username": "alice", "password": "x" * 9000}))' >"$tmp/big"

read -r s1 j1 lb lbtls rp s2 <<<"$(lib_free_ports 6 | tr '\n' ' ')"
vg_start session_memory "$bin/session_server" --listen "127.0.0.1:$s1" --id vg-s1 --users "$tmp/users.json"
spid=$last
vg_start jwt "$bin/jwt_server" --listen "127.0.0.1:$j1" --id vg-j1 --users "$tmp/users.json" \
    --secret-file "$tmp/secret"
jpid=$last
scripts/mkcert.sh "$tmp/certs" >/dev/null
vg_start balancer "$bin/balancer" --listen "127.0.0.1:$lb" --backend "127.0.0.1:$j1" \
    --backend "127.0.0.1:$s1" --health-interval 500 --tls-listen "127.0.0.1:$lbtls" \
    --cert "$tmp/certs/cert.pem" --key "$tmp/certs/key.pem"
lpid=$last
rpid=""
if command -v redis-server >/dev/null; then
	redis-server --port "$rp" --bind 127.0.0.1 --dir "$tmp" --save '' --appendonly no \
	    --daemonize no >"$tmp/redis.log" 2>&1 &
	redispid=$!
	pids="$pids $redispid"
	vg_start session_redis "$bin/session_server" --listen "127.0.0.1:$s2" --id vg-s2 \
	    --users "$tmp/users.json" --store "redis://127.0.0.1:$rp"
	rpid=$last
fi

wait_port "$s1"
wait_port "$j1"
wait_port "$lb"
wait_port "$lbtls"
flow "http://127.0.0.1:$s1"
flow "http://127.0.0.1:$j1" jwt
if [ -n "$rpid" ]; then
	wait_port "$s2"
	flow "http://127.0.0.1:$s2"
fi
# Through the balancer, round robin over both servers: only what both answer alike.
i=0
while [ $i -lt 6 ]; do
	expect 200 "http://127.0.0.1:$lb/healthz"
	expect 404 "http://127.0.0.1:$lb/nowhere"
	expect 200 --cacert "$tmp/certs/ca.pem" "https://localhost:$lbtls/healthz"
	i=$((i + 1))
done
# TLS: a body too large (413), and a client that leaves mid-request without close_notify.
head -c 2000000 /dev/zero > "$tmp/zeros"
expect 413 --cacert "$tmp/certs/ca.pem" --data-binary "@$tmp/zeros" "https://localhost:$lbtls/login"
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n' | timeout 10 openssl s_client -quiet \
    -connect "127.0.0.1:$lbtls" >/dev/null 2>&1 || true
expect 400 -H 'Transfer-Encoding: chunked' -H 'Content-Length: 3' -d 'abc' "http://127.0.0.1:$lb/login"

vg_stop balancer "$lpid"
vg_stop session_memory "$spid"
vg_stop jwt "$jpid"
[ -z "$rpid" ] || vg_stop session_redis "$rpid"
if [ $failed -ne 0 ]; then
	echo "hardening: FAILED"
	exit 1
fi
echo "hardening: all passed"
