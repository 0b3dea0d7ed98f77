/*
 * relay: a TCP relay that adds network distance on one machine (this kernel has no tc netem).
 * It forwards each accepted connection to --target and holds every chunk for half of --rtt each
 * way, in order. scripts/bench.sh puts it between the login servers and Redis. This file reads
 * the flags, listens, and stops on SIGTERM; the sessions live in relay.c.
 */
#include "relay.h"

#include <netdb.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "cli.h"
#include "log.h"

static const char usage[] =
"usage: relay --listen HOST:PORT --target HOST:PORT [--rtt MS] [options]\n"
"\n"
"Forwards every TCP connection accepted on --listen to --target, both ways, holding each chunk\n"
"for half of --rtt in each direction (so a request and its answer pay one round trip).\n"
"\n"
"  --listen HOST:PORT       where to accept connections\n"
"  --target HOST:PORT       where to forward them\n"
"  --rtt MS                 added round-trip time in milliseconds, e.g. 0.2 (default 0)\n"
"  --max-buffer BYTES       bytes held per direction before reading that side stops\n"
"                           (default 1048576)\n"
"  --timeout S              close a session idle both ways, or whose peer stops reading,\n"
"                           for S seconds (default 300)\n"
"  --connect-timeout MS     connecting to the target (default 2000)\n"
"  --quiet                  no line per session\n"
"  --debug                  debug logging\n"
"\n"
"SIGUSR1 logs the sessions and the bytes held; SIGTERM or SIGINT closes everything and exits 0.\n";

static struct relay_config	 main_conf = {
	.max_buffer = 1024 * 1024,
	.idle_ms = 300 * 1000,
	.connect_ms = 2000,
};

/* Resolves HOST:PORT (numeric or a name) into ss; exits 2 naming the flag when it cannot. */
static void
main_resolve(const char *flag, const char *text, struct sockaddr_storage *ss, socklen_t *len,
    int passive)
{
	struct addrinfo hints, *res;
	char host[256], port[8];
	unsigned short p;
	int rc;

	cli_addr_or_die(flag, text, host, sizeof(host), &p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	snprintf(port, sizeof(port), "%u", p);
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
		cli_bad("%s %s: %s", flag, text, gai_strerror(rc));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
}

static double
main_ms(const char *flag, const char *s, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < 0 || v > max)
		cli_bad("%s wants milliseconds from 0 to %g, not '%s'", flag, max, s);
	return v;
}

static void
main_flags(int argc, char *argv[], const char **listen, int *debug)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "target", required_argument, NULL, 't' },
		{ "rtt", required_argument, NULL, 'r' },
		{ "max-buffer", required_argument, NULL, 'b' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "connect-timeout", required_argument, NULL, 'c' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "debug", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	while ((c = cli_next(argc, argv, opts)) != -1) {
		switch (c) {
		case 'l': *listen = optarg; break;
		case 't': main_conf.target_text = optarg; break;
		case 'r':
			main_conf.delay_us = (uint64_t)llround(main_ms("--rtt", optarg, 60000) * 500.0);
			break;
		case 'b':
			main_conf.max_buffer = (size_t)cli_num("--max-buffer", optarg, 4096,
			    1024L * 1024 * 1024);
			break;
		case 'T':
			main_conf.idle_ms = (int)cli_num("--timeout", optarg, 1, 86400) * 1000;
			break;
		case 'c':
			main_conf.connect_ms = (int)cli_num("--connect-timeout", optarg, 1, 600000);
			break;
		case 'q': main_conf.quiet = 1; break;
		case 'd': *debug = 1; break;
		}
	}
	if (optind < argc)
		cli_bad("unexpected argument '%s'", argv[optind]);
	if (*listen == NULL || main_conf.target_text == NULL)
		cli_bad("--listen and --target are required");
	main_resolve("--target", main_conf.target_text, &main_conf.target, &main_conf.targetlen, 0);
}

static void
main_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	relay_accept(evconnlistener_get_base(l), &main_conf, fd, sa, (socklen_t)salen);
}

static void
main_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	evconnlistener_enable(arg);
}

/* Out of file descriptors and the like: pause accepting for a moment rather than spin. */
static void
main_accept_error(struct evconnlistener *l, void *arg)
{
	struct timeval pause = { 0, 100000 };

	log_warn("accept");
	evconnlistener_disable(l);
	event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, main_accept_resume, l, &pause);
}

static void
main_signal(evutil_socket_t sig, short what, void *arg)
{
	size_t n, held;

	if (sig == SIGUSR1) {
		held = relay_held_bytes(&n);
		log_info("%zu sessions, %zu bytes held", n, held);
		return;
	}
	log_info("signal %d: stopping", (int)sig);
	event_base_loopexit(arg, NULL);
}

int
main(int argc, char *argv[])
{
	struct event *sigs[3] = { NULL, NULL, NULL };
	static const int signos[3] = { SIGTERM, SIGINT, SIGUSR1 };
	struct evconnlistener *l = NULL;
	struct event_config *ecfg;
	struct event_base *base;
	struct sockaddr_storage ss;
	const char *listen = NULL;
	socklen_t sslen;
	int debug = 0, i, rc = 1;

	cli_init("relay", usage);
	main_flags(argc, argv, &listen, &debug);
	log_init("relay", debug);
	main_resolve("--listen", listen, &ss, &sslen, 1);
	signal(SIGPIPE, SIG_IGN);
	/* The kernel may fire our timers up to 50 us late by default, per hop. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

	/* Without a precise timer epoll rounds every wait up to a millisecond, more than a
	 * 0.2 ms round trip. */
	if ((ecfg = event_config_new()) == NULL)
		fatalx("out of memory");
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (base == NULL)
		fatalx("cannot create the event loop");
	l = evconnlistener_new_bind(base, main_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128, (struct sockaddr *)&ss, (int)sslen);
	if (l == NULL) {
		log_warn("cannot listen on %s", listen);
		goto done;
	}
	evconnlistener_set_error_cb(l, main_accept_error);
	for (i = 0; i < 3; i++)
		if ((sigs[i] = evsignal_new(base, signos[i], main_signal, base)) == NULL ||
		    evsignal_add(sigs[i], NULL) == -1)
			fatalx("cannot watch signals");
	log_info("listening on %s, forwarding to %s with %.3f ms round trip", listen,
	    main_conf.target_text, (double)main_conf.delay_us / 500.0);
	event_base_dispatch(base);
	relay_close_all();
	log_info("stopped");
	rc = 0;
 done:
	for (i = 0; i < 3; i++)
		if (sigs[i] != NULL)
			event_free(sigs[i]);
	if (l != NULL)
		evconnlistener_free(l);
	event_base_free(base);
	return rc;
}
