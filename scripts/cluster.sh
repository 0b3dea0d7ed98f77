#!/usr/bin/env bash
# Starts, inspects and stops a demo cluster on loopback: N login servers of one variant behind a
# round-robin balancer over HTTPS (ours, HAProxy or nginx, configured from the same backend list),
# plus a private redis-server when the variant needs one. Everything it makes (certificates, users,
# keys, configs, logs, pid files, cluster.env) lives in one run directory, and `down` stops
# everything it started. Run with --help for usage.
# `[ a ] && [ b ] || fail` is used as "both or fail"; $words lists are split on purpose.
# shellcheck disable=SC2015,SC2034,SC2086 source-path=SCRIPTDIR
set -euo pipefail
LIB_PROG=cluster.sh # read by lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/proxyconf.sh"

VARIANTS="session-memory session-sticky session-redis jwt-hs256 jwt-es256 jwt-hs256-revoke session-redis-ha jwt-revoke-ha jwt-refresh"
# Demo users, their roles and passwords. The passwords are for the classroom and the tests only.
DEMO_USERS="alice bob carol"
declare -A U_NAME=([alice]="Alice Liddell" [bob]="Bob Baker" [carol]="Carol Cooper")
declare -A U_ROLE=([alice]=admin [bob]=user [carol]=user)
declare -A U_PASS=([alice]=alice-password [bob]=bob-password [carol]=carol-password)
# scrypt cost of the demo users' hashes: 2^14 keeps a login around 50 ms so the class does not wait;
# OWASP's 2^17 (the default of `authctl useradd`) is what a real deployment uses.
USERS_LN=${CLUSTER_LN:-14}

usage() {
	cat <<EOF
usage: scripts/cluster.sh up VARIANT [--instances N] [--balancer ours|haproxy|nginx]
                          [--dir RUNDIR] [--port PORT] [--quiet]
       scripts/cluster.sh down [--dir RUNDIR]
       scripts/cluster.sh status [--dir RUNDIR]
       scripts/cluster.sh logs [--dir RUNDIR] [NAME]
       scripts/cluster.sh stop-server NAME --dir RUNDIR
       scripts/cluster.sh start-server NAME --dir RUNDIR

Variants: $VARIANTS
  session-memory    session_server --store memory (sessions break on every hop)
  session-sticky    the same, with a sticky balancer (works until that server dies)
  session-redis     session_server --store redis:// (one shared store)
  jwt-hs256         jwt_server with a shared HS256 secret
  jwt-es256         jwt_server with a shared P-256 key pair (ES256)
  jwt-hs256-revoke  jwt-hs256 plus a Redis deny-list consulted on every request
  session-redis-ha  session-redis on Redis Sentinel: a master, two replicas, three sentinels
  jwt-revoke-ha     jwt-hs256-revoke on the same Sentinel-managed Redis
  jwt-refresh       jwt-hs256-revoke with 60 s access tokens and rotating refresh tokens

up starts N instances (default 3) named app1..appN on free loopback ports, the balancer on
--port (default: a free port) over HTTPS, and redis-server when the variant needs it. The run
directory (default ./run/VARIANT) gets tls/ca.pem, users.json, credentials.txt (username:password
lines for loadgen), keys/, logs/, pids/ and cluster.env (BALANCER_URL, CA, ports, pids, ...).
Without --dir, down, status and logs act on every cluster under ./run; stop-server and
start-server need it. NAME is app1..appN, balancer or redis (logs also knows authctl, mkcert, ...).
Programs come from \$AUTH_BIN (default: <repo>/bin).
EOF
}

# ---- helpers on a run directory -------------------------------------------------------------

# Starts one program in the background with its output in logs/NAME.log and records its pid and
# its command line (so start-server can start it again). Usage: cluster_spawn NAME ARGV...
cluster_spawn() {
	local name=$1 ns
	shift
	printf '%q ' "$@" >"$RUNDIR/cmds/$name"
	ns=${NETNS_NS[$name]:-}
	${ns:+ip netns exec "$ns"} "$@" >>"$RUNDIR/logs/$name.log" 2>&1 </dev/null &
	echo "$! ${1##*/}" >"$RUNDIR/pids/$name.pid"
}

# Prints "PID:PROGRAM" for the named pid files (all when none are named).
cluster_pidwords() {
	local f pid prog
	for f in "$@"; do
		[ -r "$f" ] || continue
		read -r pid prog <"$f" || continue
		echo "$pid:$prog"
	done
}

cluster_wait() {
	local name=$1 port=$2 pid prog
	read -r pid prog <"$RUNDIR/pids/$name.pid"
	if ! netns_wait_port "$(host_of "$name")" "$port" "$pid" "$prog"; then
		echo "cluster.sh: $name ($prog) did not start listening on $(host_of "$name"):$port" >&2
		lib_why "$pid" "$prog" >&2
		echo "its log:" >&2
		tail -n 20 "$RUNDIR/logs/$name.log" >&2 || true
		return 1
	fi
}

