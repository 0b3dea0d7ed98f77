#!/usr/bin/env bash
# Benchmarks bin/balancer against HAProxy and nginx, side by side in one run, in front of the
# same three trivial backends (three one-worker nginx instances answering "ok"). Loopback only;
# every process is started here in a temp dir and stopped at the end.
# Usage: scripts/bench_balancer.sh [--tls] [BALANCER_BINARY]
# --tls: clients speak HTTPS (TLS 1.3, keep-alive) to every proxy, which terminates it; the
# proxies and backends are pinned to CPU 0 and wrk -t1 to CPU 1, and a syscalls-per-request
# column comes from `strace -c` in one extra short run per proxy. CPU us/req: the proxy's
# user+system time (/proc) over all rounds divided by the requests it served.
# Environment: DURATION (seconds per round; 10, or 4 with --tls), ROUNDS (interleaved rounds,
# medians shown; 1, or 3 with --tls), CONNS (50), WRK_THREADS (2, or 1 with --tls), LB_THREADS
# (balancer threads for an extra row; 2, or 0 with --tls; 0 skips it), PIN (pin as above: 0 or
# 1; 1 with --tls), STRACE (syscall column: 0 or 1; 1 with --tls), PERF=FILE (also records
# `perf record -g` of the one-thread balancer during the first round into FILE).
set -eu
# shellcheck disable=SC2034 # read by lib.sh
LIB_PROG=bench_balancer.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/proxyconf.sh"
TLS=0
case ${1:-} in
-h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
--tls) TLS=1; shift ;;
-*) echo "bench_balancer.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac
BAL=${1:-bin/balancer}
if [ $TLS = 1 ]; then
	DURATION=${DURATION:-4}; ROUNDS=${ROUNDS:-3}; WRK_THREADS=${WRK_THREADS:-1}
	LB_THREADS=${LB_THREADS:-0}; PIN=${PIN:-1}; STRACE=${STRACE:-1}; SCHEME=https
else
	DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-1}; WRK_THREADS=${WRK_THREADS:-2}
	LB_THREADS=${LB_THREADS:-2}; PIN=${PIN:-0}; STRACE=${STRACE:-0}; SCHEME=http
fi
CONNS=${CONNS:-50}
for tool in wrk haproxy nginx python3 curl; do
	command -v $tool >/dev/null || { echo "bench_balancer: $tool is missing" >&2; exit 1; }
done
[ "$STRACE" = 0 ] || command -v strace >/dev/null ||
	{ echo "bench_balancer: strace is missing (STRACE=0 skips that column)" >&2; exit 1; }
[ -x "$BAL" ] || { echo "bench_balancer: no $BAL (run make)" >&2; exit 1; }
BAL=$(cd "$(dirname "$BAL")" && pwd)/$(basename "$BAL")
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
# Servers on CPU 0, the load generator on CPU 1: wrk never takes cycles from what it measures.
SRV=""; CLI=""
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	SRV="taskset -c 0"; CLI="taskset -c 1"
fi

T=$(mktemp -d /tmp/bench_balancer.XXXXXX)
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

port() { lib_free_ports 1; }
wait_port() { lib_wait_port "$1" "" "" 10 || { echo "bench_balancer: nothing listens on port $1" >&2; exit 1; }; }
B1=$(port); B2=$(port); B3=$(port)
for b in $B1 $B2 $B3; do
	proxyconf_nginx_main "$T/backend$b" "$T/backend$b/error.log" \
		"server { listen 127.0.0.1:$b; access_log off; location / { return 200 \"ok\\n\"; } }"
	$SRV nginx -p "$T/backend$b" -c "$T/backend$b/nginx.conf" 2>"$T/backend$b.err" &
	PIDS="$PIDS $!"
done
for b in $B1 $B2 $B3; do wait_port $b; done

