#!/usr/bin/env bash
# Instructions per HS256 verification (jwt_verify, inclusive), counted by callgrind over N calls
# of tests/bench/jwt_verify.c: deterministic, so it can be compared on a busy machine.
# usage: scripts/bench_jwt.sh [N]   (after make build; N defaults to 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
case $n in ''|*[!0-9]*) echo "bench_jwt.sh: N must be a number" >&2; exit 2 ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2046
cc -O2 -g -std=c11 -D_GNU_SOURCE -Icommon -o "$tmp/jwt_verify" tests/bench/jwt_verify.c \
    build/release/libcommon.a $(pkg-config --cflags --libs openssl jansson) -lpthread
valgrind --tool=callgrind --callgrind-out-file="$tmp/out" --toggle-collect=jwt_verify \
    "$tmp/jwt_verify" "$n" >/dev/null 2>"$tmp/log" || { cat "$tmp/log" >&2; exit 1; }
ir=$(callgrind_annotate "$tmp/out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }')
echo "jwt_verify: $((ir / n)) instructions per HS256 verification ($n calls)"
