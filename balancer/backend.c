/*
 * The backends shared by every worker thread: addresses, up/down state, the choice within a
 * route's pool (round robin or sticky cookie), the sticky cookie values, per-backend counters,
 * and the active health checks (GET /healthz on the main thread's event loop). State shared
 * across threads is atomic.
 */
#include "lb.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/bufferevent.h>

#include "cli.h"
#include "log.h"

struct backend lb_backends[LB_MAX_BACKENDS];
int lb_nbackends;
const double lb_lat_bounds_ms[LB_LAT_BUCKETS] = {
	0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 5000
};

static struct event *backend_hctimer;

void
backend_add(int route, const char *spec)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct backend *be;
	unsigned char rnd[8];
	char port[8];
	size_t i;
	int err;

	if (lb_nbackends == LB_MAX_BACKENDS)
		cli_bad("at most %d backends", LB_MAX_BACKENDS);
	be = &lb_backends[lb_nbackends];
	cli_addr_or_die("--backend", spec, be->be_host, sizeof(be->be_host), &be->be_port);
	/* The name goes into JSON and Prometheus labels unescaped, so keep it plain. */
	for (i = 0; be->be_host[i] != '\0'; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:",
		    be->be_host[i]) == NULL)
			cli_bad("--backend %s: unexpected character in the host", spec);
	snprintf(port, sizeof(port), "%u", be->be_port);
	if ((err = getaddrinfo(be->be_host, port, &hints, &res)) != 0)
		cli_bad("--backend %s: %s", spec, gai_strerror(err));
	memcpy(&be->be_ss, res->ai_addr, res->ai_addrlen);
	be->be_sslen = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(be->be_name, sizeof(be->be_name), strchr(be->be_host, ':') ? "[%s]:%u" : "%s:%u",
	    be->be_host, be->be_port);
	/* The cookie names the backend without revealing its address; new for every run. */
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		fatal("getrandom");
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(be->be_cookie + 2 * i, 3, "%02x", rnd[i]);
	atomic_store(&be->be_up, 1);
	be->be_route = route;
	lb_routes[route].rt_be[lb_routes[route].rt_nbe++] = lb_nbackends;
	lb_nbackends++;
}

int
backend_choose(int route, const char *cookie, size_t cookielen, uint64_t tried)
{
	struct route *rt = &lb_routes[route];
	int i, k;

	if (cookie != NULL && cookielen == 16) {
		for (k = 0; k < rt->rt_nbe; k++) {
			i = rt->rt_be[k];
			if (memcmp(lb_backends[i].be_cookie, cookie, 16) == 0 &&
			    atomic_load(&lb_backends[i].be_up) && !(tried & (1ULL << i)))
				return i;
		}
	}
	for (k = 0; k < rt->rt_nbe; k++) {
		i = rt->rt_be[atomic_fetch_add(&rt->rt_rr, 1) % (unsigned long)rt->rt_nbe];
		if (atomic_load(&lb_backends[i].be_up) && !(tried & (1ULL << i)))
			return i;
	}
	return -1;
}

void
backend_mark_down(struct backend *be, const char *why)
{
	atomic_store(&be->be_hcok, 0);
	if (atomic_exchange(&be->be_up, 0))
		log_warnx("backend %s down: %s", be->be_name, why);
}

void
backend_record(struct backend *be, int failed, uint64_t latency_us)
{
	int b;

	atomic_fetch_add(&be->be_requests, 1);
	if (failed) {
		atomic_fetch_add(&be->be_failures, 1);
		return;
	}
	atomic_fetch_add(&be->be_latsum_us, latency_us);
	for (b = 0; b < LB_LAT_BUCKETS; b++)
		if ((double)latency_us <= lb_lat_bounds_ms[b] * 1000)
			break;
	atomic_fetch_add(&be->be_lat[b], 1);
}

/* Ends the check in flight with its verdict: two in a row flip the state. */
static void
backend_check_done(struct backend *be, int ok, const char *why)
{
	if (be->be_hcbev != NULL) {
		bufferevent_free(be->be_hcbev);
		be->be_hcbev = NULL;
	}
	if (ok) {
		atomic_store(&be->be_hcfail, 0);
		if (atomic_fetch_add(&be->be_hcok, 1) + 1 >= 2 && !atomic_exchange(&be->be_up, 1))
			log_info("backend %s up", be->be_name);
	} else {
		atomic_store(&be->be_hcok, 0);
		if (atomic_fetch_add(&be->be_hcfail, 1) + 1 >= 2 && atomic_exchange(&be->be_up, 0))
			log_warnx("backend %s down: health check: %s", be->be_name, why);
	}
}

static void
backend_check_read(struct bufferevent *bev, void *arg)
{
	struct backend *be = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char line[16];

	if (evbuffer_get_length(in) < 13)
		return;
	evbuffer_copyout(in, line, 13);
	if (memcmp(line, "HTTP/1.", 7) == 0 && memcmp(line + 8, " 200 ", 5) == 0)
		backend_check_done(be, 1, NULL);
	else
		backend_check_done(be, 0, "status is not 200");
}

static void
backend_check_event(struct bufferevent *bev, short what, void *arg)
{
	struct backend *be = arg;

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;

		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		return;
	}
	backend_check_done(be, 0, what & BEV_EVENT_TIMEOUT ? "timeout" : "connection failed");
}

/* Starts one GET /healthz; a check still running from the last period counts as failed. */
static void
backend_check_start(struct event_base *base, struct backend *be)
{
	struct timeval tv;
	int ms = lb_conf.health_ms < 2000 ? lb_conf.health_ms : 2000;

	if (be->be_hcbev != NULL)
		backend_check_done(be, 0, "timeout");
	be->be_hcbev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (be->be_hcbev == NULL)
		return;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	bufferevent_set_timeouts(be->be_hcbev, &tv, &tv);
	bufferevent_setcb(be->be_hcbev, backend_check_read, NULL, backend_check_event, be);
	bufferevent_enable(be->be_hcbev, EV_READ);
	evbuffer_add_printf(bufferevent_get_output(be->be_hcbev),
	    "GET /healthz HTTP/1.1\r\nHost: %s\r\nUser-Agent: balancer-health\r\n"
	    "Connection: close\r\n\r\n", be->be_name);
	if (bufferevent_socket_connect(be->be_hcbev, (struct sockaddr *)&be->be_ss,
	    (int)be->be_sslen) == -1)
		backend_check_done(be, 0, "connect failed");
}

static void
backend_health_tick(evutil_socket_t fd, short what, void *arg)
{
	int i;

	for (i = 0; i < lb_nbackends; i++)
		backend_check_start(arg, &lb_backends[i]);
}

int
backend_health_start(struct event_base *base)
{
	struct timeval tv = { lb_conf.health_ms / 1000, (lb_conf.health_ms % 1000) * 1000 };

	backend_hctimer = event_new(base, -1, EV_PERSIST, backend_health_tick, base);
	if (backend_hctimer == NULL || event_add(backend_hctimer, &tv) == -1) {
		log_warnx("cannot start the health checks");
		return -1;
	}
	return 0;
}

void
backend_health_stop(void)
{
	int i;

	if (backend_hctimer != NULL) {
		event_free(backend_hctimer);
		backend_hctimer = NULL;
	}
	for (i = 0; i < lb_nbackends; i++)
		if (lb_backends[i].be_hcbev != NULL) {
			bufferevent_free(lb_backends[i].be_hcbev);
			lb_backends[i].be_hcbev = NULL;
		}
}
