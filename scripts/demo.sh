#!/usr/bin/env bash
# The classroom demo (`make demo`): short lessons on why cookie sessions break behind a
# round-robin balancer unless they are shared (Redis), and why signed JWTs do not, with the price
# JWTs pay at logout. Every request is shown as a curl line that works when pasted into another
# terminal (after `. $DEMO_DIR/env`), with the server that answered and the status; every lesson
# checks its own claims and the demo stops with a non-zero exit and a clear message the moment
# reality differs from the story. Output fits the terminal's width (COLUMNS, 80 when unknown).
# Run with --help for usage.
# shellcheck disable=SC2015,SC2034 source-path=SCRIPTDIR
set -euo pipefail
LIB_PROG=demo.sh # read by lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<'EOF'
usage: scripts/demo.sh [--step | --step-requests] [--show-http] [--lesson K]
                       [--instances N] [--balancer ours|haproxy|nginx] [--serve]

  --step           wait for Enter before each part of a lesson (for teaching)
  --step-requests  wait for Enter after every request too
  --show-http      show the headers that matter under each request (Cookie,
                   Authorization, Set-Cookie, WWW-Authenticate, X-Served-By)
  --lesson K       run lesson K only (1-7)
  --instances N    servers per cluster (2-8, default 3)
  --balancer B     our balancer (default), HAProxy or nginx in front of the
                   same servers
  --serve          at the end, keep the clusters up for the web page and wait
                   for Ctrl-C

Lessons: 1 memory sessions, 2 Redis sessions, 3 JWT, 4 tampering and who can
sign, 5 sticky sessions and a server stop, 6 logout, 7 refresh tokens and
logging out everywhere (when scripts/cluster.sh has the jwt-refresh variant).

Every curl line works in another terminal after `. $DEMO_DIR/env` (URL, CA,
SID, TOKEN, ... of the request just shown). The clusters' certificates come from
one local CA kept in $DEMO_CA_DIR (default ~/.cache/auth-demo/ca): trust its
ca.pem once. Clusters run under $DEMO_DIR (default <repo>/run/demo); programs
come from $AUTH_BIN (default <repo>/bin). Colours only on a terminal (NO_COLOR
disables them).
EOF
}

STEP=0 SHOW_HTTP=0 ONLY='' INSTANCES=3 BALANCER=ours SERVE=0
while [ $# -gt 0 ]; do
	case $1 in
	--step) STEP=1; shift ;;
	--step-requests) STEP=2; shift ;;
	--show-http) SHOW_HTTP=1; shift ;;
	--lesson) lib_optarg ONLY "$@"; shift 2 ;;
	--instances) lib_optarg INSTANCES "$@"; shift 2 ;;
	--balancer) lib_optarg BALANCER "$@"; shift 2 ;;
	--serve) SERVE=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "demo.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
done
# Lesson 7 needs refresh tokens (the jwt-refresh cluster variant).
LAST=6
"$LIB_ROOT/scripts/cluster.sh" --help 2>/dev/null | grep -q 'jwt-refresh' && LAST=7
case $ONLY in '' | [1-$LAST]) ;; *) echo "demo.sh: --lesson takes a number from 1 to $LAST" >&2; exit 2 ;; esac
case $INSTANCES in [2-8]) ;; *) echo "demo.sh: --instances takes a number from 2 to 8 (the story needs two servers)" >&2; exit 2 ;; esac
case $BALANCER in ours | haproxy | nginx) ;; *) echo "demo.sh: --balancer is ours, haproxy or nginx" >&2; exit 2 ;; esac

DEMO_DIR=${DEMO_DIR:-$LIB_ROOT/run/demo}
# One CA for every cluster and every run (scripts/mkcert.sh keeps it there).
export MKCERT_CA_DIR=${DEMO_CA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/auth-demo/ca}
ENVFILE=$DEMO_DIR/env
CLUSTER=$LIB_ROOT/scripts/cluster.sh
# The variant behind each role. Tests swap one (e.g. DEMO_VARIANT_MEMORY=session-redis) to prove
# that a lesson's self-check catches a cluster that does not behave as the lesson says.
V_MEMORY=${DEMO_VARIANT_MEMORY:-session-memory}
V_REDIS=${DEMO_VARIANT_REDIS:-session-redis}
V_JWT=${DEMO_VARIANT_JWT:-jwt-hs256}
V_ES256=${DEMO_VARIANT_ES256:-jwt-es256}
V_STICKY=${DEMO_VARIANT_STICKY:-session-sticky}
V_REVOKE=${DEMO_VARIANT_REVOKE:-jwt-hs256-revoke}
V_REFRESH=${DEMO_VARIANT_REFRESH:-jwt-refresh}

# The width everything is fitted to: COLUMNS, the terminal's, or 80.
WIDTH=${COLUMNS:-}
case $WIDTH in '' | *[!0-9]*) WIDTH=80; [ -t 1 ] && WIDTH=$(tput cols 2>/dev/null || echo 80) ;; esac
[ "$WIDTH" -ge 60 ] || WIDTH=60
[ "$WIDTH" -le 160 ] || WIDTH=160

lib_colours
SERVER_COLOURS=("$C_CYAN" "$C_MAGENTA" "$C_YELLOW" "$C_BLUE" "$C_GREEN" "$C_CYAN" "$C_MAGENTA" "$C_YELLOW")
LESSON=0 LESSON_TITLE='' CHECKS=0 SUMMARY=() UP=()
declare -A PRESTART=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/demo.XXXXXX")
WEB_PID='' SLEEP_PID='' VERIFY_PID='' LAST_ALONE='' REQ_SAME=0 ENV_TEXT=''
# What the pasted curl lines refer to; written to $ENVFILE before every request.
URL='' CA='' RUNDIR='' KEY='' REDISCLI_AUTH='' SID='' TOKEN='' FORGED='' NOSIG='' MINTED='' ALIEN='' JAR=''
RT='' OLD_RT='' PHONE='' PHONE_SID=''
PASTE_VARS="URL CA RUNDIR SID TOKEN FORGED NOSIG MINTED ALIEN JAR RT OLD_RT PHONE PHONE_SID REDIS_URL KEY
REDISCLI_AUTH"

demo_cleanup() {
	local d v
	[ -z "$WEB_PID" ] || lib_stop 10 "$WEB_PID:web.sh"
	[ -z "$SLEEP_PID" ] || kill "$SLEEP_PID" 2>/dev/null || true
	[ -z "$VERIFY_PID" ] || lib_stop 10 "$VERIFY_PID:jwt_server"
	# A cluster still starting in the background stops itself (and what it started) on TERM.
	for v in "${!PRESTART[@]}"; do
		kill -TERM "${PRESTART[$v]}" 2>/dev/null || true
		wait "${PRESTART[$v]}" 2>/dev/null || true
	done
	for d in "${UP[@]}"; do
		"$CLUSTER" down --dir "$d" >/dev/null 2>&1 || true
	done
	rm -rf "$TMP"
}
trap demo_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- output ---------------------------------------------------------------------------------

# say LINE...: each LINE indented, as it is (callers keep them short).
say() { printf '  %s\n' "$@"; }

# para TEXT...: one paragraph of prose, wrapped to the width.
para() {
	printf '%s\n' "$*" | fold -s -w $((WIDTH - 2)) | sed 's/ *$//; s/^/  /'
}

# hang PREFIX TEXT...: PREFIX then TEXT wrapped to the width, later lines indented under it.
hang() {
	local prefix=$1 ind
	shift
	ind=$(printf '%*s' "${#prefix}" '')
	printf '%s\n' "$*" | fold -s -w $((WIDTH - 2 - ${#prefix})) | sed 's/ *$//' |
		sed "1s/^/  $prefix/; 2,\$s/^/  $ind/"
}

# elide VALUE [MAX]: VALUE, or its start and end around "..." when longer than MAX.
elide() {
	local v=$1 max=${2:-$((WIDTH - 24))} k
	[ "${#v}" -gt "$max" ] || { printf '%s' "$v"; return; }
	k=$(((max - 3) / 2))
	printf '%s...%s' "${v:0:$k}" "${v: -$k}"
}

# show_var NAME NOTE: NAME=value (elided), and what it is.
show_var() {
	local v=${!1}
	say "$1=$(elide "$v" $((WIDTH - 4 - ${#1})))"
	[ -z "${2:-}" ] || para "($2)"
}

demo_title() {
	LESSON=$1 LESSON_TITLE=$2
	printf '\n%s== Lesson %s: %s ==%s\n' "$C_BOLD" "$1" "$2" "$C_OFF"
}

# part TITLE: a part of a lesson; --step waits for Enter before it.
part() {
	pause "next: $1"
	printf '%s-- %s%s\n' "$C_BOLD" "$1" "$C_OFF"
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
	printf '%s' "$C_BOLD"
	printf '%s\n' "=> $1" | fold -s -w $((WIDTH - 2)) | sed 's/ *$//; s/^/  /; 2,$s/^/   /'
	printf '%s' "$C_OFF"
	shift
	[ $# -eq 0 ] || para "$@"
}

pause() {
	[ "$STEP" -ge 1 ] || return 0
	printf '%s  [Enter: %s]%s ' "$C_DIM" "$1" "$C_OFF"
	read -r _ || true
	# A terminal echoes the Enter; anything else gets its line ended here.
	[ -t 0 ] || echo
}

# picture LINE...: a plain-text drawing of who holds what, indented.
picture() { printf '    %s\n' "$@"; }

# The servers as picture lines: "app1  <what app1 holds>"; HOLD is a function NAME -> text.
picture_cluster() {
	local hold=$1 head=$2 i last
	picture "client ($head)" "  |" "balancer ($([ "${STICKY:-0}" = 1 ] && echo 'sticky: cookie lb' || echo 'round robin'))"
	for i in $(seq 1 "$INSTANCES"); do
		[ "$i" = "$INSTANCES" ] && last='`--' || last='|--'
		picture "  $last app$i  $("$hold" "app$i")"
	done
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

cluster_up_args() {
	printf '%s\n' "$1" --instances "$INSTANCES" --balancer "$BALANCER" --dir "$DEMO_DIR/$1" --quiet
}

# Starts the clusters of the given variants in the background (while a lesson is on screen), so
# that the next lesson does not begin with seconds of waiting. demo_cluster collects them.
demo_prestart() {
	local v d args
	for v in "$@"; do
		d=$DEMO_DIR/$v
		[[ " ${UP[*]} " != *" $d "* ]] || continue
		UP+=("$d")
		mapfile -t args < <(cluster_up_args "$v")
		"$CLUSTER" up "${args[@]}" >"$TMP/up-$v.log" 2>&1 </dev/null &
		PRESTART[$v]=$!
	done
}

# Brings up the cluster of VARIANT (or reuses the one this demo already started) and loads its
# cluster.env: BALANCER_URL, RUNDIR, SERVERS, ...
demo_cluster() {
	local v=$1 d=$DEMO_DIR/$1 err args
	if [ -n "${PRESTART[$v]:-}" ]; then
		if ! wait "${PRESTART[$v]}"; then
			unset "PRESTART[$v]"
			RUNDIR=$d
			demo_fail "could not start the $v cluster:" "$(cat "$TMP/up-$v.log")"
		fi
		unset "PRESTART[$v]"
	elif [[ " ${UP[*]} " != *" $d "* ]]; then
		printf '%s  (starting %s: %s servers behind %s ...)%s\n' "$C_DIM" "$v" "$INSTANCES" "$BALANCER" "$C_OFF"
		# Listed before it starts: an interrupt during `up` must still take it down.
		UP+=("$d")
		mapfile -t args < <(cluster_up_args "$v")
		if ! err=$("$CLUSTER" up "${args[@]}" 2>&1); then
			RUNDIR=$d
			demo_fail "could not start the $v cluster:" "$err"
		fi
	fi
	# shellcheck disable=SC1090,SC1091 # written by cluster.sh; sets STICKY, SERVERS, ...
	. "$d/cluster.env"
	URL=$BALANCER_URL CA=$MKCERT_CA_DIR/ca.pem
	cmp -s "$CA" "$d/tls/ca.pem" || CA=$d/tls/ca.pem
	printf '%s  %s: URL=%s  %s%s\n' "$C_DIM" "$v" "$URL" \
		"$([ "${STICKY:-0}" = 1 ] && echo sticky || echo 'round robin')" "$C_OFF"
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

# redis_cli SHOWN ARGS...: a command to the current cluster's Redis (with the password from its run
# directory when it has one), printed as "redis-cli -u $REDIS_URL SHOWN" (pastable after sourcing
# the env file), and its answer indented and elided. Sets REDIS_OUT.
redis_cli() {
	local shown=$1 f
	shift
	REDISCLI_AUTH=''
	for f in "$RUNDIR/redis/password" "$RUNDIR/redis.password" "$RUNDIR/redis/pass"; do
		[ -r "$f" ] && REDISCLI_AUTH=$(cat "$f") && break
	done
	env_write
	say "\$ redis-cli -u \$REDIS_URL $shown"
	REDIS_OUT=$(env ${REDISCLI_AUTH:+REDISCLI_AUTH="$REDISCLI_AUTH"} redis-cli -u "$REDIS_URL" \
		--no-auth-warning "$@" 2>&1) || true
	printf '%s\n' "$REDIS_OUT" | while IFS= read -r f; do say "  $(elide "$f" $((WIDTH - 6)))"; done
}

# ---- requests -------------------------------------------------------------------------------

env_write() {
	local v text
	printf -v text '%s\n' "# Written by scripts/demo.sh before each request: '. $ENVFILE' in another" \
		"# terminal, then paste the curl line just shown."
	for v in $PASTE_VARS; do
		[ -z "${!v}" ] || printf -v text '%s%s=%q\n' "$text" "$v" "${!v}"
	done
	[ "$text" != "$ENV_TEXT" ] || return 0
	if [ -z "$ENV_TEXT" ]; then
		mkdir -p "$DEMO_DIR"
		# 0600: it may hold the Redis password.
		(umask 077 && : >"$ENVFILE")
	fi
	printf '%s' "$text" >"$ENVFILE"
	ENV_TEXT=$text
}

# show_request PLAIN COLOURED: the curl line of the words in CMD_WORDS with the result (PLAIN,
# printed COLOURED) on one line when that fits the width; otherwise the command alone (wrapped with
# " \" between words when still too wide: it pastes the same) and the result on the next line.
# With REQ_SAME=1 a command shown alone just before is not shown again: one command, N results.
show_request() {
	local plain=$1 coloured=$2 cmd="${CMD_WORDS[*]}" cur='' w pad
	if [ $((2 + ${#cmd} + 1 + ${#plain})) -le "$WIDTH" ]; then
		# Results line up in one column when they can.
		pad=$((WIDTH - 36))
		[ "$pad" -le 52 ] || pad=52
		[ "$pad" -le $((WIDTH - 3 - ${#plain})) ] || pad=$((WIDTH - 3 - ${#plain}))
		[ "$pad" -ge "${#cmd}" ] || pad=${#cmd}
		printf "  %-${pad}s %s\n" "$cmd" "$coloured"
		LAST_ALONE=''
		return
	fi
	if [ "${REQ_SAME:-0}" != 1 ] || [ "$LAST_ALONE" != "$cmd" ]; then
		for w in "${CMD_WORDS[@]}"; do
			if [ -n "$cur" ] && [ $((2 + ${#cur} + 1 + ${#w} + 2)) -gt "$WIDTH" ]; then
				printf '  %s \\\n' "$cur"
				cur="    $w"
			else
				cur+="${cur:+ }$w"
			fi
		done
		printf '  %s\n' "$cur"
		LAST_ALONE=$cmd
	fi
	printf '    %s\n' "$coloured"
}

# demo_req METHOD PATH [--login USER] [--sid VAR] [--bearer VAR] [--jar] [--refresh VAR]
# Sends one request through the balancer by running the curl line it prints (tokens and session
# ids as shell variables from $ENVFILE, so the line stays short and can be pasted), then prints
# who answered and how. Sets REQ_STATUS, REQ_SERVER, REQ_BODY, REQ_ERROR.
demo_req() {
	local method=$1 path=$2 shown pw extra plain capture role
	shift 2
	CMD_WORDS=(curl --cacert '$CA')
	# A body (-d) already makes it a POST.
	[ "$method" = GET ] || [[ " $* " == *" --login "* || " $* " == *" --refresh "* ]] || CMD_WORDS+=(-X "$method")
	while [ $# -gt 0 ]; do
		case $1 in
		--login) pw=$(demo_password "$2")
			CMD_WORDS+=(-d "username=$2" -d "password=$pw"); shift 2 ;;
		--sid) CMD_WORDS+=(-b "sid=\$$2"); shift 2 ;;
		--bearer) CMD_WORDS+=(-H "\"Authorization: Bearer \$$2\""); shift 2 ;;
		--jar) CMD_WORDS+=(-b '$JAR' -c '$JAR'); shift ;;
		--refresh) CMD_WORDS+=(-d "refresh_token=\$$2"); shift 2 ;;
		esac
	done
	CMD_WORDS+=("\$URL$path")
	shown="${CMD_WORDS[*]}"
	env_write
	: >"$TMP/headers"
	rm -f "$TMP/body" "$TMP/trace"
	capture="-s --max-time 10 -D '$TMP/headers' -o '$TMP/body' -w '%{http_code}'"
	[ "$SHOW_HTTP" = 0 ] || capture+=" -v --stderr '$TMP/trace'"
	# Exactly the printed line runs, with the variables a pasting user would have.
	REQ_STATUS=$(bash -c '. "$1" && eval "$2"' demo_req "$ENVFILE" "$shown $capture") || REQ_STATUS=000
	header_get REQ_SERVER X-Served-By
	REQ_BODY=''
	[ ! -r "$TMP/body" ] || IFS= read -r -d '' REQ_BODY <"$TMP/body" || true
	json_get REQ_ERROR error
	if [ "${REQ_STATUS:0:1}" = 2 ]; then
		json_get extra username
		[ -z "$extra" ] || extra="user=$extra"
		json_get role role
		[ -z "$role" ] || extra+=" role=$role"
	else
		extra=$REQ_ERROR
	fi
	plain="-> ${REQ_SERVER:-?} $REQ_STATUS${extra:+ $extra}"
	show_request "$plain" "$C_DIM->$C_OFF $(server_colour "$REQ_SERVER")${REQ_SERVER:-?}$C_OFF $(status_colour "$REQ_STATUS")$REQ_STATUS$C_OFF${extra:+ $extra}"
	[ "$SHOW_HTTP" = 0 ] || show_http
	[ "$STEP" -lt 2 ] || pause "next request"
}

# The headers that matter, from curl -v of the last request: > sent, < received.
show_http() {
	local line name
	while IFS= read -r line; do
		line=${line%$'\r'}
		case $line in '> '* | '< '*) ;; *) continue ;; esac
		name=${line:2} name=${name%%:*}
		case ${name,,} in
		get\ * | post\ * | http/* | cookie | authorization | set-cookie | www-authenticate | x-served-by)
			printf '%s      %s%s\n' "$C_DIM" "$(elide "$line" $((WIDTH - 6)))" "$C_OFF" ;;
		esac
	done <"$TMP/trace"
}

# header NAME: the last value of header NAME in the last response (no subprocess: this runs for
# every request).
header() {
	header_get HEADER_VALUE "$1"
	printf '%s' "$HEADER_VALUE"
}

# header_get VAR NAME: the same into variable VAR, without a subshell.
header_get() {
	local line name
	printf -v "$1" '%s' ''
	while IFS= read -r line; do
		line=${line%$'\r'} name=${line%%:*}
		[ "${name,,}" != "${2,,}" ] || { line=${line#*:}; printf -v "$1" '%s' "${line# }"; }
	done <"$TMP/headers"
}

# The value the last response set for cookie NAME.
set_cookie() {
	local line
	while IFS= read -r line; do
		line=${line%$'\r'}
		if [[ ${line,,} == set-cookie:* ]] && [[ $line =~ ^[^:]*:\ *$1=([^;]*) ]]; then
			printf '%s' "${BASH_REMATCH[1]}"
			return
		fi
	done <"$TMP/headers"
}

# demo_login USER [--jar]: logs USER in through the balancer; the login must succeed.
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
	json_get JSON_VALUE "$1"
	printf '%s' "$JSON_VALUE"
}

# json_get VAR FIELD: the same into variable VAR, without a subshell.
json_get() {
	local re="\"$2\"[[:space:]]*:[[:space:]]*\"([^\"]*)\""
	printf -v "$1" '%s' ''
	[[ $REQ_BODY =~ $re ]] && printf -v "$1" '%s' "${BASH_REMATCH[1]}"
	return 0
}

# Sends COUNT GET /profile requests with the given credential options; records who answered
# with what in SEEN_SERVERS / SEEN_STATUS / SEEN_ERRORS (arrays).
demo_profiles() {
	local count=$1 i
	shift
	SEEN_SERVERS=() SEEN_STATUS=() SEEN_ERRORS=()
	for i in $(seq 1 "$count"); do
		REQ_SAME=$((i > 1))
		demo_req GET /profile "$@"
		REQ_SAME=0
		SEEN_SERVERS+=("${REQ_SERVER:-?}")
		SEEN_STATUS+=("$REQ_STATUS")
		SEEN_ERRORS+=("${REQ_ERROR:--}")
	done
}

# Prints "app1 2x200  app2 2x401 ..." for the last demo_profiles.
demo_tally() {
	local out='' s i n st
	for s in $(printf '%s\n' "${SEEN_SERVERS[@]}" | sort -u); do
		for st in $(printf '%s\n' "${SEEN_STATUS[@]}" | sort -u); do
			n=0
			for i in "${!SEEN_SERVERS[@]}"; do
				[ "${SEEN_SERVERS[$i]}" = "$s" ] && [ "${SEEN_STATUS[$i]}" = "$st" ] && n=$((n + 1))
			done
			[ "$n" = 0 ] || out+="${out:+   }$(server_colour "$s")$s$C_OFF ${n}x$(status_colour "$st")$st$C_OFF"
		done
	done
	printf '  %sTally:%s %s\n' "$C_BOLD" "$C_OFF" "$out"
}

count_status() {
	local st n=0
	for st in "${SEEN_STATUS[@]}"; do [ "$st" = "$1" ] && n=$((n + 1)); done
	echo "$n"
}

count_error() {
	local e n=0
	for e in "${SEEN_ERRORS[@]}"; do [ "$e" = "$1" ] && n=$((n + 1)); done
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

# ---- tokens: authctl, the tool the class uses -----------------------------------------------

# decode_part TOKEN PART: the header or payload of TOKEN as one line of JSON (authctl decodes).
decode_part() {
	"$AUTH_BIN/authctl" token decode "$1" 2>/dev/null | awk -v part="\"$2\": {" '
		index($0, part) == 3 { on = 1; out = "{"; next }
		on && /^  }/ { print out " }"; exit }
		on { sub(/^ +/, ""); out = out " " $0 }'
}

# claim TOKEN NAME: a string or number claim of TOKEN's payload (or header, for alg).
claim() {
	local part=payload
	[ "$2" != alg ] || part=header
	decode_part "$1" "$part" | sed -n "s/.*\"$2\": \"\{0,1\}\([^\",}]*\)\"\{0,1\}[ ,}].*/\1/p" | sed 's/ *$//'
}

# show_decoded VAR: `authctl token decode $VAR`, header and payload on one line each.
show_decoded() {
	say "\$ authctl token decode \$$1    (header and payload)"
	hang "  header  " "$(decode_part "${!1}" header)"
	hang "  payload " "$(decode_part "${!1}" payload)"
}

b64url() { basenc --base64url -w 0 | tr -d '='; }

# Runs `authctl token verify` on the token in variable VAR with the cluster's key, prints the
# verdict line; sets VERIFY_RC and VERIFY_OUT.
demo_verify() {
	# The servers issue and require iss and aud "auth-demo" (authctl's defaults too).
	say "\$ authctl token verify --key \$RUNDIR/${JWT_KEY#"$RUNDIR"/} \$$1"
	VERIFY_RC=0
	VERIFY_OUT=$("$AUTH_BIN/authctl" token verify --key "$JWT_KEY" "${!1}" 2>&1) || VERIFY_RC=$?
	hang "  " "$(head -n 1 <<<"$VERIFY_OUT")"
}

# ---- the lessons ----------------------------------------------------------------------------

# Which client shows which number in lesson 1, in the words the page and the README use too.
CLIENTS_CURL="curl here sends the cookie it was given every time (-b), so every request that reaches the login server succeeds."
CLIENTS_BROWSER="A browser obeys the 401 that deletes the cookie (Set-Cookie: sid=; Max-Age=0): after the first hop even the login server no longer knows it, so none succeed (the teaching page shows it)."
CLIENTS_LOADGEN="loadgen ignores Set-Cookie on 4xx, so it keeps its cookie: 1 request in $INSTANCES succeeds, as with curl."

hold_memory() { [ "$1" = "$HOME_SERVER" ] && echo "memory: alice's session $(elide "$SID" 12)" || echo "memory: (no session)"; }

lesson_memory() {
	local n=$((2 * INSTANCES)) i
	demo_title 1 "sessions kept in each server's memory"
	para "At login, the server that checked the password creates a session in its own memory and" \
		"gives the browser a cookie, sid, that names it. The balancer sends each request to the" \
		"next server in turn, and the other servers have never heard of that session."
	demo_cluster "$V_MEMORY"
	demo_login alice
	SID=$(set_cookie sid)
	expect_that "the login response sets the sid cookie" test -n "$SID"
	HOME_SERVER=$REQ_SERVER
	show_var SID "created and stored by $HOME_SERVER only"
	picture_cluster hold_memory "curl: cookie sid"
	demo_profiles "$n" --sid SID
	demo_tally
	for i in "${!SEEN_SERVERS[@]}"; do
		if [ "${SEEN_SERVERS[$i]}" = "$HOME_SERVER" ]; then
			expect "request $((i + 1)) on $HOME_SERVER, which holds the session" "${SEEN_STATUS[$i]}" 200
		else
			expect "request $((i + 1)) on ${SEEN_SERVERS[$i]}, which never saw the login" "${SEEN_STATUS[$i]}" 401
		fi
	done
	expect "servers that answered" "$(distinct_servers)" "$INSTANCES"
	expect_that "the balancer alternates servers per request (round robin)" is_round_robin
	conclude "$(count_status 401) of $n requests failed with 401: only $HOME_SERVER knows alice's session." \
		"The cookie is fine; the other servers simply have no memory of it."
	para "Which client, which number: $CLIENTS_CURL $CLIENTS_BROWSER $CLIENTS_LOADGEN"
	SUMMARY+=("1 memory sessions: $(count_status 401) of $n got 401 (only $HOME_SERVER knew the session)")
}

hold_redis() { echo "memory: nothing -> asks Redis"; }

# What Redis holds for the one session of this cluster: its key (a hash of the sid: Redis never
# holds the cookie's value), the hash and its TTL. Sets KEY, SESSION_FIELDS, SESSION_TTL.
show_session_in_redis() {
	redis_cli "--scan --pattern 'sess:*'" --scan --pattern 'sess:*'
	KEY=$(head -n 1 <<<"$REDIS_OUT")
	SESSION_FIELDS='' SESSION_TTL=''
	[ -n "$KEY" ] || return 0
	para "(the key is sess: and a hash of the sid, not the sid itself: whoever reads Redis" \
		"cannot replay a cookie)"
	redis_cli 'HGETALL $KEY' HGETALL "$KEY"
	SESSION_FIELDS=$REDIS_OUT
	redis_cli 'TTL $KEY' TTL "$KEY"
	SESSION_TTL=$REDIS_OUT
}

lesson_redis() {
	local n=$((2 * INSTANCES))
	demo_title 2 "sessions in a shared Redis"
	para "Same servers, same cookie, but every server keeps sessions in one shared Redis instead of" \
		"its own memory: whichever server answers looks the session up in the same place."
	demo_cluster "$V_REDIS"
	demo_login alice
	SID=$(set_cookie sid)
	expect_that "the login response sets the sid cookie" test -n "$SID"
	show_var SID "stored in Redis"
	picture_cluster hold_redis "curl: cookie sid"
	picture "  (every app) --> Redis: sess:... = {u: alice, ...}"
	para "What Redis holds now: one hash per session (u: user, c: created, s: last seen, in ms)," \
		"with a time to live in seconds:"
	show_session_in_redis
	expect_that "Redis holds the session hash for alice" grep -qx alice <<<"${SESSION_FIELDS:-}"
	expect_that "the session has a time to live (TTL > 0, got ${SESSION_TTL:-nothing})" \
		eval '[[ $SESSION_TTL =~ ^[0-9]+$ ]] && [ "$SESSION_TTL" -gt 0 ]'
	demo_profiles "$n" --sid SID
	demo_tally
	expect "requests answered 200" "$(count_status 200)" "$n"
	expect "servers that answered" "$(distinct_servers)" "$INSTANCES"
	expect_that "the balancer alternates servers per request (round robin)" is_round_robin
	conclude "all $n requests succeeded on all $INSTANCES servers." \
		"The price: every request now costs a Redis round trip, and Redis must stay up."
	SUMMARY+=("2 Redis sessions:  $n of $n ok on $INSTANCES servers (one shared store)")
}

hold_jwt() { echo "the key (${JWT_KEY##*/}); no sessions"; }

lesson_jwt() {
	local n=$((2 * INSTANCES)) how
	demo_title 3 "JSON Web Tokens"
	para "Instead of a session id, the server that checks the password hands out a signed token:" \
		"the claims (who, role, expiry) plus a signature made with a key that every server has." \
		"Any server can check the signature and read the claims. Nobody stores anything."
	demo_cluster "$V_JWT"
	demo_login alice
	TOKEN=$(json_field access_token)
	expect_that "the login response carries an access_token" test -n "$TOKEN"
	show_var TOKEN "alice's access token; all of it: echo \$TOKEN after sourcing the env file"
	picture_cluster hold_jwt "curl: the token"
	demo_profiles "$n" --bearer TOKEN
	demo_tally
	expect "requests answered 200" "$(count_status 200)" "$n"
	expect "servers that answered" "$(distinct_servers)" "$INSTANCES"
	expect_that "the balancer alternates servers per request (round robin)" is_round_robin
	echo
	para "The token is three base64url parts: header.payload.signature. Decoded:"
	say "\$ authctl token decode \$TOKEN"
	if ! "$AUTH_BIN/authctl" token decode "$TOKEN" >"$TMP/decoded" 2>&1; then
		demo_fail "authctl token decode failed:" "$(cat "$TMP/decoded")"
	fi
	sed '/"signature": {/,/^  }/d' "$TMP/decoded" | sed 's/^/    /' | cut -c1-"$WIDTH"
	expect_that "the decoded token names alice" grep -q '"sub": "alice"' "$TMP/decoded"
	expect "the token's sub claim" "$(claim "$TOKEN" sub)" alice
	para "Decoding checks nothing. Checking needs the key that every server of this cluster has:"
	demo_verify TOKEN
	expect_that "authctl token verify with the cluster's key accepts the token" test "$VERIFY_RC" = 0
	if [ "$(claim "$TOKEN" alg)" = HS256 ]; then
		how="Each one recomputed the HMAC-SHA256 of header.payload with the shared secret:"
	else
		how="Each one checked the $(claim "$TOKEN" alg) signature with the public key (only the private key signs):"
	fi
	conclude "all $n requests succeeded, and no server remembered anything." "$how" \
		"it matched, so the claims are genuine and unchanged. Note: anyone can read the payload."
	SUMMARY+=("3 JWT:             $n of $n ok on $INSTANCES servers (nothing stored)")
}

# send_everywhere VAR WHAT: the token in VAR to every server (INSTANCES requests, round robin);
# each must answer 401.
refused_everywhere() {
	demo_profiles "$INSTANCES" --bearer "$1"
	expect "$2: requests answered 401" "$(count_status 401)" "$INSTANCES"
	expect "$2: servers that refused it" "$(distinct_servers)" "$INSTANCES"
}

lesson_tamper() {
	local www
	demo_title 4 "tampering with a token, and who can sign one"
	para "The payload is only encoded, not encrypted: bob can decode his token, change his role to" \
		"admin, encode it again and send it back with the original signature."
	demo_cluster "$V_JWT"
	demo_login bob
	TOKEN=$(json_field access_token)
	expect_that "the login response carries an access_token" test -n "$TOKEN"
	show_var TOKEN "now bob's access token, from this login"
	demo_req GET /profile --bearer TOKEN
	expect "bob's own token" "$REQ_STATUS" 200
	expect "bob's role in the genuine token" "$(claim "$TOKEN" role)" user
	IFS=. read -r T_H T_P T_S <<<"$TOKEN"
	FORGED=$T_H.$(decode_part "$TOKEN" payload | sed 's/"role": "user"/"role": "admin"/' | b64url).$T_S
	part "forgery 1: role admin, bob's signature kept"
	show_decoded FORGED
	expect "the forged token's role" "$(claim "$FORGED" role)" admin
	refused_everywhere FORGED "role=admin with the old signature"
	www=$(header WWW-Authenticate)
	expect_that "the 401 says why (WWW-Authenticate: ... error=\"invalid_token\"), got: $www" \
		grep -q 'error="invalid_token"' <<<"$www"
	para "WWW-Authenticate: $www"
	demo_verify FORGED
	expect_that "authctl token verify rejects the forged token for its signature, got: $VERIFY_OUT" \
		grep -q '^invalid: bad_signature' <<<"$VERIFY_OUT"

	part "forgery 2: \"alg\": \"none\", no signature at all"
	NOSIG=$(printf '{"alg":"none","typ":"JWT"}' | b64url).${FORGED#*.}
	NOSIG=${NOSIG%.*}.
	show_decoded NOSIG
	refused_everywhere NOSIG "alg=none"
	conclude "every server refused both forgeries with 401." \
		"The signature covers header and payload: change one byte and it no longer matches, and" \
		"only the servers hold the key to make a new one. The algorithm comes from the server's key," \
		"never from the token, so \"none\" gets nowhere."
	SUMMARY+=("4 tampering:       role=admin and alg=none refused by all $INSTANCES servers")
	lesson_who_signs
}

# HS256: every verifier holds the secret, so every verifier can mint. ES256: a server with only
# the public key verifies and cannot sign.
lesson_who_signs() {
	local pub port
	part "who can sign: HS256 versus ES256"
	para "With HS256 the key that checks a signature is the key that makes one: every server (and" \
		"whoever reads its key file) can mint a token for any user."
	if "$AUTH_BIN/authctl" token sign --help >/dev/null 2>&1; then
		say "\$ MINTED=\$(authctl token sign --key \$RUNDIR/${JWT_KEY#"$RUNDIR"/} \\" \
			"      --sub alice --role admin)"
		MINTED=$("$AUTH_BIN/authctl" token sign --key "$JWT_KEY" --sub alice --role admin 2>"$TMP/sign.err") ||
			demo_fail "authctl token sign failed:" "$(cat "$TMP/sign.err")"
		show_decoded MINTED
		demo_profiles "$INSTANCES" --bearer MINTED
		expect "the token minted offline with the secret: requests answered 200" "$(count_status 200)" "$INSTANCES"
		expect "servers that accepted the minted token" "$(distinct_servers)" "$INSTANCES"
		conclude "a token minted offline with the cluster's secret is accepted by every server."
		SUMMARY+=("   who signs:      a token minted with the HS256 secret works everywhere")
	else
		para "(This build's authctl has no 'token sign' yet: the minting step is skipped.)"
	fi

	para "With ES256 the servers sign with a private key and verify with the public key. A server" \
		"given only the public key (jwt_server --verify-key) checks tokens but cannot make one."
	demo_cluster "$V_ES256"
	# authctl keygen wrote the public key beside the private one.
	pub=$JWT_KEY.pub
	[ -r "$pub" ] || openssl pkey -in "$JWT_KEY" -pubout -out "$pub" 2>/dev/null ||
		demo_fail "cannot derive the public key of $JWT_KEY"
	port=$(lib_free_ports 1)
	"$AUTH_BIN/jwt_server" --listen "127.0.0.1:$port" --id verifier --users "$RUNDIR/users.json" \
		--verify-key "$pub" --quiet >"$RUNDIR/logs/verifier.log" 2>&1 </dev/null &
	VERIFY_PID=$!
	lib_wait_port "$port" "$VERIFY_PID" jwt_server 10 || demo_fail "the verify-only jwt_server did not start:" \
		"$(cat "$RUNDIR/logs/verifier.log")"
	picture "client --> balancer --> app1..app$INSTANCES  (private key: sign and verify)" \
		"client -----------------> verifier  (public key only: verify)"
	demo_login alice
	TOKEN=$(json_field access_token)
	show_var TOKEN "alice's ES256 token, signed by $REQ_SERVER"
	local url=$URL
	URL=http://127.0.0.1:$port
	say "URL=$URL    (the verifier, directly)"
	demo_req POST /login --login alice
	expect "login at the verify-only server" "$REQ_STATUS $REQ_ERROR" "503 cannot_issue"
	demo_req GET /profile --bearer TOKEN
	expect "the cluster's ES256 token at the verify-only server" "$REQ_STATUS" 200
	para "ALIEN: alice, admin, signed with an ES256 key the attacker made (not the cluster's):"
	say "\$ authctl keygen es256 --out mine.pem"
	say "\$ ALIEN=\$(authctl token sign --key mine.pem --sub alice --role admin)"
	ALIEN=$("$AUTH_BIN/authctl" keygen es256 --out "$TMP/mine.pem" >/dev/null 2>&1 &&
		"$AUTH_BIN/authctl" token sign --key "$TMP/mine.pem" --sub alice --role admin 2>&1) ||
		demo_fail "could not sign a token with a new key:" "$ALIEN"
	demo_req GET /profile --bearer ALIEN
	expect "a token signed with another key at the verify-only server" "$REQ_STATUS" 401
	URL=$url
	lib_stop 10 "$VERIFY_PID:jwt_server"
	VERIFY_PID=''
	conclude "the verify-only server would not issue and refused a foreign signature." \
		"It accepted the cluster's own tokens: with ES256, the power to verify is not the power to sign."
	SUMMARY+=("   ES256:          a verify-only server cannot issue; a foreign key is refused")
}

lesson_sticky() {
	local home n=$INSTANCES cookies after inv nauth
	demo_title 5 "sticky sessions, and a server that dies"
	para "A common fix for memory sessions: the balancer pins each browser to one server."
	if [ "$BALANCER" = nginx ]; then
		para "nginx has no sticky cookie (only NGINX Plus does); the closest is ip_hash, which pins a" \
			"client address. Here every client is 127.0.0.1, so everyone lands on one server."
	fi
	demo_cluster "$V_STICKY"
	JAR=$DEMO_DIR/carol.jar
	rm -f "$JAR"
	demo_login carol --jar
	home=$REQ_SERVER
	cookies=$(awk '!/^#/ || /^#HttpOnly_/ {print $6}' "$JAR" | grep -v '^$' | tr '\n' ' ' || true)
	if [ "$BALANCER" = nginx ]; then
		para "cookies in the jar: $cookies(nginx pins by client address, not by cookie)"
	else
		para "cookies in the jar: $cookies(sid is the session; the other is the balancer's, naming $home)"
	fi
	demo_profiles "$n" --jar
	expect "requests answered 200 while $home lives" "$(count_status 200)" "$n"
	expect "servers that answered (pinned to $home)" "$(printf '%s\n' "${SEEN_SERVERS[@]}" | sort -u | tr -d '\n')" "$home"
	part "$home stops (a crash, a deploy, an autoscaler)"
	say "\$ scripts/cluster.sh stop-server $home --dir \$RUNDIR"
	"$CLUSTER" stop-server "$home" --dir "$RUNDIR" || demo_fail "could not stop $home"
	demo_profiles "$n" --jar
	demo_tally
	expect_that "no request reached the stopped $home" not_seen "$home"
	expect "requests answered 401 after the stop (the session died with $home)" "$(count_status 401)" "$n"
	if [ "$BALANCER" != nginx ]; then
		after=$(printf '%s\n' "${SEEN_SERVERS[@]}" | sort -u | wc -l)
		expect "servers the balancer re-pinned carol to" "$after" 1
	fi
	inv=$(count_error invalid_session) nauth=$(count_error not_authenticated)
	expect "401s that are invalid_session or not_authenticated" $((inv + nauth)) "$n"
	expect_that "the first 401 is invalid_session (carol's cookie is unknown there)" \
		test "${SEEN_ERRORS[0]}" = invalid_session
	para "Why $inv x invalid_session, then $nauth x not_authenticated: the new server does not know" \
		"carol's sid (invalid_session) and its 401 deletes the dead cookie (Set-Cookie: sid=;" \
		"Max-Age=0)."
	if [ "$inv" -gt 1 ]; then
		para "That first answer also re-pins carol with a new lb cookie, and this curl keeps sid" \
			"when one answer both deletes one cookie and sets another (a curl cookie-jar quirk;" \
			"a browser drops it), so sid is sent again: invalid_session again. The next 401 only" \
			"deletes sid, so later requests carry no session at all: not_authenticated."
	else
		para "From then on the jar holds no sid, so the requests carry no session at all:" \
			"not_authenticated."
	fi
	conclude "stickiness worked until $home died; then carol was moved and her session was gone." \
		"She must log in again: every user of $home just lost their session."
	SUMMARY+=("5 sticky sessions: fine while $home lived; after its stop $n of $n got 401")

	part "the same stop on the Redis and JWT clusters"
	demo_cluster "$V_REDIS"
	demo_login carol
	SID=$(set_cookie sid)
	home=$REQ_SERVER
	say "\$ scripts/cluster.sh stop-server $home --dir \$RUNDIR"
	para "($home: the server carol logged in on)"
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
	say "\$ scripts/cluster.sh stop-server $home --dir \$RUNDIR"
	para "($home: the server that signed carol's token)"
	"$CLUSTER" stop-server "$home" --dir "$RUNDIR" || demo_fail "could not stop $home"
	demo_profiles "$((2 * INSTANCES))" --bearer TOKEN
	demo_tally
	expect "JWT: requests answered 200 after $home stopped" "$(count_status 200)" "$((2 * INSTANCES))"
	expect_that "no request reached the stopped $home" not_seen "$home"
	demo_cluster_down "$V_JWT"
	demo_cluster_down "$V_STICKY"
	# Lesson 6 needs them whole again: they start while this conclusion is read.
	[ -n "$ONLY" ] || demo_prestart "$V_REDIS" "$V_JWT"
	conclude "the Redis and JWT clusters shrugged: the remaining servers answered everything."
	SUMMARY+=("   same stop:      Redis sessions and JWT kept working on the others")
}

lesson_logout() {
	local n=$INSTANCES exp left jti
	demo_title 6 "logging out"
	part "Redis sessions"
	para "Logout deletes the session in Redis, so it is gone on every server at once. We keep a" \
		"copy of the old cookie, as a thief who had stolen it would."
	demo_cluster "$V_REDIS"
	demo_login alice
	SID=$(set_cookie sid)
	demo_req GET /profile --sid SID
	expect "profile before logout" "$REQ_STATUS" 200
	show_session_in_redis
	expect_that "Redis holds alice's session before logout" grep -qx alice <<<"${SESSION_FIELDS:-}"
	demo_req POST /logout --sid SID
	expect_logout
	redis_cli 'EXISTS $KEY' EXISTS "$KEY"
	expect "the session key in Redis after logout (EXISTS)" "$REDIS_OUT" 0
	demo_profiles "$n" --sid SID
	expect "old cookie after logout: requests answered 401" "$(count_status 401)" "$n"
	expect "servers that refused the old cookie" "$(distinct_servers)" "$INSTANCES"
	conclude "after logout the old cookie is refused by all $INSTANCES servers."

	part "JWT without a deny-list"
	para "Logout can only ask the browser to forget the token. A thief who copied it keeps it:" \
		"we keep the old token and replay it on every server."
	demo_cluster "$V_JWT"
	demo_login alice
	TOKEN=$(json_field access_token)
	show_var TOKEN "alice's token; the thief's copy is the same string"
	demo_req POST /logout --bearer TOKEN
	expect_logout
	[ -z "$(json_field message)" ] || para "logout says: $(json_field message)"
	demo_profiles "$n" --bearer TOKEN
	expect "the same token after logout: requests answered 200" "$(count_status 200)" "$n"
	expect "servers that accepted the old token after logout" "$(distinct_servers)" "$INSTANCES"
	exp=$(claim "$TOKEN" exp)
	left=$(((exp - $(date +%s)) / 60))
	conclude "the token still works on every server after logout." \
		"It stays valid until it expires at $(date -d "@$exp" +%H:%M:%S) (in about $left min): keep JWT" \
		"lifetimes short."
	SUMMARY+=("6 logout:          Redis session gone everywhere; JWT valid $left more min")

	part "JWT with a deny-list"
	para "Logout writes the token's id (jti) to Redis until it would expire, and every server" \
		"checks that list on every request."
	demo_cluster "$V_REVOKE"
	demo_login alice
	TOKEN=$(json_field access_token)
	demo_req GET /profile --bearer TOKEN
	expect "profile before logout" "$REQ_STATUS" 200
	demo_req POST /logout --bearer TOKEN
	expect_logout
	demo_profiles "$n" --bearer TOKEN
	expect "revoked token: requests answered 401" "$(count_status 401)" "$n"
	expect "revoked token: answers that say token_revoked" "$(count_error token_revoked)" "$n"
	expect "servers that refused the revoked token" "$(distinct_servers)" "$INSTANCES"
	para "What every server asked Redis: is deny:<jti> there? Logout put it there, to live until" \
		"the token would have expired (after that the signature check alone refuses it):"
	jti=$(claim "$TOKEN" jti)
	redis_cli "TTL deny:$jti" TTL "deny:$jti"
	expect_that "the deny-list entry deny:<jti> has a time to live (got $REDIS_OUT)" \
		eval '[[ $REDIS_OUT =~ ^[0-9]+$ ]] && [ "$REDIS_OUT" -gt 0 ]'
	conclude "with the deny-list the token is refused everywhere at once." \
		"But every request asks Redis again: the shared state is back, for logout's sake."
	SUMMARY+=("   with deny-list: the revoked token got 401 everywhere (Redis per request)")
}

# accepted_nowhere VAR WHAT CODE: the access token in VAR on every server: each answers 401 CODE.
accepted_nowhere() {
	demo_profiles "$INSTANCES" --bearer "$1"
	expect "$2: requests answered 401 $3" "$(count_error "$3")" "$INSTANCES"
	expect "$2: servers that refused it" "$(distinct_servers)" "$INSTANCES"
}

lesson_refresh() {
	local n=$INSTANCES ttl
	demo_title 7 "refresh tokens, and logging out everywhere"
	para "How real systems log a JWT out: access tokens that live a minute, and a refresh token" \
		"that buys a new pair and changes at every use. A spent refresh token that comes back" \
		"reveals a theft: the whole login (the family) is revoked."
	part "rotation, and a thief who replays"
	demo_cluster "$V_REFRESH"
	demo_login alice
	TOKEN=$(json_field access_token) RT=$(json_field refresh_token)
	ttl=$(claim "$TOKEN" exp)
	ttl=$((ttl - $(claim "$TOKEN" iat)))
	expect_that "the login answers an access token and a refresh token" test -n "$TOKEN" -a -n "$RT"
	show_var RT "alice's refresh token: 256 random bits; Redis keeps only its SHA-256"
	para "(the access token TOKEN lives $ttl s)"
	demo_profiles "$n" --bearer TOKEN
	expect "the access token: requests answered 200" "$(count_status 200)" "$n"
	expect "servers that accepted it" "$(distinct_servers)" "$INSTANCES"
	OLD_RT=$RT
	para "The thief copies the refresh token (OLD_RT). Alice refreshes: a new pair, the old one" \
		"is spent."
	demo_req POST /refresh --refresh RT
	expect "alice's refresh" "$REQ_STATUS" 200
	TOKEN=$(json_field access_token) RT=$(json_field refresh_token)
	expect_that "the refresh answered a new refresh token" test -n "$RT" -a "$RT" != "$OLD_RT"
	para "The thief replays the copy:"
	demo_req POST /refresh --refresh OLD_RT
	expect "the spent refresh token, replayed" "$REQ_STATUS $REQ_ERROR" "401 refresh_reused"
	para "Nobody can tell the thief from alice, so the whole family died. Alice's next refresh:"
	demo_req POST /refresh --refresh RT
	expect "alice's newest refresh token after the reuse" "$REQ_STATUS $REQ_ERROR" "401 refresh_revoked"
	para "And the family's access token, on every server:"
	accepted_nowhere TOKEN "the family's access token" token_revoked
	conclude "one replay of a spent refresh token killed the login everywhere." \
		"The thief's copy bought nothing; alice logs in again."
	SUMMARY+=("7 refresh tokens:  a replayed refresh token revoked its login everywhere")

	part "log out everywhere: Redis sessions"
	para "Two devices of one user (a laptop and a phone), one call to POST /logout/all."
	demo_cluster "$V_REDIS"
	say "laptop:"
	demo_login alice
	SID=$(set_cookie sid)
	say "phone:"
	demo_login alice
	PHONE_SID=$(set_cookie sid)
	demo_req POST /logout/all --sid SID
	expect "POST /logout/all with the laptop's session" "$REQ_STATUS" 200
	demo_profiles "$n" --sid SID
	expect "the laptop's session after logout/all: requests answered 401" "$(count_status 401)" "$n"
	demo_profiles "$n" --sid PHONE_SID
	expect "the phone's session after logout/all: requests answered 401" "$(count_status 401)" "$n"
	expect "servers that refused the phone's session" "$(distinct_servers)" "$INSTANCES"
	conclude "both sessions are gone on every server: they lived in one place."

	part "log out everywhere: JWT"
	demo_cluster "$V_REFRESH"
	say "laptop:"
	demo_login alice
	TOKEN=$(json_field access_token) RT=$(json_field refresh_token)
	say "phone:"
	demo_login alice
	PHONE=$(json_field access_token)
	demo_req POST /logout/all --bearer TOKEN
	expect "POST /logout/all with the laptop's token" "$REQ_STATUS" 200
	accepted_nowhere TOKEN "the laptop's access token after logout/all" token_revoked
	accepted_nowhere PHONE "the phone's access token after logout/all" token_revoked
	demo_req POST /refresh --refresh RT
	expect "the laptop's refresh token after logout/all" "$REQ_STATUS" 401
	conclude "both devices' tokens are refused on every server." \
		"That works only because every server asks Redis on every request (a per-user" \
		"generation): the shared state is back, as with sessions."
	SUMMARY+=("   log out everywhere: both devices dead on every server, sessions and JWT")

	part "what a stolen credential was still good for"
	say "stolen credential   after logout          after log out everywhere" \
		"session id (Redis)  nothing, at once      nothing, at once (lesson 7)" \
		"JWT, no deny-list   all until exp (15m)   all until exp: no list to ask" \
		"JWT + deny-list     nothing, at once      nothing, at once (lesson 7)" \
		"refresh token       nothing (family dies) nothing (every family dies)"
	para "A refresh token replayed after its use kills its family at once (lesson 7)," \
		"whoever replays it: the thief's copy is worth one refresh at most."
}

# ---- main -----------------------------------------------------------------------------------

for b in curl "$PYTHON" basenc; do
	command -v "$b" >/dev/null || lib_die "$b is needed (scripts/deps.sh test)"
done
[ -x "$AUTH_BIN/authctl" ] || lib_die "no $AUTH_BIN/authctl: build first (make) or set AUTH_BIN"

printf '%sSessions or JWT behind a round-robin load balancer%s\n' "$C_BOLD" "$C_OFF"
para "Each cluster: $INSTANCES servers (app1..app$INSTANCES) behind $BALANCER over HTTPS; each" \
	"request goes to the next server in turn. Demo users: alice (admin), bob, carol; password" \
	"<name>-password, hashed with scrypt at cost 2^14 so logins are quick in class (production:" \
	"2^17)."
para "To paste a curl line into another terminal: . $ENVFILE   first (it sets URL, CA, SID," \
	"TOKEN, ... as they are at that moment). CA is $MKCERT_CA_DIR/ca.pem, kept between runs:" \
	"trust it once."
LESSONS=(lesson_memory lesson_redis lesson_jwt lesson_tamper lesson_sticky lesson_logout lesson_refresh)
# The clusters each lesson starts, so that they can start while the lesson before is on screen.
NEEDS=("$V_MEMORY" "$V_REDIS" "$V_JWT" "$V_ES256" "$V_STICKY" "$V_REVOKE" "$V_REFRESH")
for k in $(seq 1 "$LAST"); do
	[ -z "$ONLY" ] || [ "$ONLY" = "$k" ] || continue
	[ -n "$ONLY" ] || [ "$k" = "$LAST" ] || demo_prestart "${NEEDS[$k]}"
	"${LESSONS[$((k - 1))]}"
	[ "$k" = "$LAST" ] || [ -n "$ONLY" ] || pause "lesson $((k + 1))"
done

printf '\n%sWhat we saw%s\n' "$C_BOLD" "$C_OFF"
say "${SUMMARY[@]}"
printf '%sAll %s checks passed in %s s: every lesson happened as told.%s\n' "$C_GREEN" "$CHECKS" "$SECONDS" "$C_OFF"

if [ "$SERVE" = 1 ]; then
	printf '\n%sServing%s (Ctrl-C stops everything):\n' "$C_BOLD" "$C_OFF"
	mkdir -p "$DEMO_DIR"
	: >"$DEMO_DIR/serve.env"
	# Those not up yet start side by side.
	demo_prestart "$V_MEMORY" "$V_STICKY" "$V_REDIS" "$V_JWT" "$V_REFRESH"
	for v in "$V_MEMORY" "$V_STICKY" "$V_REDIS" "$V_JWT" "$V_REFRESH"; do
		demo_cluster "$v" >/dev/null
		printf '%s=%s\n' "$(echo "$v" | tr 'a-z-' 'A-Z_')_DIR" "$DEMO_DIR/$v" >>"$DEMO_DIR/serve.env"
		say "$v: $BALANCER_URL"
	done
	say "(curl --cacert \$CA \$URL/healthz, CA=$(elide "$CA" $((WIDTH - 40))))"
	# The teaching page hooks in here: it gets the clusters' run directories.
	if [ -x "$LIB_ROOT/scripts/web.sh" ]; then
		"$LIB_ROOT/scripts/web.sh" serve --clusters "$DEMO_DIR/serve.env" --dir "$DEMO_DIR/web" &
		WEB_PID=$!
	fi
	say "clusters listed in $(elide "$DEMO_DIR/serve.env" $((WIDTH - 24)))"
	# wait (unlike a foreground sleep) returns at once when a trapped signal arrives.
	while :; do
		sleep 3600 >/dev/null 2>&1 &
		SLEEP_PID=$!
		wait "$SLEEP_PID" || true
	done
fi