# The same certificate (P-256) and the same protocol floor for every TLS terminator.
HTLS=""; NTLS=""; LBLISTEN="--listen"; LBTLS=""
if [ $TLS = 1 ]; then
	"$SCRIPTS/mkcert.sh" "$T/certs" >/dev/null
	cat "$T/certs/cert.pem" "$T/certs/key.pem" > "$T/certs/haproxy.pem"
	HTLS="--tls $T/certs/haproxy.pem"
	NTLS="--tls $T/certs/cert.pem $T/certs/key.pem"
	LBLISTEN="--tls-listen"
	LBTLS="--cert $T/certs/cert.pem --key $T/certs/key.pem"
fi

HP=$(port)
# shellcheck disable=SC2086 # HTLS and NTLS are lists of arguments
proxyconf_haproxy "$T/haproxy.cfg" "127.0.0.1:$HP" "127.0.0.1:$B1 127.0.0.1:$B2 127.0.0.1:$B3" $HTLS
$SRV haproxy -f "$T/haproxy.cfg" -db >"$T/haproxy.log" 2>&1 &
HPID=$!
PIDS="$PIDS $HPID"

NP=$(port)
# shellcheck disable=SC2086
proxyconf_nginx "$T/proxy" "127.0.0.1:$NP" "127.0.0.1:$B1 127.0.0.1:$B2 127.0.0.1:$B3" $NTLS
$SRV nginx -p "$T/proxy" -c "$T/proxy/nginx.conf" 2>"$T/proxy.err" &
NPID=$!
PIDS="$PIDS $NPID"

LP=$(port)
# shellcheck disable=SC2086 # LBTLS is a list of arguments
$SRV "$BAL" $LBLISTEN 127.0.0.1:$LP $LBTLS --backend 127.0.0.1:$B1 --backend 127.0.0.1:$B2 \
    --backend 127.0.0.1:$B3 --threads 1 --quiet 2>"$T/balancer.log" &
LBPID=$!
PIDS="$PIDS $LBPID"
LABELS="balancer haproxy nginx"
if [ "$LB_THREADS" -gt 1 ]; then
	LP2=$(port)
	# shellcheck disable=SC2086
	$SRV "$BAL" $LBLISTEN 127.0.0.1:$LP2 $LBTLS --backend 127.0.0.1:$B1 \
	    --backend 127.0.0.1:$B2 --backend 127.0.0.1:$B3 --threads "$LB_THREADS" --quiet \
	    2>"$T/balancer2.log" &
	PIDS="$PIDS $!"
	wait_port $LP2
	LABELS="$LABELS balancer2"
fi
wait_port $HP; wait_port $NP; wait_port $LP

port_of() {
	case $1 in balancer) echo $LP ;; haproxy) echo $HP ;; nginx) echo $NP ;; *) echo $LP2 ;; esac
}
title_of() {
	case $1 in
	balancer) echo "balancer (1 thread)" ;; haproxy) echo "haproxy (nbthread 1)" ;;
	nginx) echo "nginx (1 worker)" ;; *) echo "balancer ($LB_THREADS threads)" ;;
	esac
}
# The process that does the proxying: nginx's worker, not its master.
pid_of() {
	case $1 in
	balancer) echo $LBPID ;; haproxy) echo $HPID ;; nginx) pgrep -P $NPID | head -1 ;;
	*) echo "" ;;
	esac
}
# CPU time (user + system) the process has used so far, in clock ticks.
ticks() {
	[ -n "$1" ] && awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
# Latency from wrk ("812.00us", "3.41ms", "1.02s") in milliseconds.
ms() {
	awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/) n *= 1000;
	    printf "%.2f\n", n }'
}
median() {	# file with one number a line
	sort -g "$1" | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2)
	    print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
wrk_run() {	# label, seconds, output file
	# shellcheck disable=SC2086
	$CLI wrk -t"$WRK_THREADS" -c"$CONNS" -d"$2s" --latency "$SCHEME://127.0.0.1:$(port_of "$1")/" \
	    > "$3"
}

