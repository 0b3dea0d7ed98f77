#!/usr/bin/env bash
# Instructions per HS256 verification (jwt_verify, inclusive), counted by callgrind over N calls
# of tests/bench/jwt_verify.c: deterministic, so it can be compared on a busy machine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
	cat <<'USAGE'
usage: scripts/bench_jwt.sh [--calls N] [--fresh]
  Counts, with callgrind, the instructions spent inside jwt_verify() per HS256 verification of
  one jwt_server-like token verified N times (default 2000): after the first, each comes from
  the verifier's cache. --fresh: N tokens that differ in their jti, each verified once (every
  one parsed, none from the cache). Needs make build and valgrind.
USAGE
}

calls=2000 fresh=''
while [ $# -gt 0 ]; do
	case $1 in
	--calls) lib_optarg calls "$@"; shift 2 ;;
	--fresh) fresh=fresh; shift ;;
	--help | -h) usage; exit 0 ;;
	*) lib_usage_error "unknown argument '$1' (see --help)" ;;
	esac
done
case $calls in '' | *[!0-9]* | 0*) lib_usage_error "--calls needs a number from 1 up, not '$calls'" ;; esac
cd "$LIB_ROOT"
[ -f build/release/libcommon.a ] || lib_die "build/release/libcommon.a is missing: run make build"
command -v valgrind >/dev/null || lib_die "valgrind is not installed"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2046
cc -O2 -g -std=c11 -D_GNU_SOURCE -Icommon -o "$tmp/jwt_verify" tests/bench/jwt_verify.c \
    build/release/libcommon.a $(pkg-config --cflags --libs openssl jansson) -lpthread
valgrind --tool=callgrind --callgrind-out-file="$tmp/out" --toggle-collect=jwt_verify \
    "$tmp/jwt_verify" "$calls" $fresh >/dev/null 2>"$tmp/log" || { cat "$tmp/log" >&2; exit 1; }
ir=$(callgrind_annotate "$tmp/out" 2>/dev/null |
    awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }')
echo "jwt_verify: $((ir / calls)) instructions per HS256 verification ($calls calls, ${fresh:-one repeated} token${fresh:+s})"
