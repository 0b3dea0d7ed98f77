#!/usr/bin/env bash
# Single-server benchmark: GET /profile requests/s of one event-loop thread of each login
# server (memory sessions, Redis sessions, JWT HS256, JWT ES256) against the ceiling of the same
# scaffolding with no authentication at all (GET /healthz), and that ceiling against nginx
# `return 200` with one worker, side by side in one run, rounds interleaved and medians
# reported, servers pinned to CPU 0 and wrk to CPU 1 (taskset); ES256 next to `openssl speed`'s
# verify rate. Then /profile p99 latency on the memory store while logins are hashed in
# parallel, against idle. Loopback only; every process is started here in a temp dir and
# stopped at the end.
# Usage: scripts/bench_servers.sh [--rounds R] [--duration S]   (defaults 3 rounds of 5 s)
# Programs come from $AUTH_BIN (default <repo>/bin).
set -euo pipefail
LIB_PROG=bench_servers.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=3 DURATION=5 CONNS=50
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) lib_optarg ROUNDS "$@"; shift 2 ;;
	--duration) lib_optarg DURATION "$@"; shift 2 ;;
	-h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench_servers.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
done
case $ROUNDS$DURATION in *[!0-9]* | '') echo "bench_servers.sh: --rounds and --duration take whole numbers" >&2; exit 2 ;; esac
for tool in wrk redis-server curl nginx openssl; do
	command -v $tool >/dev/null || { echo "bench_servers.sh: $tool is missing (make bench installs it)" >&2; exit 1; }
done
BIN=${AUTH_BIN:-$LIB_ROOT/bin}
T=$(mktemp -d "${TMPDIR:-/tmp}/bench_servers.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

# Servers on one CPU, the load generator on another, so that they do not compete.
SRV_CPU=() LOAD_CPU=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	SRV_CPU=(taskset -c 0) LOAD_CPU=(taskset -c 1)
fi
WRK=$(command -v wrk)
wrk() { "${LOAD_CPU[@]}" "$WRK" "$@"; }

start() {	# name port argv...: one server on one thread, no access log
	local name=$1 port=$2
	shift 2
	"${SRV_CPU[@]}" "$@" >"$T/$name.log" 2>&1 &
	PIDS+=($!)
	lib_wait_port "$port" "$!" "${1##*/}" 20 || { cat "$T/$name.log" >&2; exit 1; }
}

# Users at OWASP's cost: the login load below is meant to be heavy.
printf 'alice-password\n' | "$BIN/authctl" useradd --users "$T/users.json" --role admin alice >/dev/null
"$BIN/authctl" keygen hs256 --out "$T/hs.key" >/dev/null
"$BIN/authctl" keygen es256 --out "$T/es.pem" >/dev/null
mapfile -t FREE < <(lib_free_ports 6)
RP=${FREE[4]}
redis-server --port "$RP" --bind 127.0.0.1 --dir "$T" --save '' --appendonly no >"$T/redis.log" 2>&1 &
PIDS+=($!)
lib_wait_port "$RP" "$!" redis-server 20

declare -A PORT
PORT=([memory]=${FREE[0]} [redis]=${FREE[1]} [hs256]=${FREE[2]} [es256]=${FREE[3]})
common=(--users "$T/users.json" --threads 1 --quiet)
start memory "${PORT[memory]}" "$BIN/session_server" --listen "127.0.0.1:${PORT[memory]}" --id memory "${common[@]}"
start redis "${PORT[redis]}" "$BIN/session_server" --listen "127.0.0.1:${PORT[redis]}" --id redis \
	--store "redis://127.0.0.1:$RP" "${common[@]}"
start hs256 "${PORT[hs256]}" "$BIN/jwt_server" --listen "127.0.0.1:${PORT[hs256]}" --id hs256 \
	--secret-file "$T/hs.key" "${common[@]}"
start es256 "${PORT[es256]}" "$BIN/jwt_server" --listen "127.0.0.1:${PORT[es256]}" --id es256 \
	--key "$T/es.pem" "${common[@]}"
# The reference: nginx answering `return 200` from one worker, no access log.
NP=${FREE[5]}
mkdir -p "$T/nginx"
cat >"$T/nginx/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $T/nginx; proxy_temp_path $T/nginx; fastcgi_temp_path $T/nginx;
	uwsgi_temp_path $T/nginx; scgi_temp_path $T/nginx;
	server { listen 127.0.0.1:$NP; location / { return 200 "ok\\n"; } }
}
NGINX
start nginx "$NP" nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log"

declare -A HDR
login() {	# variant: prints the header that carries its credential
	local out
	out=$(curl -sS -D - -o "$T/body" -H 'Content-Type: application/json' \
		-d '{"username":"alice","password":"alice-password"}' "http://127.0.0.1:${PORT[$1]}/login")
	case $1 in
	memory | redis) echo "Cookie: $(echo "$out" | tr -d '\r' | sed -n 's/^Set-Cookie: \(sid=[^;]*\).*/\1/p')" ;;
	*) echo "Authorization: Bearer $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["access_token"])' "$T/body")" ;;
	esac
}
for v in memory redis hs256 es256; do HDR[$v]=$(login "$v"); done

