/*
 * The admin listener: GET /status (JSON: every backend with its state and counters, and the
 * routes with their pools) and GET /metrics (Prometheus text). Low traffic, so it runs the login
 * servers' connection engine (http_embed()) on the main thread's loop; the numbers it reads are
 * the atomics the workers update.
 */
#include "lb.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "http.h"
#include "log.h"
#include "prom.h"
#include "sock.h"

static struct http_thread *admin_http;
static struct http_config admin_cfg;

/* The routes: prefix ("/" for the default pool), stickiness and backend addresses. */
static void
admin_routes(struct evbuffer *out)
{
	int i, k;

	evbuffer_add_printf(out, "\"routes\": [");
	for (i = 0; i < lb_nroutes; i++) {
		struct route *rt = &lb_routes[i];

		evbuffer_add_printf(out, "%s\n  {\"prefix\": \"%s\", \"default\": %s, "
		    "\"sticky\": %s, \"backends\": [", i ? "," : "", i ? rt->rt_prefix : "/",
		    i ? "false" : "true", rt->rt_sticky ? "true" : "false");
		for (k = 0; k < rt->rt_nbe; k++)
			evbuffer_add_printf(out, "%s\"%s\"", k ? ", " : "",
			    lb_backends[rt->rt_be[k]].be_name);
		evbuffer_add_printf(out, "]}");
	}
	evbuffer_add_printf(out, "\n], ");
}

static void
admin_status(struct evbuffer *out)
{
	int i;

	evbuffer_add_printf(out, "{\"sticky\": %s, \"clients\": %lld, \"requests\": %llu, "
	    "\"retries\": %llu, ", lb_conf.sticky ? "true" : "false",
	    (long long)atomic_load(&lb_stats.st_clients),
	    (unsigned long long)atomic_load(&lb_stats.st_requests),
	    (unsigned long long)atomic_load(&lb_stats.st_retries));
	admin_routes(out);
	evbuffer_add_printf(out, "\"backends\": [");
	for (i = 0; i < lb_nbackends; i++) {
		struct backend *be = &lb_backends[i];
		unsigned long long req = atomic_load(&be->be_requests);
		unsigned long long fail = atomic_load(&be->be_failures);
		unsigned long long sum = atomic_load(&be->be_latsum_us);

		evbuffer_add_printf(out, "%s\n  {\"address\": \"%s\", \"route\": \"%s\", \"up\": %s, "
		    "\"requests\": %llu, \"failures\": %llu, \"latency_ms_avg\": %.3f}", i ? "," : "",
		    be->be_name, be->be_route ? lb_routes[be->be_route].rt_prefix : "/",
		    atomic_load(&be->be_up) ? "true" : "false", req, fail,
		    req > fail ? (double)sum / 1000.0 / (double)(req - fail) : 0.0);
	}
	evbuffer_add_printf(out, "\n]}\n");
}