# Stops everything started in RUNDIR: balancer first (no new traffic), then the servers, then Redis.
cluster_stop_dir() {
	local dir=$1 words
	[ -d "$dir/pids" ] || return 0
	words=$(cluster_pidwords "$dir/pids/balancer.pid")
	# nginx's workers too, in case its master has to be killed and cannot take them along.
	[ -z "$words" ] || words="$words $({ pgrep -P "${words%%:*}" || true; } | sed "s/\$/:${words#*:}/" | tr '\n' ' ')"
	[ -z "${words// /}" ] || lib_stop 10 $words
	words=$(cluster_pidwords "$dir"/pids/app*.pid)
	[ -z "$words" ] || lib_stop 15 $words
	# Sentinels before the Redis servers, so that stopping a master starts no failover.
	words=$(cluster_pidwords "$dir"/pids/sentinel*.pid)
	[ -z "$words" ] || lib_stop 10 $words
	words=$(cluster_pidwords "$dir"/pids/redis*.pid "$dir/pids/relay.pid")
	[ -z "$words" ] || lib_stop 10 $words
	rm -f "$dir"/pids/*.pid
	netns_remove "$dir"
}

cluster_any_alive() {
	local w
	for w in $(cluster_pidwords "$1"/pids/*.pid); do
		lib_alive "${w%%:*}" "${w#*:}" && return 0
	done
	return 1
}

# Run directories that commands without --dir act on.
cluster_dirs() {
	local d
	if [ -n "${DIR:-}" ]; then
		echo "$DIR"
		return
	fi
	# cmds/ is made by up and by nothing else (web.sh's run directory has pids/ and logs/ too).
	for d in "$PWD"/run/*/; do
		[ -d "$d/cmds" ] && echo "${d%/}"
	done
	return 0
}

need_bin() {
	[ -x "$1" ] || lib_die "$1 not found: build it (make) or set AUTH_BIN"
}

# ---- up -------------------------------------------------------------------------------------

# TLS material from scripts/mkcert.sh: a local CA (clients use it with --cacert, never -k) and
# a certificate for localhost and 127.0.0.1.
cluster_certs() {
	local d=$RUNDIR/tls
	local ca_dir=${MKCERT_CA_DIR:-}
	# A kept CA signs loopback names only (name constraints): hosts apart gets a CA of its own.
	[ -z "$NETNS_BR" ] || ca_dir=''
	MKCERT_CA_DIR=$ca_dir MKCERT_IP=${NETNS_ADDR[balancer]:-} "$LIB_ROOT/scripts/mkcert.sh" "$d" \
		>"$RUNDIR/logs/mkcert.log" 2>&1 ||
		{ cat "$RUNDIR/logs/mkcert.log" >&2; lib_die "scripts/mkcert.sh failed"; }
	CA=$d/ca.pem CERT=$d/cert.pem KEY_PEM=$d/key.pem
}

cluster_users() {
	local u
	: >"$RUNDIR/credentials.txt"
	chmod 600 "$RUNDIR/credentials.txt"
	for u in $DEMO_USERS; do
		printf '%s\n' "${U_PASS[$u]}" | "$AUTH_BIN/authctl" useradd --users "$RUNDIR/users.json" \
			--ln "$USERS_LN" --name "${U_NAME[$u]}" --email "$u@example.com" --role "${U_ROLE[$u]}" \
			"$u" >>"$RUNDIR/logs/authctl.log" 2>&1 ||
			{ cat "$RUNDIR/logs/authctl.log" >&2; lib_die "authctl useradd $u failed"; }
		printf '%s:%s\n' "$u" "${U_PASS[$u]}" >>"$RUNDIR/credentials.txt"
	done
}

# Redis as it is run for real: a password (redis/password, 0600, given to the servers with
# --redis-password-file; it sits in each 0600 config file, never on a command line) and the
# append-only file, fsynced every second. The -ha variants add two replicas and three sentinels
# with short timings (down after 1 s) so that a failover takes seconds, not the default minutes.
REDIS_MASTER=auth

# Writes redis/NAME.conf (mode 0600) from the common lines plus stdin, and starts redis-server on
# it. Usage: cluster_redis_start NAME PORT [--sentinel]
cluster_redis_start() {
	local name=$1 port=$2 conf=$RUNDIR/redis/$1.conf
	mkdir -p "$RUNDIR/redis/$name"
	(umask 077 && {
		printf 'port %s\nbind %s\nprotected-mode yes\ndaemonize no\ndir %s\n' \
			"$port" "$(host_of "$name")" "$RUNDIR/redis/$name"
		printf 'requirepass "%s"\n' "$REDIS_PASSWORD"
		cat
	} >"$conf")
	cluster_spawn "$name" redis-server "$conf" ${3:-}
	cluster_wait "$name" "$port"
}

# The data nodes' lines after the common ones; the replicas add replicaof. No diskless-sync
# delay (5 s by default, to batch replicas): the replicas start together and sync at once.
cluster_redis_data_conf() {
	printf 'masterauth "%s"\nappendonly yes\nappendfsync everysec\nsave ""\n' "$REDIS_PASSWORD"
	printf 'repl-diskless-sync-delay 0\n'
}

# Waits until the replica NAME on PORT has finished its first sync (master_link_status:up), so
# that an -ha cluster is up only when a failover or a WAIT can count on the replicas.
cluster_redis_synced() {
	local name=$1 port=$2 i=0 info
	while [ "$i" -lt $((${CLUSTER_START_TIMEOUT:-20} * 20)) ]; do
		info=$(REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h "$(host_of "$name")" -p "$port" \
			INFO replication 2>/dev/null) || true
		case $info in *master_link_status:up*) return 0 ;; esac
		sleep 0.05
		i=$((i + 1))
	done
	echo "cluster.sh: $name did not finish its sync with the master; its log:" >&2
	tail -n 20 "$RUNDIR/logs/$name.log" >&2 || true
	return 1
}

