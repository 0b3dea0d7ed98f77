/*
 * balancer: a round-robin HTTP(S) reverse proxy for the demo cluster. Every request (not every
 * connection) goes to the next healthy backend, so a keep-alive client visibly hops servers;
 * --sticky pins clients with a cookie instead, and --route gives path prefixes pools of their
 * own. This file reads the flags, sets up listeners, TLS, health checks and the admin listener,
 * runs one worker per thread and stops gracefully.
 */
#include "lb.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"
#include "log.h"
#include "sock.h"

struct lb_config lb_conf = {
	.threads = 1,
	.health_ms = 1000,
	.connect_ms = 2000,
	.backend_ms = 30000,
	.header_ms = 10000,
	.idle_ms = 60000,
	.grace_ms = 10000,
	.max_body = 1024 * 1024,
};

static const char usage[] =
"usage: balancer [--listen HOST:PORT] [--tls-listen HOST:PORT --cert FILE --key FILE]\n"
"                --backend HOST:PORT [--backend HOST:PORT ...]\n"
"                [--route PREFIX=[sticky:]HOST:PORT[,HOST:PORT...] ...] [options]\n"
"\n"
"Round-robin HTTP/1.1 reverse proxy: each request goes to the next healthy backend.\n"
"\n"
"  --listen HOST:PORT         plain HTTP listener\n"
"  --tls-listen HOST:PORT     HTTPS listener (needs --cert and --key)\n"
"  --cert FILE, --key FILE    PEM certificate chain and private key\n"
"  --backend HOST:PORT        a backend of the default pool (repeat; at most 64 in all)\n"
"  --sticky                   default pool: route by the balancer's cookie \"lb\", not round robin\n"
"  --route PREFIX=[sticky:]HOST:PORT[,HOST:PORT...]\n"
"                             paths starting with PREFIX (\"/name/\") go to a pool of their own,\n"
"                             with PREFIX replaced by \"/\" and added to the Path of its cookies;\n"
"                             with routes, --backend may be left out (other paths get 404)\n"
"  --admin HOST:PORT          GET /status (JSON) and GET /metrics (Prometheus)\n"
"  --threads N                event-loop threads (default 1)\n"
"  --health-interval MS       active GET /healthz period (default 1000)\n"
"  --connect-timeout MS       connect to a backend (default 2000)\n"
"  --backend-timeout MS       wait for a backend's response, else 504 (default 30000)\n"
"  --header-timeout MS        the whole request head must arrive within (default 10000)\n"
"  --body-timeout MS          a request body must arrive within MS, or keep coming at 1000 bytes\n"
"                             or more in every MS, else 408 (default: the header timeout)\n"
"  --idle-timeout MS          idle keep-alive client or stalled body (default 60000)\n"
"  --grace MS                 on SIGTERM, wait this long for requests in flight (default 10000)\n"
"  --max-body BYTES           request body limit, else 413 (default 1048576)\n"
"  --quiet                    no access log\n"
"  --debug                    debug logging\n"
"  --help, --version\n";

enum {
	OPT_LISTEN = 1, OPT_TLS_LISTEN, OPT_CERT, OPT_KEY, OPT_BACKEND, OPT_STICKY, OPT_ADMIN,
	OPT_THREADS, OPT_HEALTH, OPT_CONNECT, OPT_BACKEND_TO, OPT_HEADER, OPT_IDLE, OPT_GRACE,
	OPT_MAXBODY, OPT_QUIET, OPT_DEBUG, OPT_ROUTE, OPT_BODY
};

static const struct option main_opts[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "tls-listen", required_argument, NULL, OPT_TLS_LISTEN },
	{ "cert", required_argument, NULL, OPT_CERT },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "sticky", no_argument, NULL, OPT_STICKY },
	{ "route", required_argument, NULL, OPT_ROUTE },
	{ "admin", required_argument, NULL, OPT_ADMIN },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "health-interval", required_argument, NULL, OPT_HEALTH },
	{ "connect-timeout", required_argument, NULL, OPT_CONNECT },
	{ "backend-timeout", required_argument, NULL, OPT_BACKEND_TO },
	{ "header-timeout", required_argument, NULL, OPT_HEADER },
	{ "body-timeout", required_argument, NULL, OPT_BODY },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE },
	{ "grace", required_argument, NULL, OPT_GRACE },
	{ "max-body", required_argument, NULL, OPT_MAXBODY },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "debug", no_argument, NULL, OPT_DEBUG },
	{ NULL, 0, NULL, 0 }
};

