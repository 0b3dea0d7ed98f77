# The HAProxy and nginx configurations that put a balancer in front of our servers, written in
# one place for cluster.sh (the demo clusters behind HAProxy or nginx) and bench_balancer.sh (our
# balancer against them): both get the same round robin per request, pooled keep-alive server
# connections, forwarded headers and timeouts. Every path a configuration names is in the
# directory given, so that both run unprivileged, in the foreground, on loopback.
# Sourced, not run: `. "$(dirname "${BASH_SOURCE[0]}")/proxyconf.sh"`.
# shellcheck shell=bash

# Writes an HAProxy configuration to FILE: round robin per request on LISTEN (HOST:PORT) over
# BACKENDS ("HOST:PORT HOST:PORT ..."), one thread, server connections reused across clients.
# Options: --tls PEM (HTTPS on LISTEN; certificate and key in one file), --admin HOST:PORT (the
# stats page at /status), --checks (GET /healthz every 500 ms: down after 2 failures, up after
# 2 successes), --sticky (a balancer-inserted SERVERID cookie pins a client to a server), --log
# (one line per request on stderr). Usage: proxyconf_haproxy FILE LISTEN BACKENDS [options]
proxyconf_haproxy() {
	local file=$1 listen=$2 backends=$3 tls='' admin='' checks=0 sticky=0 log=0 b i=0
	shift 3
	while [ $# -gt 0 ]; do
		case $1 in
		--tls) tls=$2; shift ;;
		--admin) admin=$2; shift ;;
		--checks) checks=1 ;;
		--sticky) sticky=1 ;;
		--log) log=1 ;;
		esac
		shift
	done
	{
		printf 'global\n\tnbthread 1\n\tmaxconn 4000\n'
		[ "$log" = 1 ] && printf '\tlog stderr format short local0 info\n'
		[ -n "$tls" ] && printf '\tssl-default-bind-options ssl-min-ver TLSv1.2\n'
		printf '\ndefaults\n\tmode http\n'
		[ "$log" = 1 ] && printf '\tlog global\n\toption httplog\n'
		cat <<EOF
	timeout connect 2s
	timeout client 30s
	timeout server 30s
	timeout http-request 10s
	retries 2
	# A server that refuses a connection is retried on another one at once.
	option redispatch 1
	option forwardfor

frontend front
EOF
		if [ -n "$tls" ]; then
			printf '\tbind %s ssl crt %s alpn http/1.1\n' "$listen" "$tls"
			printf '\thttp-request set-header X-Forwarded-Proto https\n'
		else
			printf '\tbind %s\n' "$listen"
		fi
		printf '\tdefault_backend app\n'
		[ -n "$admin" ] && printf '\nfrontend stats\n\tbind %s\n\tstats enable\n\tstats uri /status\n\tstats refresh 2s\n' "$admin"
		printf '\nbackend app\n\tbalance roundrobin\n\thttp-reuse always\n'
		if [ "$checks" = 1 ]; then
			printf '\toption httpchk GET /healthz\n\thttp-check expect status 200\n'
			printf '\tdefault-server inter 500ms fall 2 rise 2\n'
		fi
		[ "$sticky" = 1 ] && printf '\tcookie SERVERID insert indirect nocache httponly secure\n'
		for b in $backends; do
			i=$((i + 1))
			printf '\tserver app%s %s' "$i" "$b"
			[ "$checks" = 1 ] && printf ' check'
			[ "$sticky" = 1 ] && printf ' cookie app%s' "$i"
			printf '\n'
		done
	} >"$file"
}

# Writes DIR/nginx.conf: one worker in the foreground, its pid and temp files in DIR, errors to
# ERRORLOG, and HTTP_BLOCK (server and upstream blocks) inside http {}.
# Usage: proxyconf_nginx_main DIR ERRORLOG HTTP_BLOCK
proxyconf_nginx_main() {
	local d=$1
	mkdir -p "$d/tmp"
	cat >"$d/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $d/nginx.pid;
error_log $2 notice;
events { worker_connections 4096; }
http {
	client_body_temp_path $d/tmp/body;
	proxy_temp_path $d/tmp/proxy;
	fastcgi_temp_path $d/tmp/fastcgi;
	uwsgi_temp_path $d/tmp/uwsgi;
	scgi_temp_path $d/tmp/scgi;
	keepalive_requests 1000000;
$3
}
EOF
}

# Writes DIR/nginx.conf for nginx as a balancer: round robin per request on LISTEN over
# BACKENDS, pooled keep-alive upstream connections, forwarded headers; a GET whose connect fails
# goes to the next server, a POST is never re-sent. Options: --tls CERT KEY, --admin HOST:PORT
# (stub_status at /status), --sticky (ip_hash: nginx OSS has no sticky cookie, so a client
# *address* is pinned to a server), --logs DIR (access and error logs there; otherwise errors go
# to DIR/error.log and requests are not logged). Usage: proxyconf_nginx DIR LISTEN BACKENDS [options]
proxyconf_nginx() {
	local d=$1 listen=$2 backends=$3 cert='' key='' admin='' sticky=0 logs='' b body
	shift 3
	while [ $# -gt 0 ]; do
		case $1 in
		--tls) cert=$2 key=$3; shift 2 ;;
		--admin) admin=$2; shift ;;
		--sticky) sticky=1 ;;
		--logs) logs=$2; shift ;;
		esac
		shift
	done
	if [ -n "$logs" ]; then
		body="	log_format upstream '\$remote_addr \"\$request\" \$status upstream=\$upstream_addr rt=\$request_time';
	access_log $logs/nginx-access.log upstream;"
	else
		body="	access_log off;"
	fi
	body="$body
	client_max_body_size 16k;
	upstream app {"
	[ "$sticky" = 1 ] && body="$body
		ip_hash;"
	for b in $backends; do
		body="$body
		server $b max_fails=1 fail_timeout=5s;"
	done
	body="$body
		keepalive 64;
	}
	server {
		listen $listen${cert:+ ssl};"
	[ -n "$cert" ] && body="$body
		ssl_certificate $cert;
		ssl_certificate_key $key;
		ssl_protocols TLSv1.2 TLSv1.3;"
	body="$body
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection \"\";
			proxy_set_header Host \$host;
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto \$scheme;
			proxy_connect_timeout 2s;
			proxy_read_timeout 30s;
			proxy_next_upstream error timeout;
		}
	}"
	[ -n "$admin" ] && body="$body
	server {
		listen $admin;
		location = /status { stub_status; }
	}"
	proxyconf_nginx_main "$d" "${logs:-$d}/${logs:+nginx-}error.log" "$body"
}