cluster_redis() {
	local i p sentinels=''
	# 0700: the sentinels rewrite their config files (password included) with mode 0644.
	(umask 077 && mkdir -p "$RUNDIR/redis")
	REDIS_PASSWORD_FILE=$RUNDIR/redis/password
	(umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$REDIS_PASSWORD_FILE")
	REDIS_PASSWORD=$(cat "$REDIS_PASSWORD_FILE")
	cluster_redis_data_conf | cluster_redis_start redis "$REDIS_PORT"
	REDIS_URL=redis://$(host_of redis):$REDIS_PORT
	case $VARIANT in *-ha) ;; *) return 0 ;; esac
	for i in 1 2; do
		{ cluster_redis_data_conf; echo "replicaof 127.0.0.1 $REDIS_PORT"; } |
			cluster_redis_start "redis-r$i" "${REDIS_PORTS[$i]}"
	done
	for i in 1 2; do
		cluster_redis_synced "redis-r$i" "${REDIS_PORTS[$i]}"
	done
	for i in 1 2 3; do
		p=${REDIS_PORTS[$((i + 2))]}
		printf 'sentinel %s\n' "monitor $REDIS_MASTER 127.0.0.1 $REDIS_PORT 2" \
			"auth-pass $REDIS_MASTER \"$REDIS_PASSWORD\"" \
			"down-after-milliseconds $REDIS_MASTER ${CLUSTER_SENTINEL_DOWN_MS:-1000}" \
			"failover-timeout $REDIS_MASTER ${CLUSTER_SENTINEL_FAILOVER_MS:-5000}" \
			"parallel-syncs $REDIS_MASTER 2" | cluster_redis_start "sentinel$i" "$p" --sentinel
		sentinels="$sentinels${sentinels:+,}127.0.0.1:$p"
	done
	REDIS_URL="redis-sentinel://$sentinels#$REDIS_MASTER"
}

# ---- hosts apart: a network namespace per process (--netns, root only) ------------------------

# With --netns (or CLUSTER_NETNS=1) every server, the balancer and Redis run in a network
# namespace of their own with one address on a bridge, 10.213.K.0/24; the bridge's own address,
# 10.213.K.1, is the host the clients run on. Nothing relies on loopback: the servers listen on
# their bridge address and trust X-Forwarded-* only from the balancer's, the balancer forwards
# the client's real address and checks health over the bridge. RUNDIR/netns records what was
# made (the bridge, then "host NAME NAMESPACE ADDRESS" lines), so that down removes all of it.
declare -A NETNS_NS=() NETNS_ADDR=()
NETNS_BR='' NETNS_CLIENT=''

# Where NAME (app1.., balancer, redis, relay) listens: its bridge address, or loopback.
host_of() {
	echo "${NETNS_ADDR[$1]:-127.0.0.1}"
}

