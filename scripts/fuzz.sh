#!/bin/sh
# Runs each libFuzzer harness in DIR for SECONDS on a scratch copy of its seed corpus, so the
# repository's corpus stays small; a crash leaves its input in build/fuzz-crashes/ and fails.
# Usage: scripts/fuzz.sh DIR SECONDS
set -eu
dir=$1 seconds=$2
root=$(cd "$(dirname "$0")/.." && pwd)
crashes="$root/build/fuzz-crashes"
mkdir -p "$crashes"
status=0
for h in "$dir"/fuzz_*; do
	[ -x "$h" ] || continue
	name=$(basename "$h")
	work=$(mktemp -d)
	[ -d "$root/tests/fuzz/corpus/$name" ] && cp -r "$root/tests/fuzz/corpus/$name/." "$work/"
	echo "fuzz: $name for ${seconds}s"
	if ! "$h" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix="$crashes/$name-" -print_final_stats=1 "$work" >"$work.log" 2>&1; then
		tail -n 40 "$work.log"
		echo "fuzz: $name FAILED (input saved in $crashes)"
		status=1
	else
		grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$work.log" | tail -n 1 | sed "s/^/fuzz: $name: /"
	fi
	rm -rf "$work" "$work.log"
done
exit $status