static struct worker *main_workers[64];

static void
main_flags(int argc, char *argv[], int *debug)
{
	char host[256];
	unsigned short port;
	int c;

	while ((c = cli_next(argc, argv, main_opts)) != -1) {
		switch (c) {
		case OPT_LISTEN:
			cli_addr_or_die("--listen", optarg, host, sizeof(host), &port);
			lb_conf.listen = optarg;
			break;
		case OPT_TLS_LISTEN:
			cli_addr_or_die("--tls-listen", optarg, host, sizeof(host), &port);
			lb_conf.tls_listen = optarg;
			break;
		case OPT_CERT: lb_conf.cert = optarg; break;
		case OPT_KEY: lb_conf.key = optarg; break;
		case OPT_BACKEND: backend_add(0, optarg); break;
		case OPT_STICKY: lb_conf.sticky = 1; break;
		case OPT_ROUTE: route_add(optarg); break;
		case OPT_ADMIN:
			cli_addr_or_die("--admin", optarg, host, sizeof(host), &port);
			lb_conf.admin = optarg;
			break;
		case OPT_THREADS:
			lb_conf.threads = (int)cli_num("--threads", optarg, 1, 64);
			break;
		case OPT_HEALTH:
			lb_conf.health_ms = (int)cli_num("--health-interval", optarg, 50, 3600000);
			break;
		case OPT_CONNECT:
			lb_conf.connect_ms = (int)cli_num("--connect-timeout", optarg, 10, 600000);
			break;
		case OPT_BACKEND_TO:
			lb_conf.backend_ms = (int)cli_num("--backend-timeout", optarg, 10, 3600000);
			break;
		case OPT_HEADER:
			lb_conf.header_ms = (int)cli_num("--header-timeout", optarg, 10, 600000);
			break;
		case OPT_BODY:
			lb_conf.body_ms = (int)cli_num("--body-timeout", optarg, 10, 600000);
			break;
		case OPT_IDLE:
			lb_conf.idle_ms = (int)cli_num("--idle-timeout", optarg, 10, 3600000);
			break;
		case OPT_GRACE:
			lb_conf.grace_ms = (int)cli_num("--grace", optarg, 0, 600000);
			break;
		case OPT_MAXBODY:
			lb_conf.max_body = (uint64_t)cli_num("--max-body", optarg, 0,
			    1024L * 1024 * 1024);
			break;
		case OPT_QUIET: lb_conf.quiet = 1; break;
		case OPT_DEBUG: *debug = 1; break;
		}
	}
	if (optind < argc)
		cli_bad("unexpected argument %s", argv[optind]);
	/* Whoever tightens the head's deadline wants the body's tightened too. */
	if (lb_conf.body_ms == 0)
		lb_conf.body_ms = lb_conf.header_ms;
	if (lb_nbackends == 0)
		cli_bad("at least one --backend (or --route) is needed");
	if (lb_conf.sticky && lb_routes[0].rt_nbe == 0)
		cli_bad("--sticky applies to the --backend pool; a route is made sticky with "
		    "PREFIX=sticky:HOST:PORT");
	lb_routes[0].rt_sticky = lb_conf.sticky;
	if (lb_conf.listen == NULL && lb_conf.tls_listen == NULL)
		cli_bad("--listen or --tls-listen is needed");
	if (lb_conf.tls_listen != NULL && (lb_conf.cert == NULL || lb_conf.key == NULL))
		cli_bad("--tls-listen needs --cert and --key");
	if (lb_conf.tls_listen == NULL && (lb_conf.cert != NULL || lb_conf.key != NULL))
		cli_bad("--cert and --key need --tls-listen");
}