# Like lib_wait_port, on any address: until HOST:PORT accepts, PID (PROG) dies, or the timeout.
netns_wait_port() {
	local host=$1 port=$2 pid=$3 prog=$4 i=0
	[ "$host" != 127.0.0.1 ] || { lib_wait_port "$port" "$pid" "$prog" "${CLUSTER_START_TIMEOUT:-20}"; return; }
	while [ "$i" -lt $((${CLUSTER_START_TIMEOUT:-20} * 20)) ]; do
		lib_alive "$pid" "$prog" || return 1
		(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

# A namespace au<K>-NAME, its end of a veth pair named eth0 with 10.213.K.N, the other end on
# the bridge. Usage: netns_host NAME K N
netns_host() {
	local name=$1 k=$2 n=$3 ns="au$2-$1" veth="au$2h$3"
	ip netns add "$ns"
	echo "host $name $ns 10.213.$k.$n" >>"$RUNDIR/netns"
	ip link add "$veth" type veth peer name eth0 netns "$ns"
	ip link set "$veth" master "aubr$k" up
	ip -n "$ns" addr add "10.213.$k.$n/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" link set lo up
	NETNS_NS[$name]=$ns NETNS_ADDR[$name]=10.213.$k.$n
}

# The bridge (the first free aubr<K>) and one namespace per process of the cluster.
netns_create() {
	local k i
	[ "$(id -u)" = 0 ] || lib_die "--netns needs root: it makes network namespaces and a bridge"
	command -v ip >/dev/null || lib_die "--netns needs iproute2's ip command"
	[ "$BALANCER" = ours ] || lib_die "--netns runs our balancer only (--balancer ours)"
	case $VARIANT in *-ha) lib_die "--netns runs one Redis, not the Sentinel (-ha) variants" ;; esac
	for k in $(seq 1 250); do
		ip link add "aubr$k" type bridge 2>/dev/null && break
		[ "$k" -lt 250 ] || lib_die "no free bridge name (aubr1 to aubr250 all exist)"
	done
	NETNS_BR=aubr$k NETNS_CLIENT=10.213.$k.1
	echo "bridge $NETNS_BR $NETNS_CLIENT" >"$RUNDIR/netns"
	ip addr add "$NETNS_CLIENT/24" dev "$NETNS_BR"
	ip link set "$NETNS_BR" up
	netns_host balancer "$k" 2
	case $VARIANT in session-redis | jwt-hs256-revoke | jwt-refresh) netns_host redis "$k" 3 ;; esac
	for i in $(seq 1 "$INSTANCES"); do
		netns_host "app$i" "$k" $((10 + i))
	done
	netns_relay
}

# The relay (CLUSTER_REDIS_RTT) runs beside Redis, in its namespace.
netns_relay() {
	[ -z "${NETNS_NS[redis]:-}" ] || NETNS_NS[relay]=${NETNS_NS[redis]} NETNS_ADDR[relay]=${NETNS_ADDR[redis]}
}

# Reads RUNDIR/netns back (for start-server).
netns_load() {
	local kind a b c
	[ -r "$1/netns" ] || return 0
	while read -r kind a b c; do
		case $kind in
		bridge) NETNS_BR=$a NETNS_CLIENT=$b ;;
		host) NETNS_NS[$a]=$b NETNS_ADDR[$a]=$c ;;
		esac
	done <"$1/netns"
	netns_relay
}

# Removes the namespaces (their veth pairs go with them) and the bridge recorded in DIR/netns.
netns_remove() {
	local kind a b c br=''
	[ -r "$1/netns" ] || return 0
	while read -r kind a b c; do
		case $kind in
		bridge) br=$a ;;
		host) ip netns del "$b" 2>/dev/null || true ;;
		esac
	done <"$1/netns"
	[ -z "$br" ] || ip link del "$br" 2>/dev/null || true
	rm -f "$1/netns"
}

# ---- network distance to Redis (scripts/bench.sh --redis-rtt) --------------------------------

# With CLUSTER_REDIS_RTT=MS set, the servers reach Redis through bin/relay, which adds that round
# trip: REDIS_URL is pointed at the relay, and REDIS_RTT_MS goes into cluster.env.
cluster_relay() {
	local port
	need_bin "$AUTH_BIN/relay"
	case $VARIANT in *-ha) lib_die "CLUSTER_REDIS_RTT: the relay sits before one Redis, not a Sentinel set" ;; esac
	# A port chosen with the others (one the -ha variants' replicas would use), so that it
	# cannot be one of theirs.
	port=${REDIS_PORTS[1]}
	cluster_spawn relay "$AUTH_BIN/relay" --listen "$(host_of relay):$port" \
		--target "$(host_of redis):$REDIS_PORT" --rtt "$CLUSTER_REDIS_RTT" --quiet
	cluster_wait relay "$port"
	REDIS_URL=${REDIS_URL/$(host_of redis):$REDIS_PORT/$(host_of relay):$port}
}

# The servers' argv, minus --listen and --id.
cluster_server_argv() {
	case $VARIANT in
	session-memory | session-sticky)
		SERVER_ARGV=("$AUTH_BIN/session_server" --users "$RUNDIR/users.json" --store memory) ;;
	session-redis | session-redis-ha)
		SERVER_ARGV=("$AUTH_BIN/session_server" --users "$RUNDIR/users.json" --store "$REDIS_URL"
			--redis-password-file "$REDIS_PASSWORD_FILE") ;;
	jwt-hs256)
		SERVER_ARGV=("$AUTH_BIN/jwt_server" --users "$RUNDIR/users.json" --secret-file "$KEYFILE") ;;
	jwt-hs256-revoke | jwt-revoke-ha)
		SERVER_ARGV=("$AUTH_BIN/jwt_server" --users "$RUNDIR/users.json" --secret-file "$KEYFILE"
			--revocation "$REDIS_URL" --redis-password-file "$REDIS_PASSWORD_FILE") ;;
	jwt-es256)
		SERVER_ARGV=("$AUTH_BIN/jwt_server" --users "$RUNDIR/users.json" --key "$KEYFILE") ;;
	# Refresh tokens (POST /refresh, reuse detection): short access tokens, long logins.
	jwt-refresh)
		SERVER_ARGV=("$AUTH_BIN/jwt_server" --users "$RUNDIR/users.json" --secret-file "$KEYFILE"
			--revocation "$REDIS_URL" --redis-password-file "$REDIS_PASSWORD_FILE"
			--ttl 60 --refresh-ttl 86400) ;;
	esac
	# Extra flags for every instance, e.g. CLUSTER_SERVER_ARGS="--idle-timeout 60".
	if [ -n "${CLUSTER_SERVER_ARGS:-}" ]; then
		# shellcheck disable=SC2206 # word splitting is the point
		SERVER_ARGV+=($CLUSTER_SERVER_ARGS)
	fi
}

