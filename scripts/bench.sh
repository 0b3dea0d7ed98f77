#!/usr/bin/env bash
# The benchmark behind `make bench`: the same load (loadgen, closed loop) against every variant
# (session-memory, session-sticky, session-redis, jwt-hs256, jwt-es256), each a cluster of N
# instances behind one balancer. All clusters stay up for the whole run; after a warm-up the
# variants are interleaved round by round (the order rotates) so that the machine's drift hits
# them alike, and the medians over the rounds are reported. Writes into the output directory:
#   raw/VARIANT-rK.json   loadgen's JSON report of every run, plus its CPU accounting
#   results.md            the Markdown table; results.json the same numbers
#   throughput.svg, latency.svg, failures.svg, cpu.svg   gnuplot charts
# and, unless --no-wrk, the loadgen-to-wrk requests/s ratio on a trivial endpoint.
set -euo pipefail
# shellcheck disable=SC2034 # read by lib.sh
LIB_PROG=bench.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_VARIANTS="session-memory session-sticky session-redis jwt-hs256 jwt-es256"

usage() {
	cat <<EOF
usage: scripts/bench.sh [--balancer ours|haproxy|nginx] [--instances N] [--rounds R]
                        [--duration SECONDS] [--warmup SECONDS] [--users N]
                        [--concurrency C] [--threads T] [--variants "V1 V2 ..."]
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
  --out DIR         output directory (default bench-results/<timestamp>)
  --no-wrk          skip the loadgen-versus-wrk comparison

Programs come from \$AUTH_BIN (default: <repo>/bin). The defaults take about 2.5 minutes.
EOF
}

B_BALANCER=ours B_INSTANCES=3 ROUNDS=5 DURATION=4 WARMUP=2 B_USERS=24 B_CONC='' B_THREADS=1
VARIANTS=$ALL_VARIANTS OUT='' WRK=1
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
[ -n "$VARIANTS" ] || { echo "bench.sh: --variants is empty" >&2; exit 2; }
B_CONC=${B_CONC:-$B_USERS}
LOADGEN=$AUTH_BIN/loadgen
[ -x "$LOADGEN" ] || lib_die "$LOADGEN not found: build it (make) or set AUTH_BIN"
command -v gnuplot >/dev/null || lib_die "gnuplot is not installed (scripts/deps.sh bench)"
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

# The processes a cluster runs on: servers, balancer (nginx's workers too) and Redis.
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
src, dst, variant, ticks, hz, pids = sys.argv[1:]
r = json.load(open(src))
r["variant"] = variant
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
for v in $VARIANTS; do
	say "starting $v: $B_INSTANCES instances behind $B_BALANCER"
	STARTED="$STARTED $v"
	"$LIB_ROOT/scripts/cluster.sh" up "$v" --instances "$B_INSTANCES" --balancer "$B_BALANCER" \
		--dir "$OUT/run/$v" --quiet
done

# ---- warm-up and rounds --------------------------------------------------------------------

for v in $VARIANTS; do
	say "warm-up $v (${WARMUP}s)"
	bench_run "$v" "warmup-$v" "$WARMUP"
done
# shellcheck disable=SC2086 # a space-separated list
set -- $VARIANTS
NV=$#
for r in $(seq 1 "$ROUNDS"); do
	# Rotate the order each round so no variant always runs first or last.
	order=$(echo "$VARIANTS" | tr ' ' '\n' | awk -v s=$(((r - 1) % NV)) -v n="$NV" \
		'{ v[NR - 1] = $0 } END { for (i = 0; i < n; i++) print v[(i + s) % n] }')
	for v in $order; do
		say "round $r/$ROUNDS: $v (${DURATION}s)"
		bench_run "$v" "$v-r$r" "$DURATION"
	done
done

# ---- loadgen versus wrk on a trivial endpoint --------------------------------------------------

