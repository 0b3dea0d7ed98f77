#!/usr/bin/env bash
# The classroom demo (`make demo`): six short lessons on why cookie sessions break behind a
# round-robin balancer unless they are shared (Redis), and why signed JWTs do not, with the price
# JWTs pay at logout. Every request is shown as a curl line with the server that answered and the
# status; every lesson checks its own claims and the demo stops with a non-zero exit and a clear
# message the moment reality differs from the story. Run with --help for usage.
# shellcheck disable=SC2015,SC2034 source-path=SCRIPTDIR
set -euo pipefail
LIB_PROG=demo.sh # read by lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<'EOF'
usage: scripts/demo.sh [--step] [--lesson K] [--instances N] [--balancer ours|haproxy|nginx] [--serve]

  --step          wait for Enter between lessons (for teaching)
  --lesson K      run lesson K only (1-6)
  --instances N   servers per cluster (2-8, default 3)
  --balancer B    our balancer (default), HAProxy or nginx in front of the same servers
  --serve         at the end, keep the clusters up for the web page and wait for Ctrl-C

Lessons: 1 memory sessions, 2 Redis sessions, 3 JWT, 4 tampering, 5 sticky sessions and a
server stop, 6 logout. Clusters run under $DEMO_DIR (default <repo>/run/demo); programs come
from $AUTH_BIN (default <repo>/bin). Colours only on a terminal (NO_COLOR disables them).
EOF
}

STEP=0 ONLY='' INSTANCES=3 BALANCER=ours SERVE=0
while [ $# -gt 0 ]; do
	case $1 in
	--step) STEP=1; shift ;;
	--lesson) lib_optarg ONLY "$@"; shift 2 ;;
	--instances) lib_optarg INSTANCES "$@"; shift 2 ;;
	--balancer) lib_optarg BALANCER "$@"; shift 2 ;;
	--serve) SERVE=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "demo.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
done
case $ONLY in '' | [1-6]) ;; *) echo "demo.sh: --lesson takes a number from 1 to 6" >&2; exit 2 ;; esac
case $INSTANCES in [2-8]) ;; *) echo "demo.sh: --instances takes a number from 2 to 8 (the story needs two servers)" >&2; exit 2 ;; esac
case $BALANCER in ours | haproxy | nginx) ;; *) echo "demo.sh: --balancer is ours, haproxy or nginx" >&2; exit 2 ;; esac

DEMO_DIR=${DEMO_DIR:-$LIB_ROOT/run/demo}
CLUSTER=$LIB_ROOT/scripts/cluster.sh
# The variant behind each role. Tests swap one (e.g. DEMO_VARIANT_MEMORY=session-redis) to prove
# that a lesson's self-check catches a cluster that does not behave as the lesson says.
V_MEMORY=${DEMO_VARIANT_MEMORY:-session-memory}
V_REDIS=${DEMO_VARIANT_REDIS:-session-redis}
V_JWT=${DEMO_VARIANT_JWT:-jwt-hs256}
V_STICKY=${DEMO_VARIANT_STICKY:-session-sticky}
V_REVOKE=${DEMO_VARIANT_REVOKE:-jwt-hs256-revoke}

lib_colours
SERVER_COLOURS=("$C_CYAN" "$C_MAGENTA" "$C_YELLOW" "$C_BLUE" "$C_GREEN" "$C_CYAN" "$C_MAGENTA" "$C_YELLOW")
LESSON=0 LESSON_TITLE='' CHECKS=0 SUMMARY=() UP=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/demo.XXXXXX")
WEB_PID='' SLEEP_PID=''
# curl 7.82 and later have --json (Content-Type and Accept in one flag): shorter lines to read.
CURL_JSON=0
curl --help all 2>/dev/null | grep -q -- '--json' && CURL_JSON=1

demo_cleanup() {
	local d
	[ -z "$WEB_PID" ] || lib_stop 10 "$WEB_PID:web.sh"
	[ -z "$SLEEP_PID" ] || kill "$SLEEP_PID" 2>/dev/null || true
	for d in "${UP[@]}"; do
		"$CLUSTER" down --dir "$d" >/dev/null 2>&1 || true
	done
	rm -rf "$TMP"
}
trap demo_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- output ---------------------------------------------------------------------------------