cluster_balancer_ours() {
	local args=() i
	for i in $(seq 1 "$INSTANCES"); do
		args+=(--backend "$(host_of "app$i"):${PORTS[$i]}")
	done
	[ "$STICKY" = 1 ] && args+=(--sticky)
	cluster_spawn balancer "$AUTH_BIN/balancer" --tls-listen "$(host_of balancer):$PORT" --cert "$CERT" \
		--key "$KEY_PEM" --admin "$(host_of balancer):$ADMIN_PORT" --health-interval 500 "${args[@]}"
	ADMIN_URL=http://$(host_of balancer):$ADMIN_PORT/status
}

# The backends as "127.0.0.1:PORT ..." for proxyconf.sh.
cluster_backends() {
	local i
	for i in $(seq 1 "$INSTANCES"); do
		printf '127.0.0.1:%s ' "${PORTS[$i]}"
	done
}

# HAProxy from the same backend list (scripts/proxyconf.sh): TLS with a combined pem, active
# checks on /healthz, and for the sticky variant a balancer-inserted SERVERID cookie.
cluster_balancer_haproxy() {
	local cfg=$RUNDIR/haproxy.cfg sticky=()
	[ "$STICKY" = 1 ] && sticky=(--sticky)
	command -v haproxy >/dev/null || lib_die "haproxy is not installed (scripts/deps.sh test)"
	cat "$CERT" "$KEY_PEM" >"$RUNDIR/tls/haproxy.pem"
	chmod 600 "$RUNDIR/tls/haproxy.pem"
	proxyconf_haproxy "$cfg" "127.0.0.1:$PORT" "$(cluster_backends)" --tls "$RUNDIR/tls/haproxy.pem" \
		--admin "127.0.0.1:$ADMIN_PORT" --checks --log "${sticky[@]}"
	haproxy -c -q -f "$cfg" >"$RUNDIR/logs/haproxy-check.log" 2>&1 ||
		{ cat "$RUNDIR/logs/haproxy-check.log" >&2; lib_die "haproxy rejected $cfg"; }
	cluster_spawn balancer haproxy -db -f "$cfg"
	ADMIN_URL=http://127.0.0.1:$ADMIN_PORT/status
}

# nginx from the same backend list (scripts/proxyconf.sh), as a non-daemon child with every path
# in the run directory. nginx OSS has no sticky cookie (that is NGINX Plus's `sticky cookie`):
# the sticky variant uses ip_hash, which pins a client *address* to a server. On loopback every
# client is pinned to the same server, and behind a NAT so is a whole classroom; the failover
# story is the same.
cluster_balancer_nginx() {
	local d=$RUNDIR/nginx sticky=()
	[ "$STICKY" = 1 ] && sticky=(--sticky)
	command -v nginx >/dev/null || lib_die "nginx is not installed (scripts/deps.sh test)"
	proxyconf_nginx "$d" "127.0.0.1:$PORT" "$(cluster_backends)" --tls "$CERT" "$KEY_PEM" \
		--admin "127.0.0.1:$ADMIN_PORT" --logs "$RUNDIR/logs" "${sticky[@]}"
	nginx -t -q -p "$d" -e "$RUNDIR/logs/nginx-error.log" -c "$d/nginx.conf" \
		>"$RUNDIR/logs/nginx-check.log" 2>&1 ||
		{ cat "$RUNDIR/logs/nginx-check.log" >&2; lib_die "nginx rejected $d/nginx.conf"; }
	cluster_spawn balancer nginx -p "$d" -e "$RUNDIR/logs/nginx-error.log" -c "$d/nginx.conf"
	ADMIN_URL=http://127.0.0.1:$ADMIN_PORT/status
}

# Asks GET /healthz through the balancer until every instance has answered (or, for nginx's
# ip_hash, until one has), so `up` returns only when the cluster really serves.
cluster_ready() {
	local seen=" " want=$INSTANCES i=0 who code=000 hdr
	[ "$STICKY" = 1 ] && [ "$BALANCER" = nginx ] && want=1
	hdr=$RUNDIR/logs/.ready-headers
	while [ "$i" -lt $((${CLUSTER_START_TIMEOUT:-20} * 10)) ]; do
		code=$(curl -s -o /dev/null -D "$hdr" -w '%{http_code}' --max-time 2 --cacert "$CA" \
			"https://$(host_of balancer):$PORT/healthz" 2>/dev/null) || code=000
		if [ "$code" = 200 ]; then
			who=$(tr -d '\r' <"$hdr" | sed -n 's/^[Xx]-[Ss]erved-[Bb]y: *//p' | head -n 1)
			case "$seen" in *" $who "*) ;; *) [ -n "$who" ] && seen="$seen$who " ;; esac
			[ "$(echo $seen | wc -w)" -ge "$want" ] && { rm -f "$hdr"; return 0; }
		fi
		sleep 0.1
		i=$((i + 1))
	done
	rm -f "$hdr"
	echo "cluster.sh: GET /healthz through the balancer did not reach all $want servers in time" \
		"(last status: $code; servers seen:${seen% })" >&2
	tail -n 5 "$RUNDIR/logs/balancer.log" >&2 || true
	return 1
}

