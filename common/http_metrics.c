/*
 * The request metrics of the login servers: process-wide counters of requests by route and
 * status, a latency histogram and authentication failures by reason, updated by every thread
 * without locks and rendered for GET /metrics.
 */
#include "http_int.h"

#include <stdio.h>
#include <string.h>

#include "prom.h"

#define HTTP_MAX_REASONS	32

static const int metric_statuses[] = { 200, 204, 400, 401, 403, 404, 405, 408, 413, 415, 429,
    431, 500, 502, 503, 504, 505 };
#define NSTATUS (sizeof(metric_statuses) / sizeof(metric_statuses[0]))
static const double metric_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1, 2.5, 5 };
#define NBOUNDS (sizeof(metric_bounds) / sizeof(metric_bounds[0]))

static struct {
	/* [route][status]; route HTTP_MAX_ROUTES is "other", status NSTATUS is "other" */
	atomic_ullong	requests[HTTP_MAX_ROUTES + 1][NSTATUS + 1];
	atomic_ullong	latency[NBOUNDS + 1];
	atomic_ullong	latency_us_sum;
	const char	*reason_name[HTTP_MAX_REASONS];
	atomic_ulong	reason_count[HTTP_MAX_REASONS];
	atomic_int	nreasons;
	pthread_mutex_t	reason_mu;
} metrics = { .reason_mu = PTHREAD_MUTEX_INITIALIZER };

static const char *route_names[HTTP_MAX_ROUTES + 1];

void
metrics_routes(const struct http_route *routes)
{
	int i;

	for (i = 0; i < HTTP_MAX_ROUTES && routes[i].path != NULL; i++)
		route_names[i] = routes[i].path;
	route_names[HTTP_MAX_ROUTES] = "other";
}

void
metrics_count(int route, int status, double seconds)
{
	size_t s, b;

	for (s = 0; s < NSTATUS && metric_statuses[s] != status; s++)
		;
	atomic_fetch_add(&metrics.requests[route][s], 1);
	for (b = 0; b < NBOUNDS && seconds > metric_bounds[b]; b++)
		;
	atomic_fetch_add(&metrics.latency[b], 1);
	atomic_fetch_add(&metrics.latency_us_sum, (unsigned long)(seconds * 1e6));
}

void
http_auth_failure(struct http_req *r, const char *reason)
{
	int i, n = atomic_load(&metrics.nreasons);

	r->authfail = reason;
	for (i = 0; i < n; i++) {
		if (strcmp(metrics.reason_name[i], reason) == 0) {
			atomic_fetch_add(&metrics.reason_count[i], 1);
			return;
		}
	}
	pthread_mutex_lock(&metrics.reason_mu);
	n = atomic_load(&metrics.nreasons);
	for (i = 0; i < n && strcmp(metrics.reason_name[i], reason) != 0; i++)
		;
	if (i == n && n < HTTP_MAX_REASONS) {
		metrics.reason_name[n] = reason;
		atomic_store(&metrics.nreasons, n + 1);
	}
	if (i < HTTP_MAX_REASONS)
		atomic_fetch_add(&metrics.reason_count[i], 1);
	pthread_mutex_unlock(&metrics.reason_mu);
}

void
metrics_render(struct http_thread *t, struct evbuffer *out)
{
	unsigned long long counts[NBOUNDS + 1], v;
	char labels[128];
	size_t r, s, b;
	int i, n;

	prom_family(out, "http_requests_total", "counter",
	    "Requests answered, by route and status.");
	for (r = 0; r <= HTTP_MAX_ROUTES; r++) {
		if (route_names[r] == NULL)
			continue;
		for (s = 0; s <= NSTATUS; s++) {
			if ((v = atomic_load(&metrics.requests[r][s])) == 0)
				continue;
			if (s < NSTATUS)
				snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%d\"",
				    route_names[r], metric_statuses[s]);
			else
				snprintf(labels, sizeof(labels), "route=\"%s\",status=\"other\"",
				    route_names[r]);
			prom_sample(out, "http_requests_total", labels, v);
		}
	}
	prom_family(out, "http_request_duration_seconds", "histogram",
	    "Time from request to reply.");
	for (b = 0; b <= NBOUNDS; b++)
		counts[b] = atomic_load(&metrics.latency[b]);
	prom_histogram(out, "http_request_duration_seconds", NULL, metric_bounds, counts, NBOUNDS,
	    atomic_load(&metrics.latency_us_sum) / 1e6);
	prom_family(out, "auth_failures_total", "counter", "Rejected credentials, by reason.");
	n = atomic_load(&metrics.nreasons);
	for (i = 0; i < n; i++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", metrics.reason_name[i]);
		prom_sample(out, "auth_failures_total", labels,
		    atomic_load(&metrics.reason_count[i]));
	}
	if (t->srv->hs_app->metrics != NULL)
		t->srv->hs_app->metrics(t->srv, out);
}