static void
admin_metrics(struct evbuffer *out)
{
	static const char *classes[] = { "", "1xx", "2xx", "3xx", "4xx", "5xx" };
	static double bounds[LB_LAT_BUCKETS];
	unsigned long long counts[LB_LAT_BUCKETS + 1];
	char labels[320];
	int i, b;

	prom_counter(out, "lb_connections_accepted_total", "Client connections accepted.",
	    atomic_load(&lb_stats.st_accepted));
	prom_gauge(out, "lb_connections_open", "Client connections open.",
	    atomic_load(&lb_stats.st_clients));
	prom_counter(out, "lb_retries_total",
	    "Requests sent again to another connection or backend.",
	    atomic_load(&lb_stats.st_retries));
	prom_family(out, "lb_responses_total", "counter", "Responses to clients by status class.");
	for (i = 1; i <= 5; i++) {
		snprintf(labels, sizeof(labels), "code=\"%s\"", classes[i]);
		prom_sample(out, "lb_responses_total", labels, atomic_load(&lb_stats.st_status[i]));
	}
	prom_family(out, "lb_backend_up", "gauge", "Whether the backend is in rotation.");
	for (i = 0; i < lb_nbackends; i++) {
		snprintf(labels, sizeof(labels), "backend=\"%.280s\"", lb_backends[i].be_name);
		prom_sample(out, "lb_backend_up", labels, (unsigned)atomic_load(&lb_backends[i].be_up));
	}
	prom_family(out, "lb_backend_requests_total", "counter", "Requests sent to the backend.");
	for (i = 0; i < lb_nbackends; i++) {
		snprintf(labels, sizeof(labels), "backend=\"%.280s\"", lb_backends[i].be_name);
		prom_sample(out, "lb_backend_requests_total", labels,
		    atomic_load(&lb_backends[i].be_requests));
	}
	prom_family(out, "lb_backend_failures_total", "counter", "Requests the backend failed.");
	for (i = 0; i < lb_nbackends; i++) {
		snprintf(labels, sizeof(labels), "backend=\"%.280s\"", lb_backends[i].be_name);
		prom_sample(out, "lb_backend_failures_total", labels,
		    atomic_load(&lb_backends[i].be_failures));
	}
	prom_family(out, "lb_backend_latency_seconds", "histogram", "Time to the response head.");
	for (b = 0; b < LB_LAT_BUCKETS; b++)
		bounds[b] = lb_lat_bounds_ms[b] / 1000;
	for (i = 0; i < lb_nbackends; i++) {
		struct backend *be = &lb_backends[i];

		for (b = 0; b <= LB_LAT_BUCKETS; b++)
			counts[b] = atomic_load(&be->be_lat[b]);
		snprintf(labels, sizeof(labels), "backend=\"%.280s\"", be->be_name);
		prom_histogram(out, "lb_backend_latency_seconds", labels, bounds, counts,
		    LB_LAT_BUCKETS, (double)atomic_load(&be->be_latsum_us) / 1e6);
	}
}

/* GET /status and GET /metrics build their text in a buffer of their own. */
static void
admin_reply(struct http_req *r, const char *content_type, void (*fill)(struct evbuffer *))
{
	struct evbuffer *out = evbuffer_new();

	if (out == NULL) {
		http_reply_error(r, 503, "out_of_memory", "The balancer is out of memory.");
		return;
	}
	fill(out);
	http_reply_buffer(r, 200, content_type, out);
}

static void
admin_get_status(struct http_req *r)
{
	admin_reply(r, "application/json", admin_status);
}

static void
admin_get_metrics(struct http_req *r)
{
	admin_reply(r, "text/plain; version=0.0.4", admin_metrics);
}

static const struct http_route admin_paths[] = {
	{ "/status", HTTP_GET, admin_get_status, 1 },
	{ "/metrics", HTTP_GET, admin_get_metrics, 1 },
	{ NULL, 0, NULL, 0 }
};
static const struct http_app admin_app = { .routes = admin_paths };

int
admin_listen(const char *addr)
{
	char host[256];
	unsigned short port;
	int fd;

	if (cli_addr(addr, host, sizeof(host), &port) == -1) {
		log_warnx("--admin %s: not HOST:PORT", addr);
		return -1;
	}
	/* Only at start-up: a port we cannot have is fatal, and the line says so. */
	if ((fd = sock_listen(host, port)) == -1)
		fatal("--admin: cannot listen on %s", addr);
	return fd;
}

int
admin_start(struct event_base *base, int fd)
{
	http_config_init(&admin_cfg);
	admin_cfg.id = "balancer";
	admin_cfg.quiet = 1;
	if ((admin_http = http_embed(base, fd, &admin_cfg, &admin_app)) == NULL) {
		log_warnx("--admin: cannot serve");
		return -1;
	}
	return 0;
}

void
admin_stop(void)
{
	http_embed_free(admin_http);
	admin_http = NULL;
}
