#!/usr/bin/env bash
# The benchmark behind `make bench`: the same load (loadgen, closed loop) against every variant
# (session-memory, session-sticky, session-redis, jwt-hs256, jwt-es256), each a cluster of N
# instances behind one balancer. All clusters stay up for the whole run; after a warm-up the
# runs are interleaved round by round (the order rotates) so that the machine's drift hits
# them alike, and the medians over the rounds are reported. With --redis-rtt every variant runs
# once per round-trip time, with bin/relay adding that distance between the servers and Redis.
# With --failover, one more loadgen run while a backend is SIGKILLed and started again; with
# --failover-redis, one on a session-redis-ha cluster while its Redis master is SIGKILLed. Writes
# into the output directory:
#   raw/KEY-rK.json       loadgen's JSON report of every run, plus its CPU accounting
#   meta.json             the settings, the runs and the exact command
#   results.md, results.json, one SVG per chart and report.html (scripts/bench_report.py)
# and, unless --no-wrk, the loadgen-to-wrk requests/s ratio on a trivial endpoint.
set -euo pipefail
# shellcheck disable=SC2034 # read by lib.sh
LIB_PROG=bench.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_VARIANTS="session-memory session-sticky session-redis jwt-hs256 jwt-es256 jwt-hs256-revoke jwt-refresh"
DEFAULT_VARIANTS="session-memory session-sticky session-redis jwt-hs256 jwt-es256"
RTT_VARIANTS="session-redis jwt-hs256-revoke jwt-refresh jwt-hs256"

usage() {
	cat <<EOF
usage: scripts/bench.sh [--balancer ours|haproxy|nginx] [--instances N] [--rounds R]
                        [--duration SECONDS] [--warmup SECONDS] [--users N]
                        [--concurrency C] [--threads T] [--variants "V1 V2 ..."]
                        [--redis-rtt MS[,MS...]] [--failover] [--failover-redis]
                        [--out DIR] [--no-wrk]

  --balancer        which balancer fronts every cluster (default ours)
  --instances N     login servers per cluster (default 3)
  --rounds R        measured rounds; each runs every variant once (default 5)
  --duration S      seconds per measured run (default 4)
  --warmup S        seconds of unrecorded load per variant first (default 2)
  --users N         virtual users, each logging in once (default 24)
  --concurrency C   connections (default: one per user)
  --threads T       loadgen event-loop threads (default 1)
  --variants LIST   a subset of: $ALL_VARIANTS
                    (default: $DEFAULT_VARIANTS;
                    with --redis-rtt: $RTT_VARIANTS)
  --redis-rtt LIST  run every variant at each of these round trips (ms) between the servers
                    and Redis, through bin/relay (0 still goes through it), e.g. 0,0.2,1,2,5
  --failover        also run loadgen on the first variant for 12 s while app1 is SIGKILLed
                    (at 3 s) and started again (at 7 s); errors per second go into the report
  --failover-redis  the same on a session-redis-ha cluster (Redis Sentinel: a master, two
                    replicas, three sentinels) whose Redis master is SIGKILLed at 3 s
  --out DIR         output directory (default bench-results/<timestamp>)
  --no-wrk          skip the loadgen-versus-wrk comparison

Programs come from \$AUTH_BIN (default: <repo>/bin). The defaults take about 2.5 minutes.
EOF
}