# KEY=VALUE, shell-quoted only when the value needs it, so Python can read the file too.
env_line() {
	case $2 in
	*[!A-Za-z0-9_./:,@+=-]*) printf '%s=%q\n' "$1" "$2" ;;
	*) printf '%s=%s\n' "$1" "$2" ;;
	esac
}

cluster_write_env() {
	local f=$RUNDIR/cluster.env i names="" pid prog name pf
	{
		echo "# Written by scripts/cluster.sh up; shell-sourceable KEY=VALUE lines."
		env_line VARIANT "$VARIANT"
		env_line BALANCER "$BALANCER"
		env_line RUNDIR "$RUNDIR"
		env_line INSTANCES "$INSTANCES"
		env_line FLOW "${VARIANT%%-*}"
		env_line STICKY "$STICKY"
		env_line BALANCER_URL "https://$(host_of balancer):$PORT"
		env_line BALANCER_PORT "$PORT"
		env_line ADMIN_URL "$ADMIN_URL"
		env_line CA "$CA"
		env_line CERT "$CERT"
		env_line KEY "$KEY_PEM"
		env_line USERS "$RUNDIR/users.json"
		env_line CREDENTIALS "$RUNDIR/credentials.txt"
		env_line USERS_LN "$USERS_LN"
		env_line JWT_KEY "${KEYFILE:-}"
		env_line REDIS_URL "${REDIS_URL:-}"
		env_line REDIS_PASSWORD_FILE "${REDIS_PASSWORD_FILE:-}"
		[ -z "$NETNS_BR" ] || env_line CLIENT_ADDR "$NETNS_CLIENT"
		[ ! -f "$RUNDIR/pids/relay.pid" ] || env_line REDIS_RTT_MS "$CLUSTER_REDIS_RTT"
		for i in $(seq 1 "$INSTANCES"); do
			read -r pid prog <"$RUNDIR/pids/app$i.pid"
			env_line "SERVER_app$i" "$(host_of "app$i"):${PORTS[$i]}"
			env_line "PID_app$i" "$pid"
			names="$names${names:+,}app$i"
		done
		env_line SERVERS "$names"
		read -r pid prog <"$RUNDIR/pids/balancer.pid"
		env_line PID_balancer "$pid"
		for pf in "$RUNDIR"/pids/redis*.pid "$RUNDIR"/pids/sentinel*.pid; do
			[ -f "$pf" ] || continue
			read -r pid prog <"$pf"
			name=$(basename "$pf" .pid)
			env_line "PID_${name//-/_}" "$pid"
		done
	} >"$f.tmp"
	mv "$f.tmp" "$f"
}

UP_DONE=0
cluster_up_cleanup() {
	if [ "$UP_DONE" != 1 ] && [ -n "${RUNDIR:-}" ]; then
		cluster_stop_dir "$RUNDIR"
		echo "cluster.sh: up did not complete; stopped what it had started (logs: $RUNDIR/logs)" >&2
	fi
}

