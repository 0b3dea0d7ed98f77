#!/usr/bin/env bash
# Starts and stops the teaching page: four demo clusters' servers (memory, sticky and Redis
# sessions, JWT), scripts/webdemo.py (the page and its demo-only controls, loopback only), and ONE
# front balancer over HTTPS that routes /memory/, /sticky/, /redis/ and /jwt/ to the clusters'
# servers and everything else to webdemo.py, so the page and the four variants share one origin.
# Run with --help for usage.
set -euo pipefail
# shellcheck disable=SC2034 # read by lib.sh
LIB_PROG=web.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER=$LIB_ROOT/scripts/cluster.sh
# Column name, its variant, and its variable in a demo.sh serve.env (--clusters).
COLUMNS="memory:session-memory:SESSION_MEMORY_DIR sticky:session-sticky:SESSION_STICKY_DIR
redis:session-redis:SESSION_REDIS_DIR jwt:jwt-hs256:JWT_HS256_DIR
revoke:jwt-refresh:JWT_REFRESH_DIR"

usage() {
	cat <<EOF
usage: scripts/web.sh up [--dir RUNDIR] [--port PORT] [--clusters ENVFILE]
       scripts/web.sh serve [the same options]     (up, then wait; Ctrl-C stops everything)
       scripts/web.sh down [--dir RUNDIR]

up starts the five clusters (scripts/cluster.sh up VARIANT --dir RUNDIR/COLUMN for
session-memory, session-sticky, session-redis, jwt-hs256 and jwt-refresh), scripts/webdemo.py, and the front
balancer on https://127.0.0.1:PORT/ (default 8443, or a free port when 8443 is taken), then
prints the page's address and the CA file to trust. With --clusters ENVFILE it uses clusters that
are already up instead (lines SESSION_MEMORY_DIR=..., SESSION_STICKY_DIR=..., SESSION_REDIS_DIR=...,
JWT_HS256_DIR=..., JWT_REFRESH_DIR=..., as written by scripts/demo.sh --serve) and leaves them running at down.
RUNDIR (default ./run/web) gets tls/, logs/, pids/, webdemo.token and web.env (URL, CA, ...).
EOF
}

# Starts one program in the background, logs in logs/NAME.log, pid and program in pids/NAME.pid.
web_spawn() {
	local name=$1
	shift
	"$@" >>"$RUNDIR/logs/$name.log" 2>&1 </dev/null &
	echo "$! $(basename "$1")" >"$RUNDIR/pids/$name.pid"
}

web_wait() {
	local name=$1 port=$2 pid prog
	read -r pid prog <"$RUNDIR/pids/$name.pid"
	lib_wait_port "$port" "$pid" "$prog" 20 && return 0
	echo "web.sh: $name did not start listening on 127.0.0.1:$port" >&2
	lib_why "$pid" "$prog" >&2
	echo "its log:" >&2
	tail -n 20 "$RUNDIR/logs/$name.log" >&2 || true
	return 1
}

web_pidword() {
	local pid prog
	[ -r "$1" ] && read -r pid prog <"$1" && echo "$pid:$prog"
	return 0
}

# Stops what up started in RUNDIR: the front balancer, webdemo.py, then the clusters it made.
web_stop_dir() {
	local dir=$1 words d
	words="$(web_pidword "$dir/pids/front.pid") $(web_pidword "$dir/pids/webdemo.pid")"
	[ -z "${words// /}" ] || lib_stop 10 $words
	rm -f "$dir/pids/front.pid" "$dir/pids/webdemo.pid"
	if [ -r "$dir/owned" ]; then
		while read -r d; do
			[ -n "$d" ] && [ -d "$d" ] && "$CLUSTER" down --dir "$d" >/dev/null 2>&1 || true
		done <"$dir/owned"
		rm -f "$dir/owned"
	fi
}

UP_DONE=0
web_up_cleanup() {
	[ "$UP_DONE" = 1 ] && return 0
	web_stop_dir "$RUNDIR"
	echo "web.sh: up did not complete; stopped what it had started (logs: $RUNDIR/logs)" >&2
}