B_BALANCER=ours B_INSTANCES=3 ROUNDS=5 DURATION=4 WARMUP=2 B_USERS=24 B_CONC='' B_THREADS=1
VARIANTS='' OUT='' WRK=1 RTTS='' FAILOVER=0 FAILOVER_REDIS=0
COMMAND="scripts/bench.sh $*"
while [ $# -gt 0 ]; do
	case $1 in
	--balancer) lib_optarg B_BALANCER "$@"; shift 2 ;;
	--instances) lib_optarg B_INSTANCES "$@"; shift 2 ;;
	--rounds) lib_optarg ROUNDS "$@"; shift 2 ;;
	--duration) lib_optarg DURATION "$@"; shift 2 ;;
	--warmup) lib_optarg WARMUP "$@"; shift 2 ;;
	--users) lib_optarg B_USERS "$@"; shift 2 ;;
	--concurrency) lib_optarg B_CONC "$@"; shift 2 ;;
	--threads) lib_optarg B_THREADS "$@"; shift 2 ;;
	--variants) lib_optarg VARIANTS "$@"; shift 2 ;;
	--out) lib_optarg OUT "$@"; shift 2 ;;
	--no-wrk) WRK=0; shift ;;
	--redis-rtt) lib_optarg RTTS "$@"; shift 2 ;;
	--failover) FAILOVER=1; shift ;;
	--failover-redis) FAILOVER_REDIS=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
done
case $B_BALANCER in ours | haproxy | nginx) ;; *)
	echo "bench.sh: --balancer is ours, haproxy or nginx" >&2; exit 2 ;; esac
for n in "$B_INSTANCES" "$ROUNDS" "$B_USERS" "$B_THREADS" ${B_CONC:+"$B_CONC"}; do
	case $n in '' | *[!0-9]* | 0) echo "bench.sh: '$n' is not a positive whole number" >&2; exit 2 ;; esac
done
for n in "$DURATION" "$WARMUP"; do
	case $n in '' | *[!0-9.]* | *.*.*) echo "bench.sh: '$n' is not a number of seconds" >&2; exit 2 ;; esac
done
for v in $VARIANTS; do
	case " $ALL_VARIANTS " in *" $v "*) ;; *)
		echo "bench.sh: unknown variant '$v' (one of: $ALL_VARIANTS)" >&2; exit 2 ;; esac
done
if [ -z "$VARIANTS" ]; then
	VARIANTS=$DEFAULT_VARIANTS
	[ -z "$RTTS" ] || VARIANTS=$RTT_VARIANTS
fi
RTTS=${RTTS//,/ }
for t in $RTTS; do
	case $t in *[!0-9.]* | *.*.* | .*) echo "bench.sh: --redis-rtt wants milliseconds like 0,0.2,1, not '$t'" >&2; exit 2 ;; esac
done
# A run is one variant at one round trip: KEY is the variant, or VARIANT@RTT with --redis-rtt.
KEYS=""
for v in $VARIANTS; do
	if [ -z "$RTTS" ]; then KEYS="$KEYS $v"; else for t in $RTTS; do KEYS="$KEYS $v@$t"; done; fi