say() { printf '  %s\n' "$@"; }

demo_title() {
	LESSON=$1 LESSON_TITLE=$2
	printf '\n%s== Lesson %s: %s ==%s\n' "$C_BOLD" "$1" "$2" "$C_OFF"
}

server_colour() {
	local n=${1#app}
	case $n in '' | *[!0-9]*) printf '%s' "$C_BOLD" ;; *) printf '%s' "${SERVER_COLOURS[$(((n - 1) % 8))]}" ;; esac
}

status_colour() {
	case $1 in 2??) printf '%s' "$C_GREEN" ;; *) printf '%s' "$C_RED" ;; esac
}

# The lesson's conclusion is printed only after its checks passed.
conclude() {
	printf '%s  => %s%s\n' "$C_BOLD" "$1" "$C_OFF"
	shift
	[ $# -eq 0 ] || say "$@"
}

# ---- self-checks ----------------------------------------------------------------------------

demo_fail() {
	printf '\n%sDEMO FAILED in lesson %s (%s):%s\n' "$C_RED$C_BOLD" "$LESSON" "$LESSON_TITLE" "$C_OFF" >&2
	printf '  %s\n' "$@" >&2
	printf '  The demo stops here rather than tell a story that did not happen.\n' >&2
	[ -z "${RUNDIR:-}" ] || printf '  Logs: %s/logs (scripts/cluster.sh logs --dir %s)\n' "$RUNDIR" "$RUNDIR" >&2
	exit 1
}

# expect WHAT ACTUAL EXPECTED
expect() {
	[ "$2" = "$3" ] || demo_fail "$1: expected $3, got ${2:-nothing}"
	CHECKS=$((CHECKS + 1))
}

# expect_that WHAT COMMAND...: the command must succeed.
expect_that() {
	local what=$1
	shift
	"$@" || demo_fail "$what"
	CHECKS=$((CHECKS + 1))
}

# ---- clusters -------------------------------------------------------------------------------

# Brings up the cluster of VARIANT (or reuses the one this demo already started) and loads its
# cluster.env: BALANCER_URL, CA, RUNDIR, SERVERS, ...
demo_cluster() {
	local v=$1 d=$DEMO_DIR/$1 err
	if [[ " ${UP[*]} " != *" $d "* ]]; then
		printf '%s  (starting %s: %s servers behind %s ...)%s\n' "$C_DIM" "$v" "$INSTANCES" "$BALANCER" "$C_OFF"
		# Listed before it starts: an interrupt during `up` must still take it down.
		UP+=("$d")
		if ! err=$("$CLUSTER" up "$v" --instances "$INSTANCES" --balancer "$BALANCER" --dir "$d" --quiet 2>&1); then
			RUNDIR=$d
			demo_fail "could not start the $v cluster:" "$err"
		fi
	fi
	# shellcheck disable=SC1090,SC1091 # written by cluster.sh; sets STICKY, SERVERS, ...
	. "$d/cluster.env"
	URL=$BALANCER_URL
	printf '%s  URL=%s  CA=%s  servers: %s (%s)%s\n' "$C_DIM" "$URL" "$CA" "${SERVERS//,/ }" \
		"$([ "${STICKY:-0}" = 1 ] && echo sticky || echo round robin)" "$C_OFF"
}

demo_cluster_down() {
	local d=$DEMO_DIR/$1 keep=() x
	"$CLUSTER" down --dir "$d" >/dev/null 2>&1 || true
	for x in "${UP[@]}"; do [ "$x" = "$d" ] || keep+=("$x"); done
	UP=("${keep[@]}")
}

demo_password() {
	sed -n "s/^$1://p" "$RUNDIR/credentials.txt"
}

# ---- requests -------------------------------------------------------------------------------

# demo_req METHOD PATH [--login USER] [--sid VAR] [--bearer VAR] [--jar FILE]
# Sends one request through the balancer, prints it as a curl line (tokens and session ids as
# shell variables, so the line stays readable and can be pasted), then who answered and how.
# Sets REQ_STATUS, REQ_SERVER, REQ_BODY, REQ_ERROR.
demo_req() {
	local method=$1 path=$2 args=() shown=curl body pw extra
	shift 2
	# A login's body already makes it a POST.
	[ "$method" = GET ] || [ "${1:-}" = --login ] || { args+=(-X "$method"); shown+=" -X $method"; }
	while [ $# -gt 0 ]; do
		case $1 in
		--login) pw=$(demo_password "$2")
			body="{\"username\":\"$2\",\"password\":\"$pw\"}"
			if [ "$CURL_JSON" = 1 ]; then
				args+=(--json "$body")
				shown+=" --json '$body'"
			else
				args+=(-H 'Content-Type: application/json' -d "$body")
				shown+=" -H 'Content-Type: application/json' -d '$body'"
			fi ;;
		--sid) args+=(-b "sid=${!2}"); shown+=" -b \"sid=\$$2\"" ;;
		--bearer) args+=(-H "Authorization: Bearer ${!2}"); shown+=" -H \"Authorization: Bearer \$$2\"" ;;
		--jar) args+=(-b "$2" -c "$2"); shown+=" -b ${2##*/} -c ${2##*/}" ;;
		esac
		shift 2
	done
	shown+=" \$URL$path"
	REQ_STATUS=$(curl -s --max-time 10 --cacert "$CA" -D "$TMP/headers" -o "$TMP/body" -w '%{http_code}' \
		"${args[@]}" "$URL$path") || REQ_STATUS=000
	REQ_SERVER=$(header X-Served-By)
	REQ_BODY=$(cat "$TMP/body" 2>/dev/null || true)
	REQ_ERROR=$(json_field error)
	if [ "${REQ_STATUS:0:1}" = 2 ]; then
		extra=$(json_field username)
		[ -z "$extra" ] || extra="user=$extra"
		[ -z "$(json_field role)" ] || extra+=" role=$(json_field role)"
	else
		extra=$REQ_ERROR
	fi
	printf '  %-52s %s-> %s%-5s%s %s%s%s %s\n' "$shown" "$C_DIM" "$C_OFF$(server_colour "$REQ_SERVER")" \
		"${REQ_SERVER:-?}" "$C_OFF" "$(status_colour "$REQ_STATUS")" "$REQ_STATUS" "$C_OFF" "$extra"
}