if [ "$WRK" = 1 ]; then
	first=${VARIANTS%% *}
	target=$(sed -n 's/^SERVER_app1=//p' "$OUT/run/$first/cluster.env")
	: >"$OUT/raw/wrk-compare.txt"
	for r in 1 2 3 4 5; do
		say "loadgen versus wrk on http://$target/healthz, round $r/5"
		w=$(wrk -t "$B_THREADS" -c 10 -d 2 "http://$target/healthz" | awk '/^Requests\/sec/ { print $2 }')
		l=$("$LOADGEN" --url "http://$target" --path /healthz --flow none --concurrency 10 \
			--threads "$B_THREADS" --duration 2 --json - 2>/dev/null |
			"$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["rps"])')
		echo "$w $l" >>"$OUT/raw/wrk-compare.txt"
	done
fi

bench_cleanup
STARTED=""

# ---- medians, table, charts -----------------------------------------------------------------

say "writing $OUT/results.md and the charts"
# shellcheck disable=SC2086 # one argument per variant
"$PYTHON" - "$OUT" "$B_BALANCER" "$B_INSTANCES" "$ROUNDS" "$DURATION" "$B_USERS" "$B_CONC" "$B_THREADS" \
	$VARIANTS <<'EOF'
import json, os, statistics, sys

out, balancer, instances, rounds, duration, users, conc, threads = sys.argv[1:9]
variants = sys.argv[9:]
n = int(instances)
med = statistics.median
rows = []
for v in variants:
    runs = [json.load(open(os.path.join(out, "raw", f"{v}-r{k}.json"))) for k in range(1, int(rounds) + 1)]
    reqs = [r["requests"] for r in runs]
    errors = [sum(r["errors"].values()) for r in runs]
    rows.append({
        "variant": v,
        "rps": med([r["rps"] for r in runs]),
        "rps_min": min(r["rps"] for r in runs),
        "rps_max": max(r["rps"] for r in runs),
        "p50": med([r["latency_ms"]["p50"] for r in runs]),
        "p90": med([r["latency_ms"]["p90"] for r in runs]),
        "p99": med([r["latency_ms"]["p99"] for r in runs]),
        "p999": med([r["latency_ms"]["p999"] for r in runs]),
        "auth_failure_pct": 100 * med([r["auth_failure_rate"] for r in runs]),
        "error_pct": 100 * med([e / max(1, q + e) for e, q in zip(errors, reqs)]),
        "cpu_us_per_req": med([1e6 * r["cluster_cpu_s"] / r["requests"] if r["requests"] else 0
                               for r in runs]),
        "requests": sum(reqs),
        "backends": sorted({b for r in runs for b in r["backends"]}),
    })

wrk = None
path = os.path.join(out, "raw", "wrk-compare.txt")
if os.path.exists(path):
    pairs = [tuple(map(float, l.split())) for l in open(path) if len(l.split()) == 2]
    if pairs:
        wrk = {"wrk_rps": med([a for a, _ in pairs]), "loadgen_rps": med([b for _, b in pairs]),
               "ratio": med([b / a for a, b in pairs if a > 0])}

json.dump({"balancer": balancer, "instances": n, "rounds": int(rounds), "duration_s": float(duration),
           "users": int(users), "concurrency": int(conc), "threads": int(threads),
           "variants": rows, "wrk_comparison": wrk},
          open(os.path.join(out, "results.json"), "w"), indent=2)

with open(os.path.join(out, "summary.dat"), "w") as f:
    f.write("# variant rps p50 p90 p99 p999 auth_failure_pct cpu_us_per_req\n")
    for r in rows:
        f.write(f'{r["variant"]} {r["rps"]:.1f} {r["p50"]:.3f} {r["p90"]:.3f} {r["p99"]:.3f} '
                f'{r["p999"]:.3f} {r["auth_failure_pct"]:.2f} {r["cpu_us_per_req"]:.1f}\n')

md = [f"# Benchmark: sessions versus JWT behind a round-robin balancer", "",
      f"{n} instances per variant behind the **{balancer}** balancer (HTTPS); loadgen closed loop, "
      f"{users} virtual users on {conc} connections, {threads} thread(s); medians of {rounds} rounds "
      f"of {duration} s, variants interleaved round by round after a warm-up. Each user logs in "
      f"once, then asks for /profile.", "",
      "| variant | requests/s | p50 ms | p99 ms | auth failures | other errors | CPU µs/request |",
      "|---|---:|---:|---:|---:|---:|---:|"]
for r in rows:
    md.append(f'| {r["variant"]} | {r["rps"]:.0f} ({r["rps_min"]:.0f}–{r["rps_max"]:.0f}) | '
              f'{r["p50"]:.2f} | {r["p99"]:.2f} | {r["auth_failure_pct"]:.1f}% | '
              f'{r["error_pct"]:.2f}% | {r["cpu_us_per_req"]:.0f} |')
md += ["", f"Expected auth-failure rate for session-memory with round robin: (N-1)/N = "
       f"{100 * (n - 1) / n:.1f}%; 0% for every other variant.",
       "CPU µs/request: user+system time of the cluster's processes (servers, balancer, Redis) "
       "from /proc/PID/stat over the run, divided by the requests answered."]
if wrk:
    md += ["", f'loadgen versus wrk on a trivial endpoint (GET /healthz of one server, 10 connections, '
           f'{threads} thread(s), median of 5 interleaved runs): wrk {wrk["wrk_rps"]:.0f} req/s, loadgen '
           f'{wrk["loadgen_rps"]:.0f} req/s, ratio **{wrk["ratio"]:.2f}**.']
md += ["", "Charts: throughput.svg, latency.svg, failures.svg, cpu.svg. Raw reports: raw/."]
open(os.path.join(out, "results.md"), "w").write("\n".join(md) + "\n")
EOF

(
	cd "$OUT"
	gnuplot <<'EOF'
set terminal svg size 820,440 dynamic enhanced font "sans,11" background rgb "white"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top right
set xtics noenhanced
set yrange [0:*]

set output "throughput.svg"
set title "Throughput per variant (median requests/s)"
set ylabel "requests/s"
plot "summary.dat" using 2:xtic(1) title "requests/s" linecolor rgb "#4477aa", \
     "" using 0:2:(sprintf("%.0f", $2)) with labels offset char 0,0.8 notitle

set output "failures.svg"
set title "Authentication failures (401 after a successful login)"
set ylabel "% of profile requests"
set yrange [0:100]
plot "summary.dat" using 7:xtic(1) title "auth failures %" linecolor rgb "#cc3311", \
     "" using 0:7:(sprintf("%.1f%%", $7)) with labels offset char 0,0.8 notitle

set output "cpu.svg"
set title "Cluster CPU time per request (servers + balancer + Redis)"
set ylabel "µs per request"
set yrange [0:*]
plot "summary.dat" using 8:xtic(1) title "CPU µs/request" linecolor rgb "#228833", \
     "" using 0:8:(sprintf("%.0f", $8)) with labels offset char 0,0.8 notitle

set output "latency.svg"
set title "Latency percentiles (median over rounds)"
set ylabel "milliseconds (log scale)"
set logscale y
set yrange [0.1:*]
plot "summary.dat" using 3:xtic(1) title "p50" linecolor rgb "#66ccee", \
     "" using 4 title "p90" linecolor rgb "#4477aa", \
     "" using 5 title "p99" linecolor rgb "#aa3377", \
     "" using 6 title "p99.9" linecolor rgb "#ee6677"
EOF
)
cat "$OUT/results.md"
say "done: $OUT"
