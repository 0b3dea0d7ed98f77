#!/bin/sh
# Checks that the Debian packages a make target needs are installed; installs the missing ones
# with apt-get when run as root, otherwise prints the one command to run and fails.
# Usage: scripts/deps.sh test|bench|hardening|web
set -eu
base="gcc libc6-dev make pkg-config libevent-dev libssl-dev libhiredis-dev libjansson-dev redis-server
openssl curl python3 python3-pytest python3-jwt python3-cryptography haproxy nginx-light iproute2"
case "${1:-test}" in
-h | --help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
bench) want="$base wrk" ;;
hardening) want="$base clang libclang-rt-14-dev valgrind" ;;
test | web)	# make test runs the browser test too. nodejs from some archives ships npm itself.
	want="$base chromium nodejs"
	command -v npm >/dev/null 2>&1 || want="$want npm" ;;
*) echo "deps.sh: unknown target '$1' (test, bench, hardening or web)" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "missing Debian packages:$missing" >&2
	echo "run: sudo apt-get update && sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "installing missing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# nginx and redis must not start as system services: the project runs its own on free ports.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.deps && chmod +x /usr/sbin/policy-rc.d.deps
[ -e /usr/sbin/policy-rc.d ] || { cp /usr/sbin/policy-rc.d.deps /usr/sbin/policy-rc.d; cleanup=1; }
rm -f /usr/sbin/policy-rc.d.deps
apt-get install -y -qq --no-install-recommends $missing
[ "${cleanup:-0}" = 1 ] && rm -f /usr/sbin/policy-rc.d
exit 0