static void
main_signal(evutil_socket_t sig, short what, void *arg)
{
	int i;

	log_info("signal %d: stopping", (int)sig);
	admin_stop();
	backend_health_stop();
	for (i = 0; i < lb_conf.threads; i++)
		proxy_worker_stop(main_workers[i]);
}

static void *
main_thread(void *arg)
{
	proxy_worker_run(arg);
	return NULL;
}

int
main(int argc, char *argv[])
{
	struct event *sigterm = NULL, *sigint = NULL;
	struct event_base *base;
	pthread_t tids[64];
	SSL_CTX *tls = NULL;
	int debug = 0, i, fd, tlsfd, lfd = -1, ltlsfd = -1, afd = -1, rc = 1, started = 0;

	cli_init("balancer", usage);
	main_flags(argc, argv, &debug);
	log_init("balancer", debug);
	signal(SIGPIPE, SIG_IGN);
	sock_raise_nofile();
	if (lb_conf.tls_listen != NULL && (tls = tls_ctx_new(lb_conf.cert, lb_conf.key)) == NULL)
		goto fail;
	if (lb_conf.admin != NULL && (afd = admin_listen(lb_conf.admin)) == -1)
		goto fail;
	/* One socket per address, shared by the workers: a second process cannot join it. */
	if (lb_conf.listen != NULL && (lfd = proxy_listen(lb_conf.listen)) == -1)
		goto fail;
	if (lb_conf.tls_listen != NULL && (ltlsfd = proxy_listen(lb_conf.tls_listen)) == -1)
		goto fail;
	for (i = 0; i < lb_conf.threads; i++) {
		fd = lfd == -1 ? -1 : fcntl(lfd, F_DUPFD_CLOEXEC, 0);
		tlsfd = ltlsfd == -1 ? -1 : fcntl(ltlsfd, F_DUPFD_CLOEXEC, 0);
		if ((lfd != -1 && fd == -1) || (ltlsfd != -1 && tlsfd == -1)) {
			log_warn("worker %d: cannot share the listening socket", i);
			goto fail;
		}
		if ((main_workers[i] = proxy_worker_new(i, fd, tlsfd, tls)) == NULL)
			goto fail;
	}
	/* The workers hold their own copies: once they stop listening, nobody does. */
	if (lfd != -1)
		close(lfd);
	if (ltlsfd != -1)
		close(ltlsfd);
	lfd = ltlsfd = -1;
	base = proxy_worker_base(main_workers[0]);
	if (backend_health_start(base) == -1)
		goto fail;
	if (afd != -1) {
		fd = afd;
		afd = -1;
		if (admin_start(base, fd) == -1)
			goto fail;
	}
	sigterm = evsignal_new(base, SIGTERM, main_signal, NULL);
	sigint = evsignal_new(base, SIGINT, main_signal, NULL);
	if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) == -1 ||
	    evsignal_add(sigint, NULL) == -1)
		goto fail;
	for (started = 1; started < lb_conf.threads; started++)
		if (pthread_create(&tids[started], NULL, main_thread, main_workers[started]) != 0) {
			log_warnx("cannot start thread %d", started);
			main_signal(SIGTERM, 0, NULL);
			break;
		}
	log_info("listening on %s%s%s with %d backends, %d routes, %d threads%s",
	    lb_conf.listen ? lb_conf.listen : "", lb_conf.listen && lb_conf.tls_listen ? " and " : "",
	    lb_conf.tls_listen ? lb_conf.tls_listen : "", lb_nbackends, lb_nroutes - 1,
	    lb_conf.threads, lb_conf.sticky ? ", sticky" : "");
	proxy_worker_run(main_workers[0]);
	for (i = 1; i < started; i++)
		pthread_join(tids[i], NULL);
	log_info("stopped");
	rc = 0;
 fail:
	if (sigterm != NULL)
		event_free(sigterm);
	if (sigint != NULL)
		event_free(sigint);
	admin_stop();
	backend_health_stop();
	for (i = 0; i < lb_conf.threads; i++)
		proxy_worker_free(main_workers[i]);
	if (lfd != -1)
		close(lfd);
	if (ltlsfd != -1)
		close(ltlsfd);
	if (afd != -1)
		close(afd);
	SSL_CTX_free(tls);
	return rc;
}
