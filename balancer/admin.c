/*
 * The admin listener: GET /status (JSON: every backend with its state and counters, and the
 * routes with their pools) and GET /metrics (Prometheus text). Low traffic, so it uses evhttp on the main thread's loop;
 * the numbers it reads are the atomics the workers update.
 */
#include "lb.h"

#include <stdio.h>
#include <string.h>

#include <event2/http.h>

#include "cli.h"
#include "log.h"

static struct evhttp *admin_http;

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
	unsigned long long cum;
	int i, b;

	evbuffer_add_printf(out, "# HELP lb_connections_accepted_total Client connections "
	    "accepted.\n# TYPE lb_connections_accepted_total counter\n"
	    "lb_connections_accepted_total %llu\n"
	    "# HELP lb_connections_open Client connections open.\n"
	    "# TYPE lb_connections_open gauge\nlb_connections_open %lld\n"
	    "# HELP lb_retries_total Requests sent again to another connection or backend.\n"
	    "# TYPE lb_retries_total counter\nlb_retries_total %llu\n"
	    "# HELP lb_responses_total Responses to clients by status class.\n"
	    "# TYPE lb_responses_total counter\n",
	    (unsigned long long)atomic_load(&lb_stats.st_accepted),
	    (long long)atomic_load(&lb_stats.st_clients),
	    (unsigned long long)atomic_load(&lb_stats.st_retries));
	for (i = 1; i <= 5; i++)
		evbuffer_add_printf(out, "lb_responses_total{code=\"%s\"} %llu\n", classes[i],
		    (unsigned long long)atomic_load(&lb_stats.st_status[i]));
	evbuffer_add_printf(out, "# HELP lb_backend_up Whether the backend is in rotation.\n"
	    "# TYPE lb_backend_up gauge\n");
	for (i = 0; i < lb_nbackends; i++)
		evbuffer_add_printf(out, "lb_backend_up{backend=\"%s\"} %d\n",
		    lb_backends[i].be_name, atomic_load(&lb_backends[i].be_up));
	evbuffer_add_printf(out, "# HELP lb_backend_requests_total Requests sent to the backend."
	    "\n# TYPE lb_backend_requests_total counter\n");
	for (i = 0; i < lb_nbackends; i++)
		evbuffer_add_printf(out, "lb_backend_requests_total{backend=\"%s\"} %llu\n",
		    lb_backends[i].be_name,
		    (unsigned long long)atomic_load(&lb_backends[i].be_requests));
	evbuffer_add_printf(out, "# HELP lb_backend_failures_total Requests the backend failed."
	    "\n# TYPE lb_backend_failures_total counter\n");
	for (i = 0; i < lb_nbackends; i++)
		evbuffer_add_printf(out, "lb_backend_failures_total{backend=\"%s\"} %llu\n",
		    lb_backends[i].be_name,
		    (unsigned long long)atomic_load(&lb_backends[i].be_failures));
	evbuffer_add_printf(out, "# HELP lb_backend_latency_seconds Time to the response head.\n"
	    "# TYPE lb_backend_latency_seconds histogram\n");
	for (i = 0; i < lb_nbackends; i++) {
		struct backend *be = &lb_backends[i];

		cum = 0;
		for (b = 0; b < LB_LAT_BUCKETS; b++) {
			cum += atomic_load(&be->be_lat[b]);
			evbuffer_add_printf(out, "lb_backend_latency_seconds_bucket{backend=\"%s\","
			    "le=\"%g\"} %llu\n", be->be_name, lb_lat_bounds_ms[b] / 1000, cum);
		}
		cum += atomic_load(&be->be_lat[LB_LAT_BUCKETS]);
		evbuffer_add_printf(out, "lb_backend_latency_seconds_bucket{backend=\"%s\","
		    "le=\"+Inf\"} %llu\nlb_backend_latency_seconds_sum{backend=\"%s\"} %.6f\n"
		    "lb_backend_latency_seconds_count{backend=\"%s\"} %llu\n", be->be_name, cum,
		    be->be_name, (double)atomic_load(&be->be_latsum_us) / 1e6, be->be_name, cum);
	}
}

static void
admin_request(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq *hdrs = evhttp_request_get_output_headers(req);
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

	evhttp_add_header(hdrs, "Cache-Control", "no-store");
	if (path == NULL || (strcmp(path, "/status") != 0 && strcmp(path, "/metrics") != 0)) {
		evhttp_add_header(hdrs, "Content-Type", "application/json");
		evbuffer_add_printf(out, "{\"error\": \"not_found\", \"message\": "
		    "\"the admin listener serves /status and /metrics\"}\n");
		evhttp_send_reply(req, 404, "Not Found", NULL);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evhttp_add_header(hdrs, "Content-Type", "application/json");
		evhttp_add_header(hdrs, "Allow", "GET, HEAD");
		evbuffer_add_printf(out, "{\"error\": \"method_not_allowed\", \"message\": "
		    "\"use GET\"}\n");
		evhttp_send_reply(req, 405, "Method Not Allowed", NULL);
		return;
	}
	if (strcmp(path, "/status") == 0) {
		evhttp_add_header(hdrs, "Content-Type", "application/json");
		admin_status(out);
	} else {
		evhttp_add_header(hdrs, "Content-Type", "text/plain; version=0.0.4");
		admin_metrics(out);
	}
	evhttp_send_reply(req, 200, "OK", NULL);
}

int
admin_start(struct event_base *base, const char *addr)
{
	char host[256];
	unsigned short port;

	if (cli_addr(addr, host, sizeof(host), &port) == -1) {
		log_warnx("--admin %s: not HOST:PORT", addr);
		return -1;
	}
	if ((admin_http = evhttp_new(base)) == NULL)
		return -1;
	evhttp_set_timeout(admin_http, 10);
	evhttp_set_max_headers_size(admin_http, 8192);
	evhttp_set_max_body_size(admin_http, 1024);
	evhttp_set_allowed_methods(admin_http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_gencb(admin_http, admin_request, NULL);
	if (evhttp_bind_socket(admin_http, host, port) == -1) {
		log_warn("--admin %s: cannot listen", addr);
		evhttp_free(admin_http);
		admin_http = NULL;
		return -1;
	}
	return 0;
}

void
admin_stop(void)
{
	if (admin_http != NULL) {
		evhttp_free(admin_http);
		admin_http = NULL;
	}
}