header() {
	tr -d '\r' <"$TMP/headers" 2>/dev/null | sed -n "s/^$1: *//Ip" | tail -n 1
}

# The value the last response set for cookie NAME.
set_cookie() {
	tr -d '\r' <"$TMP/headers" 2>/dev/null | sed -n "s/^set-cookie: *$1=\([^;]*\).*/\1/Ip" | head -n 1
}

# demo_login USER [--jar FILE]: logs USER in through the balancer; the login must succeed.
demo_login() {
	local user=$1
	shift
	demo_req POST /login --login "$user" "$@"
	expect "login as $user" "$REQ_STATUS" 200
}

expect_logout() {
	expect_that "logout answers 200 or 204 (got $REQ_STATUS)" test "$REQ_STATUS" = 200 -o "$REQ_STATUS" = 204
}

# The first string value of FIELD in the last response body (flat JSON objects suffice here).
json_field() {
	printf '%s' "$REQ_BODY" | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" | head -n 1
}

# Sends COUNT GET /profile requests with the given credential options; records who answered
# with what in SEEN_SERVERS / SEEN_STATUS (arrays) and prints a per-server tally.
demo_profiles() {
	local count=$1 i
	shift
	SEEN_SERVERS=() SEEN_STATUS=()
	for i in $(seq 1 "$count"); do
		demo_req GET /profile "$@"
		SEEN_SERVERS+=("${REQ_SERVER:-?}")
		SEEN_STATUS+=("$REQ_STATUS")
	done
}

