#!/bin/sh
# Runs each libFuzzer harness in DIR for SECONDS on a scratch copy of its seed corpus, so the
# repository's corpus stays small; a crash leaves its input in build/fuzz-crashes/ and fails.
# Usage: scripts/fuzz.sh DIR SECONDS
set -eu
case ${1:-} in
-h | --help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
[ $# -eq 2 ] || { echo "fuzz.sh: usage: scripts/fuzz.sh DIR SECONDS" >&2; exit 2; }
case $2 in
'' | *[!0-9]* | 0) echo "fuzz.sh: SECONDS must be a positive whole number, not '$2'" >&2; exit 2 ;;
esac
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