for l in $LABELS; do
	curl -skf "$SCHEME://127.0.0.1:$(port_of $l)/" >/dev/null ||
		{ echo "bench_balancer: $l does not answer" >&2; exit 1; }
done
echo "wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency over $SCHEME, three nginx backends," \
    "$(nproc) CPUs${SRV:+, servers on CPU 0 and wrk on CPU 1}; medians of $ROUNDS interleaved round(s)"
if [ -n "${PERF:-}" ]; then
	perf record -g -o "$PERF" -p "$LBPID" -- sleep "$DURATION" >/dev/null 2>&1 &
	PERFPID=$!
fi
r=1
while [ $r -le "$ROUNDS" ]; do
	for l in $LABELS; do
		t0=$(ticks "$(pid_of $l)")
		wrk_run $l "$DURATION" "$T/wrk.out"
		echo "$(($(ticks "$(pid_of $l)") - t0)) $(awk '/requests in/ {print $1}' "$T/wrk.out")" \
		    >> "$T/$l.cpu"
		awk '/^Requests\/sec/ {print $2}' "$T/wrk.out" >> "$T/$l.rps"
		ms "$(awk '$1 == "50%" {print $2}' "$T/wrk.out")" >> "$T/$l.p50"
		ms "$(awk '$1 == "99%" {print $2}' "$T/wrk.out")" >> "$T/$l.p99"
		awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$T/wrk.out" >> "$T/$l.errs"
	done
	[ $r = 1 ] && [ -n "${PERF:-}" ] && wait "$PERFPID"
	r=$((r + 1))
done
# Syscalls per request: strace slows the proxy down, so this is a run of its own.
if [ "$STRACE" = 1 ]; then
	for l in balancer haproxy nginx; do
		strace -c -f -o "$T/$l.strace" -p "$(pid_of $l)" 2>/dev/null &
		SPID=$!
		sleep 0.5
		wrk_run $l 2 "$T/wrk.strace"
		kill -INT $SPID 2>/dev/null || true
		wait $SPID 2>/dev/null || true
		reqs=$(awk '/requests in/ {print $1}' "$T/wrk.strace")
		awk -v n="$reqs" '$NF == "total" { printf "%.2f", $4 / n }' "$T/$l.strace" > "$T/$l.sys"
		# The mix: the most frequent calls, per request.
		awk -v n="$reqs" '$1 ~ /^[0-9.]+$/ && $NF != "total" && NF >= 5 {
		    printf "%s %.2f\n", $NF, $4 / n }' "$T/$l.strace" | sort -k2 -gr | head -6 |
		    awk '{ printf "%s %s  ", $1, $2 }' > "$T/$l.mix"
	done
fi
# CPU per request over all rounds: the proxy's own time, which a busy machine disturbs less
# than requests/s.
cpu_us() {
	awk -v hz="$(getconf CLK_TCK)" '{ t += $1; n += $2 }
	    END { if (n > 0 && t > 0) printf "%.1f", t * 1e6 / hz / n; else print "-" }' "$1"
}
printf '%-22s %12s %9s %9s %12s %12s\n' proxy "requests/s" "p50 ms" "p99 ms" "CPU us/req" \
    "syscalls/req"
for l in $LABELS; do
	printf '%-22s %12s %9s %9s %12s %12s  %s\n' "$(title_of $l)" "$(median "$T/$l.rps")" \
	    "$(median "$T/$l.p50")" "$(median "$T/$l.p99")" "$(cpu_us "$T/$l.cpu")" \
	    "$(cat "$T/$l.sys" 2>/dev/null || echo -)" "$(cat "$T/$l.errs")"
done
if [ "$STRACE" = 1 ]; then
	echo "syscalls per request (strace -c -f, one run of 2 s):"
	for l in balancer haproxy nginx; do
		printf '  %-10s %s\n' "$l" "$(cat "$T/$l.mix")"
	done
fi
exit 0