# Prints "app1 2x200  app2 2x401 ..." for the last demo_profiles.
demo_tally() {
	local out='' s i n
	for s in $(printf '%s\n' "${SEEN_SERVERS[@]}" | sort -u); do
		for st in $(printf '%s\n' "${SEEN_STATUS[@]}" | sort -u); do
			n=0
			for i in "${!SEEN_SERVERS[@]}"; do
				[ "${SEEN_SERVERS[$i]}" = "$s" ] && [ "${SEEN_STATUS[$i]}" = "$st" ] && n=$((n + 1))
			done
			[ "$n" = 0 ] || out+="$(server_colour "$s")$s$C_OFF ${n}x$(status_colour "$st")$st$C_OFF   "
		done
	done
	printf '  %sTally:%s %s\n' "$C_BOLD" "$C_OFF" "$out"
}

count_status() {
	local st n=0
	for st in "${SEEN_STATUS[@]}"; do [ "$st" = "$1" ] && n=$((n + 1)); done
	echo "$n"
}

distinct_servers() {
	printf '%s\n' "${SEEN_SERVERS[@]}" | sort -u | grep -vc '^?$' || true
}

# Round robin: consecutive requests land on different servers and every server got its share
# (the counts differ by at most one).
is_round_robin() {
	local i counts
	for i in $(seq 1 $((${#SEEN_SERVERS[@]} - 1))); do
		[ "${SEEN_SERVERS[$i]}" != "${SEEN_SERVERS[$((i - 1))]}" ] || return 1
	done
	counts=$(printf '%s\n' "${SEEN_SERVERS[@]}" | sort | uniq -c | awk '{print $1}' | sort -n)
	[ $(($(echo "$counts" | tail -n 1) - $(echo "$counts" | head -n 1))) -le 1 ]
}

not_seen() {
	local s
	for s in "${SEEN_SERVERS[@]}"; do [ "$s" != "$1" ] || return 1; done
}

jwt_claim() {
	"$PYTHON" - "$1" "$2" <<'EOF'
import base64, json, sys
p = sys.argv[1].split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
print(claims.get(sys.argv[2], ""))
EOF
}

pause() {
	[ "$STEP" = 1 ] || return 0
	printf '%s  [Enter for the next lesson]%s ' "$C_DIM" "$C_OFF"
	read -r _ || true
}

# ---- the lessons ----------------------------------------------------------------------------

lesson_memory() {
	local home n=$((2 * INSTANCES)) i
	demo_title 1 "sessions kept in each server's memory"
	say "At login, the server that checked the password creates a session in its own memory and" \
		"gives the browser a cookie, sid, that names it. The balancer sends each request to the" \
		"next server in turn, and the other servers have never heard of that session."
	demo_cluster "$V_MEMORY"
	demo_login alice
	SID=$(set_cookie sid)
	expect_that "the login response sets the sid cookie" test -n "$SID"
	home=$REQ_SERVER
	say "SID=$SID  (created and stored by $home only)"
	demo_profiles "$n" --sid SID
	demo_tally
	for i in "${!SEEN_SERVERS[@]}"; do
		if [ "${SEEN_SERVERS[$i]}" = "$home" ]; then
			expect "request $((i + 1)) on $home, which holds the session" "${SEEN_STATUS[$i]}" 200
		else
			expect "request $((i + 1)) on ${SEEN_SERVERS[$i]}, which never saw the login" "${SEEN_STATUS[$i]}" 401
		fi
	done
	expect "servers that answered" "$(distinct_servers)" "$INSTANCES"
	expect_that "the balancer alternates servers per request (round robin)" is_round_robin
	conclude "$(count_status 401) of $n requests failed with 401: only $home knows alice's session." \
		"The cookie is fine; the other servers simply have no memory of it."
	SUMMARY+=("1 memory sessions:  $(count_status 401) of $n requests got 401 (only $home knew the session)")
}

lesson_redis() {
	local n=$((2 * INSTANCES))
	demo_title 2 "sessions in a shared Redis"
	say "Same servers, same cookie, but every server keeps sessions in one shared Redis instead of" \
		"its own memory: whichever server answers looks the session up in the same place."
	demo_cluster "$V_REDIS"
	say "(Redis at $REDIS_URL)"
	demo_login alice
	SID=$(set_cookie sid)
	expect_that "the login response sets the sid cookie" test -n "$SID"
	say "SID=$SID  (stored in Redis)"
	demo_profiles "$n" --sid SID
	demo_tally
	expect "requests answered 200" "$(count_status 200)" "$n"
	expect "servers that answered" "$(distinct_servers)" "$INSTANCES"
	expect_that "the balancer alternates servers per request (round robin)" is_round_robin
	conclude "all $n requests succeeded on all $INSTANCES servers." \
		"The price: every request now costs a Redis round trip, and Redis must stay up."
	SUMMARY+=("2 Redis sessions:   $n of $n requests ok on $INSTANCES servers (one shared store)")
}

lesson_jwt() {
	local n=$((2 * INSTANCES)) h p s how
	demo_title 3 "JSON Web Tokens"
	say "Instead of a session id, the server that checks the password hands out a signed token:" \
		"the claims (who, role, expiry) plus a signature made with a key that every server has." \
		"Any server can check the signature and read the claims. Nobody stores anything."
	demo_cluster "$V_JWT"
	demo_login alice
	TOKEN=$(json_field access_token)
	expect_that "the login response carries an access_token" test -n "$TOKEN"
	IFS=. read -r h p s <<<"$TOKEN"
	say "TOKEN=$C_RED$h$C_OFF.$C_MAGENTA$p$C_OFF.$C_CYAN$s$C_OFF"
	demo_profiles "$n" --bearer TOKEN
	demo_tally
	expect "requests answered 200" "$(count_status 200)" "$n"
	expect "servers that answered" "$(distinct_servers)" "$INSTANCES"
	expect_that "the balancer alternates servers per request (round robin)" is_round_robin
	say "" "The token is three base64url parts: header.payload.signature. Decoded:"
	say "\$ authctl token decode \$TOKEN"
	if ! "$AUTH_BIN/authctl" token decode "$TOKEN" >"$TMP/decoded" 2>&1; then
		demo_fail "authctl token decode failed:" "$(cat "$TMP/decoded")"
	fi
	sed 's/^/    /' "$TMP/decoded"
	expect_that "the decoded token names alice" grep -q alice "$TMP/decoded"
	expect "the token's sub claim" "$(jwt_claim "$TOKEN" sub)" alice
	say "Decoding checks nothing. Checking needs the key that every server of this cluster has:"
	demo_verify TOKEN
	expect_that "authctl token verify with the cluster's key accepts the token" test "$VERIFY_RC" = 0
	if [ "$(jwt_claim_alg)" = HS256 ]; then
		how="Each one recomputed the HMAC-SHA256 of header.payload with the shared secret:"
	else
		how="Each one checked the $(jwt_claim_alg) signature with the public key (only the private key signs):"
	fi
	conclude "all $n requests succeeded, and no server remembered anything." "$how" \
		"it matched, so the claims are genuine and unchanged. Note: anyone can read the payload."
	SUMMARY+=("3 JWT:              $n of $n requests ok on $INSTANCES servers (nothing stored anywhere)")
}

# Runs `authctl token verify` on the token in variable VAR with the cluster's key, prints the
# verdict line; sets VERIFY_RC and VERIFY_OUT.
demo_verify() {
	# The servers issue and require iss and aud "auth-demo" (jwt_server's defaults).
	say "\$ authctl token verify --key \$RUNDIR/${JWT_KEY#"$RUNDIR"/} --issuer auth-demo --audience auth-demo \$$1"
	VERIFY_RC=0
	VERIFY_OUT=$("$AUTH_BIN/authctl" token verify --key "$JWT_KEY" --issuer auth-demo --audience auth-demo \
		"${!1}" 2>&1) || VERIFY_RC=$?
	printf '    %s\n' "$(head -n 1 <<<"$VERIFY_OUT")"
}

jwt_claim_alg() {
	"$PYTHON" - "$TOKEN" <<'EOF'
import base64, json, sys
h = sys.argv[1].split(".")[0]
print(json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4))).get("alg", "?"))
EOF
}

lesson_tamper() {
	local www
	demo_title 4 "tampering with a token"
	say "The payload is only encoded, not encrypted: bob can decode his token, change his role to" \
		"admin, encode it again and send it back with the original signature."
	demo_cluster "$V_JWT"
	demo_login bob
	TOKEN=$(json_field access_token)
	expect_that "the login response carries an access_token" test -n "$TOKEN"
	demo_req GET /profile --bearer TOKEN
	expect "bob's own token" "$REQ_STATUS" 200
	expect "bob's role in the genuine token" "$(jwt_claim "$TOKEN" role)" user
	FORGED=$("$PYTHON" - "$TOKEN" <<'EOF'
import base64, json, sys
h, p, s = sys.argv[1].split(".")
claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
claims["role"] = "admin"
p = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
print(h + "." + p + "." + s)
EOF
)
	say "FORGED=\$TOKEN with the payload re-encoded: \"role\": \"$(jwt_claim "$FORGED" role)\", same signature"
	demo_profiles "$INSTANCES" --bearer FORGED
	expect "forged token: requests answered 401" "$(count_status 401)" "$INSTANCES"
	expect "servers that refused the forged token" "$(distinct_servers)" "$INSTANCES"
	www=$(header WWW-Authenticate)
	expect_that "the 401 says why (WWW-Authenticate: ... error=\"invalid_token\"), got: $www" \
		grep -q 'error="invalid_token"' <<<"$www"
	say "WWW-Authenticate: $www"
	demo_verify FORGED
	expect_that "authctl token verify rejects the forged token for its signature, got: $VERIFY_OUT" \
		grep -q '^invalid: bad_signature' <<<"$VERIFY_OUT"
	say "" "Another classic: claim the token needs no signature at all (\"alg\": \"none\")."
	# shellcheck disable=SC2034 # read by demo_req through ${!var}
	NOSIG=$("$PYTHON" - "$FORGED" <<'EOF'
import base64, sys
h = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
print(h + "." + sys.argv[1].split(".")[1] + ".")
EOF
)
	say "NOSIG=header {\"alg\":\"none\"} . the forged payload . no signature"
	demo_req GET /profile --bearer NOSIG
	expect "token with alg none" "$REQ_STATUS" 401
	conclude "every server refused both forgeries with 401." \
		"The signature covers header and payload: change one byte and it no longer matches, and" \
		"only the servers hold the key to make a new one. The algorithm comes from the server's key," \
		"never from the token, so \"none\" gets nowhere."
	SUMMARY+=("4 tampering:        role=admin and alg=none both refused with 401 by every server")
}

lesson_sticky() {
	local jar=$TMP/jar home n=$INSTANCES cookies after
	demo_title 5 "sticky sessions, and a server that dies"
	say "A common fix for memory sessions: the balancer pins each browser to one server."
	if [ "$BALANCER" = nginx ]; then
		say "nginx has no sticky cookie (only NGINX Plus does); the closest is ip_hash, which pins a" \
			"client address. Here every client is 127.0.0.1, so everyone lands on one server."
	fi
	demo_cluster "$V_STICKY"
	rm -f "$jar"
	demo_login carol --jar "$jar"
	home=$REQ_SERVER
	cookies=$(awk '!/^#/ || /^#HttpOnly_/ {print $6}' "$jar" | grep -v '^$' | tr '\n' ' ' || true)
	if [ "$BALANCER" = nginx ]; then
		say "cookies in the jar: $cookies(nginx pins by client address, not by cookie)"
	else
		say "cookies in the jar: $cookies(sid is the session; the other is the balancer's, naming $home)"
	fi
	demo_profiles "$n" --jar "$jar"
	expect "requests answered 200 while $home lives" "$(count_status 200)" "$n"
	expect "servers that answered (pinned to $home)" "$(printf '%s\n' "${SEEN_SERVERS[@]}" | sort -u | tr -d '\n')" "$home"
	say "" "Now $home stops (a crash, a deploy, an autoscaler):"
	say "\$ scripts/cluster.sh stop-server $home --dir \$RUNDIR"
	"$CLUSTER" stop-server "$home" --dir "$RUNDIR" || demo_fail "could not stop $home"
	demo_profiles "$n" --jar "$jar"
	demo_tally
	expect_that "no request reached the stopped $home" not_seen "$home"
	expect "requests answered 401 after the stop (the session died with $home)" "$(count_status 401)" "$n"
	if [ "$BALANCER" != nginx ]; then
		after=$(printf '%s\n' "${SEEN_SERVERS[@]}" | sort -u | wc -l)
		expect "servers the balancer re-pinned carol to" "$after" 1
	fi
	conclude "stickiness worked until $home died; then carol was moved and her session was gone." \
		"She must log in again: every user of $home just lost their session."
	SUMMARY+=("5 sticky sessions:  fine while $home lived; after it stopped $n of $n got 401")

	say "" "The same stop on the Redis and JWT clusters:"
	demo_cluster "$V_REDIS"
	demo_login carol
	SID=$(set_cookie sid)
	home=$REQ_SERVER
	say "\$ scripts/cluster.sh stop-server $home --dir \$RUNDIR    (the server carol logged in on)"
	"$CLUSTER" stop-server "$home" --dir "$RUNDIR" || demo_fail "could not stop $home"
	demo_profiles "$((2 * INSTANCES))" --sid SID
	demo_tally
	expect "Redis sessions: requests answered 200 after $home stopped" "$(count_status 200)" "$((2 * INSTANCES))"
	expect_that "no request reached the stopped $home" not_seen "$home"
	demo_cluster_down "$V_REDIS"

	demo_cluster "$V_JWT"
	demo_login carol
	TOKEN=$(json_field access_token)
	home=$REQ_SERVER
	say "\$ scripts/cluster.sh stop-server $home --dir \$RUNDIR    (the server that signed the token)"
	"$CLUSTER" stop-server "$home" --dir "$RUNDIR" || demo_fail "could not stop $home"
	demo_profiles "$((2 * INSTANCES))" --bearer TOKEN
	demo_tally
	expect "JWT: requests answered 200 after $home stopped" "$(count_status 200)" "$((2 * INSTANCES))"
	expect_that "no request reached the stopped $home" not_seen "$home"
	demo_cluster_down "$V_JWT"
	demo_cluster_down "$V_STICKY"
	conclude "the Redis and JWT clusters shrugged: the remaining servers answered everything."
	SUMMARY+=("   same stop:       Redis sessions and JWT kept working on the remaining servers")
}

lesson_logout() {
	local n=$INSTANCES exp left
	demo_title 6 "logging out"
	say "Redis sessions: logout deletes the session in Redis, so it is gone on every server at once." \
		"We keep a copy of the old cookie, as a thief who had stolen it would."
	demo_cluster "$V_REDIS"
	demo_login alice
	SID=$(set_cookie sid)
	demo_req GET /profile --sid SID
	expect "profile before logout" "$REQ_STATUS" 200
	demo_req POST /logout --sid SID
	expect_logout
	demo_profiles "$n" --sid SID
	expect "old cookie after logout: requests answered 401" "$(count_status 401)" "$n"
	expect "servers that refused the old cookie" "$(distinct_servers)" "$INSTANCES"
	conclude "after logout the old cookie is refused by all $INSTANCES servers."

	say "" "JWT without a deny-list: logout can only ask the browser to forget the token."
	demo_cluster "$V_JWT"
	demo_login alice
	TOKEN=$(json_field access_token)
	demo_req POST /logout --bearer TOKEN
	expect_logout
	[ -z "$(json_field message)" ] || say "logout says: $(json_field message)"
	demo_profiles "$n" --bearer TOKEN
	expect "the same token after logout: requests answered 200" "$(count_status 200)" "$n"
	exp=$(jwt_claim "$TOKEN" exp)
	left=$(( (exp - $(date +%s)) / 60 ))
	conclude "the token still works on every server after logout, until it expires" \
		"at $(date -d "@$exp" +%H:%M:%S) (in about $left min). Keep JWT lifetimes short."
	SUMMARY+=("6 logout:           Redis session gone everywhere; JWT valid until exp ($left min)")

	say "" "JWT with a deny-list: logout writes the token's id (jti) to Redis until it would expire," \
		"and every server checks that list on every request."
	demo_cluster "$V_REVOKE"
	demo_login alice
	TOKEN=$(json_field access_token)
	demo_req GET /profile --bearer TOKEN
	expect "profile before logout" "$REQ_STATUS" 200
	demo_req POST /logout --bearer TOKEN
	expect_logout
	demo_profiles "$n" --bearer TOKEN
	expect "revoked token: requests answered 401" "$(count_status 401)" "$n"
	expect "servers that refused the revoked token" "$(distinct_servers)" "$INSTANCES"
	conclude "with the deny-list the token is refused everywhere at once," \
		"but every request asks Redis again: the shared state is back, for logout's sake."
	SUMMARY+=("   with deny-list:  the revoked token got 401 on every server (a Redis lookup per request)")
}

# ---- main -----------------------------------------------------------------------------------

for b in curl "$PYTHON"; do
	command -v "$b" >/dev/null || lib_die "$b is needed (scripts/deps.sh test)"
done
[ -x "$AUTH_BIN/authctl" ] || lib_die "no $AUTH_BIN/authctl: build first (make) or set AUTH_BIN"

printf '%sSessions or JWT behind a round-robin load balancer%s\n' "$C_BOLD" "$C_OFF"
say "Each cluster: $INSTANCES servers (app1..app$INSTANCES) behind $BALANCER over HTTPS; each request" \
	"goes to the next server in turn. Demo users: alice (admin), bob, carol; password <name>-password," \
	"hashed with scrypt at cost 2^14 so logins are quick in class (production: 2^17)."
LESSONS=(lesson_memory lesson_redis lesson_jwt lesson_tamper lesson_sticky lesson_logout)
for k in 1 2 3 4 5 6; do
	[ -z "$ONLY" ] || [ "$ONLY" = "$k" ] || continue
	"${LESSONS[$((k - 1))]}"
	[ "$k" = 6 ] || [ -n "$ONLY" ] || pause
done

printf '\n%sWhat we saw%s\n' "$C_BOLD" "$C_OFF"
say "${SUMMARY[@]}"
printf '%sAll %s checks passed in %s s: every lesson happened as told.%s\n' "$C_GREEN" "$CHECKS" "$SECONDS" "$C_OFF"

if [ "$SERVE" = 1 ]; then
	printf '\n%sServing%s (Ctrl-C stops everything):\n' "$C_BOLD" "$C_OFF"
	mkdir -p "$DEMO_DIR"
	: >"$DEMO_DIR/serve.env"
	for v in "$V_MEMORY" "$V_STICKY" "$V_REDIS" "$V_JWT"; do
		demo_cluster "$v" >/dev/null
		printf '%s=%s\n' "$(echo "$v" | tr 'a-z-' 'A-Z_')_DIR" "$DEMO_DIR/$v" >>"$DEMO_DIR/serve.env"
		say "$v: $BALANCER_URL   (curl --cacert $CA $BALANCER_URL/healthz)"
	done
	# The teaching page (issue 8) hooks in here: it gets the clusters' run directories.
	if [ -x "$LIB_ROOT/scripts/web.sh" ]; then
		"$LIB_ROOT/scripts/web.sh" serve --clusters "$DEMO_DIR/serve.env" --dir "$DEMO_DIR/web" &
		WEB_PID=$!
	fi
	say "clusters listed in $DEMO_DIR/serve.env"
	# wait (unlike a foreground sleep) returns at once when a trapped signal arrives.
	while :; do
		sleep 3600 >/dev/null 2>&1 &
		SLEEP_PID=$!
		wait "$SLEEP_PID" || true
	done
fi