# "HOST:PORT,HOST:PORT..." of the servers in a cluster's run directory.
web_servers() {
	(
		# shellcheck disable=SC1091
		. "$1/cluster.env"
		out=''
		for n in ${SERVERS//,/ }; do
			v=SERVER_$n
			out="$out${out:+,}${!v}"
		done
		echo "$out"
	)
}

cmd_up() {
	local port='' dir='' clusters='' c col variant var d pids=() routes=() ports wport fport cdir
	local f w s p ok
	while [ $# -gt 0 ]; do
		case $1 in
		--dir) lib_optarg dir "$@"; shift 2 ;;
		--port) lib_optarg port "$@"; shift 2 ;;
		--clusters) lib_optarg clusters "$@"; shift 2 ;;
		*) echo "web.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
		esac
	done
	[ -z "$port" ] || lib_check_port --port "$port"
	[ -z "$clusters" ] || [ -r "$clusters" ] || lib_die "cannot read --clusters $clusters"
	RUNDIR=${dir:-$PWD/run/web}
	mkdir -p "$RUNDIR"
	RUNDIR=$(cd "$RUNDIR" && pwd)
	for f in front webdemo; do
		w=$(web_pidword "$RUNDIR/pids/$f.pid")
		[ -n "$w" ] && lib_alive "${w%%:*}" "${w#*:}" &&
			lib_die "the page is already up in $RUNDIR (scripts/web.sh down --dir $RUNDIR)"
	done
	[ -x "$AUTH_BIN/balancer" ] || lib_die "$AUTH_BIN/balancer not found: build it (make) or set AUTH_BIN"
	rm -rf "$RUNDIR/pids" "$RUNDIR/logs" "$RUNDIR/tls" "$RUNDIR/web.env" "$RUNDIR/owned" \
		"$RUNDIR/webdemo.token"
	mkdir -p "$RUNDIR/pids" "$RUNDIR/logs"
	trap web_up_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	# The clusters: given, or started side by side (each takes a few seconds on its own).
	declare -A CDIR
	for c in $COLUMNS; do
		IFS=: read -r col variant var <<<"$c"
		if [ -n "$clusters" ]; then
			d=$(sed -n "s/^$var=//p" "$clusters" | tail -n 1)
			[ -n "$d" ] && [ -r "$d/cluster.env" ] || lib_die "--clusters $clusters: no $var with a cluster.env"
		else
			d=$RUNDIR/$col
			echo "$d" >>"$RUNDIR/owned"
			"$CLUSTER" up "$variant" --dir "$d" --quiet >"$RUNDIR/logs/cluster-$col.log" 2>&1 &
			pids+=("$!:$col")
		fi
		CDIR[$col]=$d
	done
	for c in "${pids[@]}"; do
		wait "${c%%:*}" || { cat "$RUNDIR/logs/cluster-${c#*:}.log" >&2; lib_die "cluster ${c#*:} did not start"; }
	done

	mapfile -t ports < <(lib_free_ports 2)
	wport=${ports[0]}
	if [ -n "$port" ]; then
		fport=$port
	elif (exec 3<>/dev/tcp/127.0.0.1/8443) 2>/dev/null; then
		fport=${ports[1]}
	else
		fport=8443
	fi
	"$LIB_ROOT/scripts/mkcert.sh" "$RUNDIR/tls" >"$RUNDIR/logs/mkcert.log" 2>&1 ||
		{ cat "$RUNDIR/logs/mkcert.log" >&2; lib_die "scripts/mkcert.sh failed"; }

	cdir=()
	for c in $COLUMNS; do
		IFS=: read -r col variant var <<<"$c"
		cdir+=(--cluster "$col=${CDIR[$col]}")
		[ "$col" = sticky ] && s=sticky: || s=''
		routes+=(--route "/$col/=$s$(web_servers "${CDIR[$col]}")")
	done
	web_spawn webdemo "$PYTHON" "$LIB_ROOT/scripts/webdemo.py" --listen "127.0.0.1:$wport" \
		--public "$fport" --rundir "$RUNDIR" "${cdir[@]}"
	web_wait webdemo "$wport"
	web_spawn front "$AUTH_BIN/balancer" --tls-listen "127.0.0.1:$fport" --cert "$RUNDIR/tls/cert.pem" \
		--key "$RUNDIR/tls/key.pem" --health-interval 300 --connect-timeout 1000 \
		--backend "127.0.0.1:$wport" "${routes[@]}"
	web_wait front "$fport"
	# Ready when the page and every column answer through the balancer.
	for _ in $(seq 1 100); do
		ok=1
		for p in / /memory/healthz /sticky/healthz /redis/healthz /jwt/healthz; do
			curl -sf -o /dev/null --max-time 2 --cacert "$RUNDIR/tls/ca.pem" \
				"https://127.0.0.1:$fport$p" || { ok=0; break; }
		done
		[ "$ok" = 1 ] && break
		sleep 0.1
	done
	[ "$ok" = 1 ] || lib_die "the page did not answer through the balancer (logs: $RUNDIR/logs)"
	{
		echo "# Written by scripts/web.sh up."
		echo "URL=https://127.0.0.1:$fport/"
		echo "PORT=$fport"
		echo "CA=$RUNDIR/tls/ca.pem"
		echo "WEBDEMO=127.0.0.1:$wport"
		echo "TOKEN_FILE=$RUNDIR/webdemo.token"
		for col in memory sticky redis jwt revoke; do
			echo "CLUSTER_$col=${CDIR[$col]}"
		done
	} >"$RUNDIR/web.env"
	UP_DONE=1
	trap - EXIT INT TERM
	echo "teaching page: https://127.0.0.1:$fport/"
	echo "  trust the CA $RUNDIR/tls/ca.pem (or accept the warning once); stop: scripts/web.sh down --dir $RUNDIR"
}

SLEEP_PID=''
web_serve_stop() {
	[ -z "$SLEEP_PID" ] || kill "$SLEEP_PID" 2>/dev/null || true
	web_stop_dir "$RUNDIR"
	echo "web.sh: stopped everything in $RUNDIR"
	exit 0
}

cmd_serve() {
	cmd_up "$@"
	trap web_serve_stop INT TERM
	echo "  serving until Ctrl-C"
	# wait (unlike a foreground sleep) returns as soon as a trapped signal arrives.
	while :; do
		sleep 3600 &
		SLEEP_PID=$!
		wait "$SLEEP_PID" || true
	done
}

cmd_down() {
	local dir=''
	while [ $# -gt 0 ]; do
		case $1 in
		--dir) lib_optarg dir "$@"; shift 2 ;;
		*) echo "web.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
		esac
	done
	dir=${dir:-$PWD/run/web}
	[ -d "$dir" ] || lib_die "no run directory $dir"
	web_stop_dir "$(cd "$dir" && pwd)"
	echo "teaching page in $dir: stopped"
}

case ${1:-} in
up) shift; cmd_up "$@" ;;
serve) shift; cmd_serve "$@" ;;
down) shift; cmd_down "$@" ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac
