# Shell helpers shared by the scripts: where the programs are, command-line errors, free ports,
# waiting for a listener, and stopping a process we started (checked by pid *and* program name,
# never by name alone).
# Sourced, not run: `. "$(dirname "$0")/lib.sh"`.
# shellcheck shell=bash

LIB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Tests point AUTH_BIN at another build (e.g. the sanitizer one); by default we use `make`'s bin/.
AUTH_BIN=${AUTH_BIN:-$LIB_ROOT/bin}
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

lib_die() {
	printf '%s: %s\n' "${LIB_PROG:-${0##*/}}" "$*" >&2
	exit 1
}

# A bad command line: one line on stderr and exit 2, as every program of the project does.
lib_usage_error() {
	printf '%s: %s\n' "${LIB_PROG:-${0##*/}}" "$*" >&2
	exit 2
}

# Sets the variable VAR to the value of OPTION, the word after it, or stops with exit 2 when there
# is no such word or it is empty. Use it in the option loop, then shift 2:
#   --port) lib_optarg port "$@"; shift 2 ;;
# (`X=${2:-}; shift 2 || true` loops for ever when the option is the last word: shift 2 fails
# without shifting anything.)
lib_optarg() {
	[ $# -ge 3 ] && [ -n "$3" ] || lib_usage_error "$2 needs a value (see --help)"
	printf -v "$1" '%s' "$3"
}

# Stops with exit 2 unless VALUE (given for OPTION) is a TCP port number, 1 to 65535.
lib_check_port() {
	case $2 in
	*[!0-9]* | 0* | ??????*) lib_usage_error "$1 needs a port number from 1 to 65535, not '$2'" ;;
	esac
	[ "$2" -le 65535 ] || lib_usage_error "$1 needs a port number from 1 to 65535, not '$2'"
}

# Prints N distinct TCP ports that are free on 127.0.0.1 right now, one per line. They come from
# below the kernel's ephemeral range, so no outgoing connection (a probe, a Redis client, a
# balancer's pool) can hold one when its program binds it; and never one handed out in the last
# two minutes: the choice is made under a lock on $TMPDIR/authlab-ports, which notes every pick, so
# scripts started side by side (web.sh starts five clusters at once) never get the same port.
lib_free_ports() {
	"$PYTHON" - "$1" "${TMPDIR:-/tmp}/authlab-ports" <<'EOF'
import fcntl, random, socket, sys, time
n, path, now = int(sys.argv[1]), sys.argv[2], time.time()
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
except OSError:
    low = 32768
lo, hi = (10000, low) if low > 12000 else (10000, 65536)
with open(path, "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    recent = {}
    for line in f:
        w = line.split()
        if len(w) == 2 and now - float(w[1]) < 120:
            recent[int(w[0])] = w[1]
    socks = []
    while len(socks) < n:
        port = random.randrange(lo, hi)
        if port in recent:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        socks.append(s)
        recent[port] = "%.0f" % now
    f.seek(0)
    f.truncate()
    f.write("".join("%d %s\n" % kv for kv in recent.items()))
print("\n".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Prints why PID (NAME), a child of this shell, is not serving: its exit status or the signal that
# killed it, or that it is still running (it did not listen in time), so the reason shows even when
# its log is empty. Call it in this shell, not in $(...): a subshell cannot wait for our child.
lib_why() {
	local pid=$1 name=$2 rc=0
	if lib_alive "$pid" "$name"; then
		echo "$name (pid $pid) is still running"
		return 0
	fi
	wait "$pid" 2>/dev/null || rc=$?
	if [ "$rc" -gt 128 ] && [ "$rc" != 255 ]; then
		echo "$name (pid $pid) was killed by signal $((rc - 128)) ($(kill -l "$rc" 2>/dev/null))"
	else
		echo "$name (pid $pid) exited with status $rc"
	fi
}

# True when PID is a live (not zombie) process whose command line mentions NAME, or a child of
# this shell (one just forked may not have exec'd NAME yet). The name check keeps a stale pid file
# from ever making us signal somebody else's process.
lib_alive() {
	local pid=$1 name=$2 stat cmd
	[ -n "$pid" ] || return 1
	# The process may end between two reads: every read of /proc is allowed to fail quietly.
	stat=$( { sed 's/^.*) //' "/proc/$pid/stat"; } 2>/dev/null) || return 1
	# shellcheck disable=SC2086 # split the fields of /proc/PID/stat
	set -- $stat
	[ -n "${1:-}" ] && [ "$1" != Z ] || return 1
	[ "${2:-}" = "$$" ] && return 0
	cmd=$( { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || return 1
	case "$cmd" in *"$name"*) return 0 ;; esac
	return 1
}

# Waits until 127.0.0.1:PORT accepts connections. Fails early when PID (NAME) dies (PID may be
# empty: then only the timeout ends the wait), or after TIMEOUT seconds.
lib_wait_port() {
	local port=$1 pid=$2 name=$3 timeout=${4:-20} i=0
	while [ "$i" -lt $((timeout * 20)) ]; do
		[ -z "$pid" ] || lib_alive "$pid" "$name" || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

# Stops processes given as "PID:NAME" words: SIGTERM to all at once (so a graceful stop of one
# does not delay the others), up to TIMEOUT seconds of waiting, then SIGKILL for what is left.
# Prints the ones that needed SIGKILL. Usage: lib_stop TIMEOUT PID:NAME...
lib_stop() {
	local timeout=$1 w pid name left i=0
	shift
	for w in "$@"; do
		pid=${w%%:*} name=${w#*:}
		lib_alive "$pid" "$name" && kill -TERM "$pid" 2>/dev/null
	done
	while [ "$i" -lt $((timeout * 20)) ]; do
		left=0
		for w in "$@"; do
			lib_alive "${w%%:*}" "${w#*:}" && left=1
		done
		[ "$left" = 0 ] && return 0
		sleep 0.05
		i=$((i + 1))
	done
	for w in "$@"; do
		pid=${w%%:*} name=${w#*:}
		if lib_alive "$pid" "$name"; then
			echo "${LIB_PROG:-${0##*/}}: $name (pid $pid) ignored SIGTERM for ${timeout}s: SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
	done
	return 0
}

# Colours, only when standard output is a terminal (and NO_COLOR is not set).
# shellcheck disable=SC2034 # used by the scripts that source this file
lib_colours() {
	if [ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-dumb}" != dumb ]; then
		C_BOLD=$'\e[1m' C_DIM=$'\e[2m' C_RED=$'\e[31m' C_GREEN=$'\e[32m' C_YELLOW=$'\e[33m'
		C_BLUE=$'\e[34m' C_MAGENTA=$'\e[35m' C_CYAN=$'\e[36m' C_OFF=$'\e[0m'
	else
		C_BOLD='' C_DIM='' C_RED='' C_GREEN='' C_YELLOW='' C_BLUE='' C_MAGENTA='' C_CYAN='' C_OFF=''
	fi
}