cmd_up() {
	local quiet=0 i ports
	VARIANT=${1:-}
	[ -n "$VARIANT" ] || { usage >&2; exit 2; }
	shift
	case " $VARIANTS " in *" $VARIANT "*) ;; *)
		echo "cluster.sh: unknown variant '$VARIANT' (one of: $VARIANTS)" >&2; exit 2 ;; esac
	INSTANCES=3 BALANCER=ours PORT='' DIR='' NETNS=${CLUSTER_NETNS:-0}
	while [ $# -gt 0 ]; do
		case $1 in
		--instances) lib_optarg INSTANCES "$@"; shift 2 ;;
		--balancer) lib_optarg BALANCER "$@"; shift 2 ;;
		--dir) lib_optarg DIR "$@"; shift 2 ;;
		--port) lib_optarg PORT "$@"; shift 2 ;;
		--quiet) quiet=1; shift ;;
		--netns) NETNS=1; shift ;;
		*) echo "cluster.sh: unknown option '$1'" >&2; exit 2 ;;
		esac
	done
	case $INSTANCES in '' | *[!0-9]*) echo "cluster.sh: --instances needs a number from 1 to 16" >&2; exit 2 ;; esac
	[ "$INSTANCES" -ge 1 ] && [ "$INSTANCES" -le 16 ] ||
		{ echo "cluster.sh: --instances needs a number from 1 to 16" >&2; exit 2; }
	case $BALANCER in ours | haproxy | nginx) ;; *)
		echo "cluster.sh: --balancer is ours, haproxy or nginx" >&2; exit 2 ;; esac
	[ -z "$PORT" ] || lib_check_port --port "$PORT"
	STICKY=0
	[ "$VARIANT" = session-sticky ] && STICKY=1

	RUNDIR=${DIR:-$PWD/run/$VARIANT}
	mkdir -p "$RUNDIR"
	RUNDIR=$(cd "$RUNDIR" && pwd)
	if cluster_any_alive "$RUNDIR"; then
		lib_die "a cluster is already running in $RUNDIR (scripts/cluster.sh down --dir $RUNDIR)"
	fi
	need_bin "$AUTH_BIN/authctl"
	case $VARIANT in session-*) need_bin "$AUTH_BIN/session_server" ;; *) need_bin "$AUTH_BIN/jwt_server" ;; esac
	[ "$BALANCER" = ours ] && need_bin "$AUTH_BIN/balancer"

	netns_remove "$RUNDIR"	# what a crashed run may have left
	# Only what we create is removed: --dir may name a directory that holds other things.
	rm -rf "$RUNDIR/pids" "$RUNDIR/logs" "$RUNDIR/cmds" "$RUNDIR/tls" "$RUNDIR/keys" "$RUNDIR/redis" \
		"$RUNDIR/nginx" "$RUNDIR/haproxy.cfg" "$RUNDIR/cluster.env" "$RUNDIR/users.json" \
		"$RUNDIR/credentials.txt"
	mkdir -p "$RUNDIR/pids" "$RUNDIR/logs" "$RUNDIR/cmds" "$RUNDIR/keys"
	trap cluster_up_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	mapfile -t ports < <(lib_free_ports $((INSTANCES + 8)))
	PORTS=(unused "${ports[@]:0:$INSTANCES}")
	REDIS_PORT=${ports[$INSTANCES]}
	ADMIN_PORT=${ports[$((INSTANCES + 1))]}
	PORT=${PORT:-${ports[$((INSTANCES + 2))]}}
	REDIS_PORTS=(unused "${ports[@]:$((INSTANCES + 3)):5}") # 2 replicas, 3 sentinels

	[ "$NETNS" != 1 ] || netns_create
	cluster_certs
	cluster_users
	KEYFILE='' REDIS_URL='' REDIS_PASSWORD_FILE=''
	case $VARIANT in
	jwt-hs256 | jwt-hs256-revoke | jwt-revoke-ha | jwt-refresh) KEYFILE=$RUNDIR/keys/hs256.key
		"$AUTH_BIN/authctl" keygen hs256 --out "$KEYFILE" >>"$RUNDIR/logs/authctl.log" 2>&1 ||
			{ cat "$RUNDIR/logs/authctl.log" >&2; lib_die "authctl keygen hs256 failed"; } ;;
	jwt-es256) KEYFILE=$RUNDIR/keys/es256.pem
		"$AUTH_BIN/authctl" keygen es256 --out "$KEYFILE" >>"$RUNDIR/logs/authctl.log" 2>&1 ||
			{ cat "$RUNDIR/logs/authctl.log" >&2; lib_die "authctl keygen es256 failed"; } ;;
	esac
	case $VARIANT in session-redis | jwt-hs256-revoke | *-ha | jwt-refresh) cluster_redis ;; esac
	[ -z "${CLUSTER_REDIS_RTT:-}" ] || [ -z "$REDIS_URL" ] || cluster_relay

	cluster_server_argv
	for i in $(seq 1 "$INSTANCES"); do
		cluster_spawn "app$i" "${SERVER_ARGV[@]}" ${NETNS_BR:+--trust-proxy "$(host_of balancer)"} \
			--listen "$(host_of "app$i"):${PORTS[$i]}" --id "app$i"
	done
	for i in $(seq 1 "$INSTANCES"); do
		cluster_wait "app$i" "${PORTS[$i]}"
	done
	"cluster_balancer_$BALANCER"
	cluster_wait balancer "$PORT"
	cluster_ready
	cluster_write_env
	UP_DONE=1
	trap - EXIT INT TERM
	[ "$quiet" = 1 ] && return 0
	echo "cluster $VARIANT is up: $INSTANCES instances behind $BALANCER"
	echo "  balancer  https://$(host_of balancer):$PORT   (admin: $ADMIN_URL)"
	for i in $(seq 1 "$INSTANCES"); do
		echo "  app$i      $(host_of "app$i"):${PORTS[$i]}"
	done
	[ -n "$REDIS_URL" ] && echo "  redis     $REDIS_URL"
	echo "  users     $(echo $DEMO_USERS | tr ' ' ','), passwords in $RUNDIR/credentials.txt (scrypt ln=$USERS_LN)"
	echo "  try       curl --cacert $CA https://$(host_of balancer):$PORT/healthz"
	echo "  stop      scripts/cluster.sh down --dir $RUNDIR"
}

