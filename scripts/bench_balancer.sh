#!/usr/bin/env bash
# Benchmarks bin/balancer against HAProxy and nginx, side by side in one run, in front of the
# same three trivial backends (three one-worker nginx instances answering "ok"). Loopback only;
# every process is started here in a temp dir and stopped at the end.
# Usage: scripts/bench_balancer.sh [BALANCER_BINARY]
# Environment: DURATION (seconds per run, default 10), CONNS (default 50), WRK_THREADS (default 2),
# LB_THREADS (balancer threads for an extra run, default 2; 0 skips it), PERF=FILE (also
# records `perf record -g` of the one-thread balancer run into FILE).
set -eu
# shellcheck disable=SC2034 # read by lib.sh
LIB_PROG=bench_balancer.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/proxyconf.sh"
case ${1:-} in
-h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
-*) echo "bench_balancer.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac
BAL=${1:-bin/balancer}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
WRK_THREADS=${WRK_THREADS:-2}
LB_THREADS=${LB_THREADS:-2}
for tool in wrk haproxy nginx python3; do
	command -v $tool >/dev/null || { echo "bench_balancer: $tool is missing" >&2; exit 1; }
done
[ -x "$BAL" ] || { echo "bench_balancer: no $BAL (run make)" >&2; exit 1; }
BAL=$(cd "$(dirname "$BAL")" && pwd)/$(basename "$BAL")

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
	nginx -p "$T/backend$b" -c "$T/backend$b/nginx.conf" 2>"$T/backend$b.err" &
	PIDS="$PIDS $!"
done
for b in $B1 $B2 $B3; do wait_port $b; done

HP=$(port)
proxyconf_haproxy "$T/haproxy.cfg" "127.0.0.1:$HP" "127.0.0.1:$B1 127.0.0.1:$B2 127.0.0.1:$B3"
haproxy -f "$T/haproxy.cfg" -db >"$T/haproxy.log" 2>&1 &
PIDS="$PIDS $!"

NP=$(port)
proxyconf_nginx "$T/proxy" "127.0.0.1:$NP" "127.0.0.1:$B1 127.0.0.1:$B2 127.0.0.1:$B3"
nginx -p "$T/proxy" -c "$T/proxy/nginx.conf" 2>/dev/null &
PIDS="$PIDS $!"

LP=$(port)
LBPID_FILE="$T/lb.pid"
"$BAL" --listen 127.0.0.1:$LP --backend 127.0.0.1:$B1 --backend 127.0.0.1:$B2 \
    --backend 127.0.0.1:$B3 --threads 1 --quiet 2>"$T/balancer.log" &
LBPID=$!
PIDS="$PIDS $LBPID"
if [ "$LB_THREADS" -gt 1 ]; then
	LP2=$(port)
	"$BAL" --listen 127.0.0.1:$LP2 --backend 127.0.0.1:$B1 --backend 127.0.0.1:$B2 \
	    --backend 127.0.0.1:$B3 --threads "$LB_THREADS" --quiet 2>"$T/balancer2.log" &
	PIDS="$PIDS $!"
	wait_port $LP2
fi
wait_port $HP; wait_port $NP; wait_port $LP

run() {	# label, port
	curl -sf "http://127.0.0.1:$2/" >/dev/null || { echo "bench_balancer: $1 does not answer" >&2; exit 1; }
	wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$2/" > "$T/wrk.out"
	rps=$(awk '/^Requests\/sec/ {print $2}' "$T/wrk.out")
	p50=$(awk '$1 == "50%" {print $2}' "$T/wrk.out")
	p99=$(awk '$1 == "99%" {print $2}' "$T/wrk.out")
	errs=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$T/wrk.out")
	printf '%-22s %12s %10s %10s  %s\n' "$1" "$rps" "$p50" "$p99" "$errs"
}
echo "wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency, three nginx backends, $(nproc) CPUs"
printf '%-22s %12s %10s %10s\n' proxy "requests/s" p50 p99
if [ -n "${PERF:-}" ]; then
	perf record -g -o "$PERF" -p "$LBPID" -- sleep "$DURATION" >/dev/null 2>&1 &
	PERFPID=$!
fi
run "balancer (1 thread)" $LP
[ -n "${PERF:-}" ] && wait "$PERFPID"
run "haproxy (nbthread 1)" $HP
run "nginx (1 worker)" $NP
[ "$LB_THREADS" -gt 1 ] && run "balancer ($LB_THREADS threads)" $LP2
exit 0