done
KEYS=${KEYS# }
B_CONC=${B_CONC:-$B_USERS}
LOADGEN=$AUTH_BIN/loadgen
[ -x "$LOADGEN" ] || lib_die "$LOADGEN not found: build it (make) or set AUTH_BIN"
[ -z "$RTTS" ] || [ -x "$AUTH_BIN/relay" ] || lib_die "$AUTH_BIN/relay not found: build it (make)"
if [ "$WRK" = 1 ] && ! command -v wrk >/dev/null; then
	echo "bench.sh: wrk is not installed: skipping the loadgen-versus-wrk comparison" >&2
	WRK=0
fi

OUT=${OUT:-$LIB_ROOT/bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/raw" "$OUT/run"
OUT=$(cd "$OUT" && pwd)
say() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Every cluster is stopped on the way out, however we leave.
STARTED=""
bench_cleanup() {
	local v
	for v in $STARTED; do
		"$LIB_ROOT/scripts/cluster.sh" down --dir "$OUT/run/$v" >/dev/null 2>&1 || true
	done
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The processes a cluster runs on: servers, balancer (nginx's workers too), Redis and the relay.
cluster_pids() {
	local env=$OUT/run/$1/cluster.env pids
	pids=$(sed -n 's/^PID_[A-Za-z0-9_]*=\([0-9][0-9]*\)$/\1/p' "$env")
	for p in $pids; do
		echo "$p"
		pgrep -P "$p" 2>/dev/null || true
	done
}

# utime + stime of the given pids, in clock ticks, from their own accounting (/proc/PID/stat).
cpu_ticks() {
	local total=0 p f
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
		# shellcheck disable=SC2086 # the fields are what we split
		set -- $f
		total=$((total + ${12} + ${13}))
	done
	echo "$total"
}

# One loadgen run against a variant; writes raw/NAME.json with the CPU ticks added.
bench_run() {
	local v=$1 name=$2 secs=$3 pids before after
	(
		# shellcheck disable=SC1090,SC1091
		. "$OUT/run/$v/cluster.env"
		pids=$(cluster_pids "$v")
		# shellcheck disable=SC2086
		before=$(cpu_ticks $pids)
		# jwt-refresh's users also trade their refresh token once 3/4 of the token's life is over.
		[ "$VARIANT" != jwt-refresh ] || FLOW=refresh
		"$LOADGEN" --url "$BALANCER_URL" --cacert "$CA" --flow "$FLOW" \
			--credentials "$CREDENTIALS" --users "$B_USERS" --concurrency "$B_CONC" \
			--threads "$B_THREADS" --duration "$secs" --timeout 5 \
			--json "$OUT/raw/$name.json.tmp" >"$OUT/raw/$name.txt" 2>"$OUT/raw/$name.err" || true
		# shellcheck disable=SC2086
		after=$(cpu_ticks $pids)
		[ -s "$OUT/raw/$name.json.tmp" ] || lib_die "loadgen wrote no report for $name: $(cat "$OUT/raw/$name.err")"
		"$PYTHON" - "$OUT/raw/$name.json.tmp" "$OUT/raw/$name.json" "$v" \
			"$((after - before))" "$(getconf CLK_TCK)" "$pids" <<'EOF'
import json, sys
src, dst, key, ticks, hz, pids = sys.argv[1:]
r = json.load(open(src))
r["variant"], _, rtt = key.partition("@")
r["redis_rtt_ms"] = float(rtt) if rtt else None
r["cluster_cpu_s"] = int(ticks) / int(hz)
r["cluster_pids"] = [int(p) for p in pids.split()]
json.dump(r, open(dst, "w"), indent=2, sort_keys=True)
EOF
		rm -f "$OUT/raw/$name.json.tmp"
	)
}

# ---- clusters --------------------------------------------------------------------------------

# Cheap password hashes: each user logs in once per run, and the benchmark is about the requests
# that follow (the login's scrypt cost is the same in every variant anyway).
export CLUSTER_LN=${CLUSTER_LN:-8}
for k in $KEYS; do
	v=${k%@*} t=''
	[ "$k" = "$v" ] || t=${k#*@}
	# A variant without Redis is the same system at every round trip: one cluster serves all
	# its runs, so that the control differs between round trips by the machine's noise only.
	case $v in session-redis | jwt-hs256-revoke | jwt-refresh) ;; *)
		if [ -n "$t" ] && [ -d "$OUT/run/$v@${RTTS%% *}" ] && [ "$t" != "${RTTS%% *}" ]; then
			ln -s "$v@${RTTS%% *}" "$OUT/run/$k"
			continue
		fi ;;
	esac
	say "starting $k: $B_INSTANCES instances behind $B_BALANCER"
	STARTED="$STARTED $k"
	CLUSTER_REDIS_RTT=$t "$LIB_ROOT/scripts/cluster.sh" up "$v" --instances "$B_INSTANCES" \
		--balancer "$B_BALANCER" --dir "$OUT/run/$k" --quiet
done
if [ "$FAILOVER_REDIS" = 1 ]; then
	say "starting session-redis-ha for the Redis failover: $B_INSTANCES instances behind $B_BALANCER"
	STARTED="$STARTED redis-ha"
	"$LIB_ROOT/scripts/cluster.sh" up session-redis-ha --instances "$B_INSTANCES" \
		--balancer "$B_BALANCER" --dir "$OUT/run/redis-ha" --quiet
fi

# ---- warm-up and rounds --------------------------------------------------------------------

for k in $KEYS; do
	say "warm-up $k (${WARMUP}s)"
	bench_run "$k" "warmup-$k" "$WARMUP"
done
# shellcheck disable=SC2086 # a space-separated list
set -- $KEYS
NV=$#
for r in $(seq 1 "$ROUNDS"); do
	# Rotate the order each round so no run always comes first or last.
	order=$(echo "$KEYS" | tr ' ' '\n' | awk -v s=$(((r - 1) % NV)) -v n="$NV" \
		'{ v[NR - 1] = $0 } END { for (i = 0; i < n; i++) print v[(i + s) % n] }')
	for k in $order; do
		say "round $r/$ROUNDS: $k (${DURATION}s)"
		bench_run "$k" "$k-r$r" "$DURATION"
	done
done

# ---- failover under load -----------------------------------------------------------------------

# loadgen for 12 s on the cluster in run/KEY while its process NAME (app1, or redis: the master)
# gets SIGKILL at 3 s; app1 is started again at 7 s, Redis comes back through Sentinel by
# itself. Writes raw/failover-NAME.json and raw/failover-NAME.events ("SECONDS WHAT" lines,
# on the clock loadgen started on). Usage: failover_run NAME KEY
failover_run() {
	local name=$1 k=$2
	say "failover under load on $k: $name killed at 3 s"
	(
		# shellcheck disable=SC1090,SC1091
		. "$OUT/run/$k/cluster.env"
		ev=$OUT/raw/failover-$name.events
		t0=$(date +%s.%N)
		"$LOADGEN" --url "$BALANCER_URL" --cacert "$CA" --flow "$FLOW" \
			--credentials "$CREDENTIALS" --users "$B_USERS" --concurrency "$B_CONC" \
			--threads "$B_THREADS" --duration 12 --timeout 2 --json "$OUT/raw/failover-$name.json" \
			>"$OUT/raw/failover-$name.txt" 2>"$OUT/raw/failover-$name.err" &
		lg=$!
		sleep 3
		read -r pid _ <"$RUNDIR/pids/$name.pid"
		kill -KILL "$pid"
		echo "$(date +%s.%N) $name killed" >"$ev"
		if [ "$name" = app1 ]; then
			sleep 4
			"$LIB_ROOT/scripts/cluster.sh" start-server app1 --dir "$RUNDIR" >/dev/null
			echo "$(date +%s.%N) app1 listening again" >>"$ev"
		fi
		wait "$lg" || true
		awk -v t0="$t0" '{ $1 = sprintf("%.2f", $1 - t0); print }' "$ev" >"$ev.tmp" && mv "$ev.tmp" "$ev"
	)
	[ -s "$OUT/raw/failover-$name.json" ] ||
		lib_die "loadgen wrote no failover report: $(cat "$OUT/raw/failover-$name.err")"
	FAILOVERS="$FAILOVERS $name:$k"
}

FAILOVERS=''
if [ "$FAILOVER" = 1 ]; then failover_run app1 "${KEYS%% *}"; fi
if [ "$FAILOVER_REDIS" = 1 ]; then failover_run redis redis-ha; fi

# ---- loadgen versus wrk on a trivial endpoint --------------------------------------------------

if [ "$WRK" = 1 ]; then
	first=${KEYS%% *}
	target=$(sed -n 's/^SERVER_app1=//p' "$OUT/run/$first/cluster.env")
	: >"$OUT/raw/wrk-compare.txt"
	# Each run also records the generator's own CPU seconds (bash's time: user + system), so that
	# the report can tell what the server gave each tool from what each tool cost.
	TIMEFORMAT='%3U %3S'
	wrk_run() {
		{ time wrk -t "$B_THREADS" -c 10 -d 2 "http://$target/healthz" >"$OUT/raw/wrk.out" 2>/dev/null; } 2>&1 |
			awk '{ print $1 + $2 }'
		awk '/^Requests\/sec/ { print $2 }' "$OUT/raw/wrk.out"
	}
	loadgen_run() {
		{ time "$LOADGEN" --url "http://$target" --path /healthz --flow none --concurrency 10 \
			--threads "$B_THREADS" --duration 2 --json "$OUT/raw/loadgen-compare.json" \
			>/dev/null 2>&1; } 2>&1 | awk '{ print $1 + $2 }'
		"$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["rps"])' \
			"$OUT/raw/loadgen-compare.json"
	}
	for r in 1 2 3 4 5; do	# which tool goes first alternates by round
		say "loadgen versus wrk on http://$target/healthz, round $r/5"
		if ((r % 2)); then wc=$(wrk_run); lc=$(loadgen_run); else lc=$(loadgen_run); wc=$(wrk_run); fi
		# rps of wrk, rps of loadgen, CPU seconds of wrk, CPU seconds of loadgen (2 s runs)
		echo "$(echo "$wc" | sed -n 2p) $(echo "$lc" | sed -n 2p) $(echo "$wc" | sed -n 1p)" \
			"$(echo "$lc" | sed -n 1p)" >>"$OUT/raw/wrk-compare.txt"
	done
	rm -f "$OUT/raw/wrk.out" "$OUT/raw/loadgen-compare.json"
fi

bench_cleanup
STARTED=""

# ---- medians, table, charts, report ------------------------------------------------------------

say "writing $OUT/results.md, the charts and report.html"
# shellcheck disable=SC2086 # one argument per run
"$PYTHON" - "$OUT" "$COMMAND" "$B_BALANCER" "$B_INSTANCES" "$ROUNDS" "$DURATION" "$B_USERS" \
	"$B_CONC" "$B_THREADS" "$AUTH_BIN" "$FAILOVERS" $KEYS <<'EOF'
import json, os, sys
out, command, balancer, n, rounds, duration, users, conc, threads, bin_, failovers = sys.argv[1:12]
runs = []
for key in sys.argv[12:]:
    variant, _, rtt = key.partition("@")
    runs.append({"key": key, "variant": variant, "redis_rtt_ms": float(rtt) if rtt else None})
meta = {"command": command, "balancer": balancer, "instances": int(n), "rounds": int(rounds),
        "duration_s": float(duration), "users": int(users), "concurrency": int(conc),
        "threads": int(threads), "runs": runs,
        "versions": {"loadgen": [os.path.join(bin_, "loadgen"), "--version"],
                     "redis-server": ["redis-server", "--version"],
                     "haproxy": ["haproxy", "-v"], "nginx": ["nginx", "-v"],
                     "OpenSSL": ["openssl", "version"], "C compiler": ["cc", "--version"],
                     "libevent": ["pkg-config", "--modversion", "libevent"],
                     "Python": [sys.executable, "--version"]}}
meta["failovers"] = []
for f in failovers.split():
    name, key = f.split(":", 1)
    events = [line.split(None, 1) for line in open(os.path.join(out, "raw", f"failover-{name}.events"))]
    meta["failovers"].append({"name": name, "variant": "session-redis-ha" if name == "redis" else key,
                              "report": f"failover-{name}.json",
                              "events": [{"what": w.strip(), "t": float(t)} for t, w in events]})
json.dump(meta, open(os.path.join(out, "meta.json"), "w"), indent=2)
EOF
"$PYTHON" "$LIB_ROOT/scripts/bench_report.py" --out "$OUT"
cat "$OUT/results.md"
say "done: $OUT/report.html"