rps() {	# wrk output -> requests/s
	awk '/^Requests\/sec:/ { print $2 }'
}
p99() {	# wrk --latency output -> p99 in ms
	awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) sub(/ms$/, "", v); else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }; print v }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A R
echo "bench_servers: $ROUNDS rounds of ${DURATION}s, wrk -t1 -c$CONNS, one server thread each${SRV_CPU:+, pinned}" >&2
for ((i = 1; i <= ROUNDS; i++)); do
	R[nginx]+="$(wrk -t1 -c$CONNS -d${DURATION}s "http://127.0.0.1:$NP/" | rps) "
	for v in memory redis hs256 es256; do	# which of a pair runs first alternates by round
		((i % 2)) && R[ceil-$v]+="$(wrk -t1 -c$CONNS -d${DURATION}s "http://127.0.0.1:${PORT[$v]}/healthz" | rps) "
		R[$v]+="$(wrk -t1 -c$CONNS -d${DURATION}s -H "${HDR[$v]}" "http://127.0.0.1:${PORT[$v]}/profile" | rps) "
		((i % 2)) || R[ceil-$v]+="$(wrk -t1 -c$CONNS -d${DURATION}s "http://127.0.0.1:${PORT[$v]}/healthz" | rps) "
	done
	echo "  round $i done" >&2
done

# Ratios are taken within each round (the two runs sat next to each other in time), then the
# median of the rounds' ratios: slow drifts of a shared machine cancel out of each pair.
ratios() {	# two space-separated lists of the same length -> their ratios, one per line
	paste <(echo "$1" | tr ' ' '\n' | grep .) <(echo "$2" | tr ' ' '\n' | grep .) |
		awk '{ printf "%.4f\n", $1 / $2 }'
}
span() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'; }
printf '\n| server | ceiling /healthz req/s | /profile req/s | ratio (median of rounds) | ratio range |\n'
printf '|---|---:|---:|---:|---:|\n'
for v in memory redis hs256 es256; do
	c=$(echo "${R[ceil-$v]}" | tr ' ' '\n' | grep . | median)
	p=$(echo "${R[$v]}" | tr ' ' '\n' | grep . | median)
	printf '| %s | %.0f | %.0f | %.2f | %s |\n' "$v" "$c" "$p" \
		"$(ratios "${R[$v]}" "${R[ceil-$v]}" | median)" "$(ratios "${R[$v]}" "${R[ceil-$v]}" | span)"
done
n=$(echo "${R[nginx]}" | tr ' ' '\n' | grep . | median)
printf '\nnginx return 200 (one worker): %.0f req/s; session_server /healthz is %.2fx nginx (rounds %s)\n' \
	"$n" "$(ratios "${R[ceil-memory]}" "${R[nginx]}" | median)" "$(ratios "${R[ceil-memory]}" "${R[nginx]}" | span)"
# ES256 /profile is bounded by one signature verification per request: openssl's own rate.
es=$("${SRV_CPU[@]}" openssl speed -seconds 2 ecdsap256 2>/dev/null | awk '/256 bits ecdsa \(nistp256\)/ { print $NF }')
printf 'openssl speed ecdsap256 verify: %s/s on one core (ES256 /profile above)\n' "${es:-?}"

# p99 of /profile (memory store, 10 connections) idle, then while 4 connections keep logging in.
cat >"$T/login.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"username":"alice","password":"alice-password"}'
wrk.headers["Content-Type"] = "application/json"
LUA
idle=() busy=()
for ((i = 1; i <= ROUNDS; i++)); do
	idle+=("$(wrk -t1 -c10 -d${DURATION}s --latency -H "${HDR[memory]}" "http://127.0.0.1:${PORT[memory]}/profile" | p99)")
	wrk -t1 -c4 -d$((DURATION + 2))s -s "$T/login.lua" "http://127.0.0.1:${PORT[memory]}/login" >>"$T/logins.txt" &
	LOGINS=$!
	sleep 1
	busy+=("$(wrk -t1 -c10 -d${DURATION}s --latency -H "${HDR[memory]}" "http://127.0.0.1:${PORT[memory]}/profile" | p99)")
	wait "$LOGINS"
done
i=$(printf '%s\n' "${idle[@]}" | median)
b=$(printf '%s\n' "${busy[@]}" | median)
printf '\n/profile p99 (memory store, wrk -c10): idle %.2f ms, while logins hash %.2f ms (%.1fx)\n' \
	"$i" "$b" "$(echo "$b $i" | awk '{ print $1 / $2 }')"
# Each login is an scrypt hash at OWASP's cost (128 MiB, a few hundred ms of one core).
printf 'logins answered during the busy runs: %s in %s s; the hashing threads run at nice 10, so on\n' \
	"$(awk '/requests in/ { n += $1 } END { print n + 0 }' "$T/logins.txt")" "$((ROUNDS * (DURATION + 2)))"
printf 'this one pinned core they get what the event loop leaves: that is what keeps p99 flat\n'