# ---- down, status, logs, stop-server, start-server --------------------------------------------

parse_dir_opts() {
	DIR='' ARG=''
	while [ $# -gt 0 ]; do
		case $1 in
		--dir) lib_optarg DIR "$@"; shift 2 ;;
		-*) echo "cluster.sh: unknown option '$1'" >&2; exit 2 ;;
		*) [ -z "$ARG" ] || { echo "cluster.sh: unexpected argument '$1'" >&2; exit 2; }
			ARG=$1; shift ;;
		esac
	done
	if [ -n "$DIR" ]; then
		[ -d "$DIR" ] || lib_die "no run directory $DIR"
		DIR=$(cd "$DIR" && pwd)
	fi
}

cmd_down() {
	local d n=0
	parse_dir_opts "$@"
	for d in $(cluster_dirs); do
		cluster_stop_dir "$d"
		echo "cluster in $d: stopped"
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || echo "cluster.sh: no cluster found under $PWD/run"
}

cmd_status() {
	local d f name pid prog rc=0 n=0 state health port procs
	parse_dir_opts "$@"
	for d in $(cluster_dirs); do
		n=$((n + 1)) procs=0
		if [ -r "$d/cluster.env" ]; then
			# shellcheck disable=SC1091
			(. "$d/cluster.env"; echo "$VARIANT behind $BALANCER: $BALANCER_URL (CA $CA)")
		else
			echo "$d: not (completely) up"
		fi
		for f in "$d"/pids/*.pid; do
			[ -r "$f" ] || continue
			name=$(basename "$f" .pid)
			read -r pid prog <"$f"
			if lib_alive "$pid" "$prog"; then state=running; else state=stopped; rc=1; fi
			health=''
			port=$(sed -n "s/^SERVER_$name=//p" "$d/cluster.env" 2>/dev/null || true)
			if [ -n "$port" ] && [ "$state" = running ]; then
				health="healthz $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
					"http://$port/healthz" || true)"
			fi
			printf '  %-9s pid %-7s %-8s %s\n' "$name" "$pid" "$state" "$health"
			procs=$((procs + 1))
		done
		[ "$procs" -gt 0 ] || { echo "  all stopped (down)"; rc=1; }
	done
	[ "$n" -gt 0 ] || { echo "no cluster found under $PWD/run"; return 3; }
	return "$rc"
}

cmd_logs() {
	local d f names='' found=0
	parse_dir_opts "$@"
	for d in $(cluster_dirs); do
		for f in "$d"/logs/*.log; do
			[ -r "$f" ] || continue
			names="$names $(basename "$f" .log)"
			[ -z "$ARG" ] || [ "$(basename "$f" .log)" = "$ARG" ] || continue
			echo "==> $f <=="
			tail -n "${CLUSTER_LOG_LINES:-20}" "$f"
			found=1
		done
	done
	[ -z "$ARG" ] || [ "$found" = 1 ] ||
		lib_usage_error "no log named '$ARG' (there are:${names:- none})"
}

# Stops (SIGTERM) or starts again one instance, e.g. for the sticky-session lesson or the web page.
cmd_stop_server() {
	local words
	parse_dir_opts "$@"
	[ -n "$ARG" ] && [ -n "$DIR" ] || lib_die "usage: cluster.sh stop-server NAME --dir RUNDIR"
	RUNDIR=$DIR
	words=$(cluster_pidwords "$RUNDIR/pids/$ARG.pid")
	[ -n "$words" ] || lib_die "no process named $ARG in $RUNDIR"
	lib_stop 15 $words
}

cmd_start_server() {
	local port argv
	parse_dir_opts "$@"
	[ -n "$ARG" ] && [ -n "$DIR" ] || lib_die "usage: cluster.sh start-server NAME --dir RUNDIR"
	RUNDIR=$DIR
	[ -r "$RUNDIR/cmds/$ARG" ] || lib_die "no command recorded for $ARG in $RUNDIR"
	if [ -f "$RUNDIR/pids/$ARG.pid" ] && cluster_any_alive_one "$RUNDIR/pids/$ARG.pid"; then
		lib_die "$ARG is already running"
	fi
	eval "argv=($(cat "$RUNDIR/cmds/$ARG"))"
	netns_load "$RUNDIR"
	cluster_spawn "$ARG" "${argv[@]}"
	port=$(sed -n "s/^SERVER_$ARG=[^:]*://p" "$RUNDIR/cluster.env")
	[ -z "$port" ] || cluster_wait "$ARG" "$port"
}

cluster_any_alive_one() {
	local w
	w=$(cluster_pidwords "$1")
	[ -n "$w" ] && lib_alive "${w%%:*}" "${w#*:}"
}

case ${1:-} in
up) shift; cmd_up "$@" ;;
down) shift; cmd_down "$@" ;;
status) shift; cmd_status "$@" ;;
logs) shift; cmd_logs "$@" ;;
stop-server) shift; cmd_stop_server "$@" ;;
start-server) shift; cmd_start_server "$@" ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac
