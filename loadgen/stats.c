/* What a worker thread counts during a run, and how the workers' counts are added up. */
#include "loadgen.h"

#include <string.h>

void
stats_init(struct stats *st)
{
	memset(st, 0, sizeof(*st));
	hist_init(&st->st_latency);
}

/* Few backends answer, so a linear search over a fixed table beats anything clever. */
void
stats_backend(struct stats *st, const char *name)
{
	size_t i;

	if (name[0] == '\0') {
		st->st_no_backend++;
		return;
	}
	for (i = 0; i < st->st_nbackends; i++) {
		if (strcmp(st->st_backends[i].sb_name, name) == 0) {
			st->st_backends[i].sb_n++;
			return;
		}
	}
	if (st->st_nbackends == STATS_BACKENDS) {
		st->st_backends_other++;
		return;
	}
	snprintf(st->st_backends[i].sb_name, sizeof(st->st_backends[i].sb_name), "%s", name);
	st->st_backends[i].sb_n = 1;
	st->st_nbackends++;
}

void
stats_merge(struct stats *dst, const struct stats *src)
{
	size_t i, j;

	dst->st_requests += src->st_requests;
	for (i = 0; i < STATS_STATUS_MAX; i++)
		dst->st_status[i] += src->st_status[i];
	for (i = 0; i < ERR__MAX; i++)
		dst->st_errors[i] += src->st_errors[i];
	dst->st_auth_failures += src->st_auth_failures;
	dst->st_logins_ok += src->st_logins_ok;
	dst->st_logins_failed += src->st_logins_failed;
	dst->st_backends_other += src->st_backends_other;
	dst->st_no_backend += src->st_no_backend;
	for (i = 0; i < src->st_nbackends; i++) {
		for (j = 0; j < dst->st_nbackends; j++)
			if (strcmp(dst->st_backends[j].sb_name, src->st_backends[i].sb_name) == 0)
				break;
		if (j == dst->st_nbackends) {
			if (j == STATS_BACKENDS) {
				dst->st_backends_other += src->st_backends[i].sb_n;
				continue;
			}
			dst->st_backends[j] = src->st_backends[i];
			dst->st_backends[j].sb_n = 0;
			dst->st_nbackends++;
		}
		dst->st_backends[j].sb_n += src->st_backends[i].sb_n;
	}
	hist_merge(&dst->st_latency, &src->st_latency);
	for (i = 0; i < src->st_nseconds; i++) {
		dst->st_series[i].ss_ok += src->st_series[i].ss_ok;
		dst->st_series[i].ss_http_4xx += src->st_series[i].ss_http_4xx;
		dst->st_series[i].ss_http_5xx += src->st_series[i].ss_http_5xx;
		for (j = 0; j < ERR__MAX; j++)
			dst->st_series[i].ss_errors[j] += src->st_series[i].ss_errors[j];
	}
	if (src->st_nseconds > dst->st_nseconds)
		dst->st_nseconds = src->st_nseconds;
}

void
stats_sample(struct stats *st, uint64_t elapsed_us)
{
	struct stats_snap now;
	struct stats_second *sec;
	size_t i, k = (size_t)(elapsed_us / 1000000u);
	uint64_t errors = 0;

	memset(&now, 0, sizeof(now));
	now.sn_requests = st->st_requests;
	for (i = 400; i < 500; i++)
		now.sn_http_4xx += st->st_status[i];
	for (i = 500; i < STATS_STATUS_MAX; i++)
		now.sn_http_5xx += st->st_status[i];
	for (i = 0; i < ERR__MAX; i++) {
		now.sn_errors[i] = st->st_errors[i];
		errors += st->st_errors[i];
	}
	if (k < STATS_SECONDS) {
		sec = &st->st_series[k];
		sec->ss_http_4xx += (uint32_t)(now.sn_http_4xx - st->st_snap.sn_http_4xx);
		sec->ss_http_5xx += (uint32_t)(now.sn_http_5xx - st->st_snap.sn_http_5xx);
		sec->ss_ok += (uint32_t)((now.sn_requests - st->st_snap.sn_requests) -
		    (now.sn_http_4xx - st->st_snap.sn_http_4xx) -
		    (now.sn_http_5xx - st->st_snap.sn_http_5xx));
		for (i = 0; i < ERR__MAX; i++)
			sec->ss_errors[i] += (uint32_t)(now.sn_errors[i] - st->st_snap.sn_errors[i]);
		if (k + 1 > st->st_nseconds)
			st->st_nseconds = k + 1;
	}
	st->st_snap = now;
	atomic_store_explicit(&st->st_live_requests, now.sn_requests, memory_order_relaxed);
	atomic_store_explicit(&st->st_live_errors, errors, memory_order_relaxed);
	atomic_store_explicit(&st->st_live_http_errors, now.sn_http_4xx + now.sn_http_5xx,
	    memory_order_relaxed);
}

const char *
stats_err_name(enum lg_err e)
{
	static const char *names[ERR__MAX] = {
		[ERR_CONNECT] = "connect",
		[ERR_TLS] = "tls",
		[ERR_TIMEOUT] = "timeout",
		[ERR_READ] = "read",
		[ERR_PROTOCOL] = "protocol",
	};

	return names[e];
}

double
stats_error_rate(const struct stats *st)
{
	uint64_t bad = 0, all;
	size_t i;

	for (i = 0; i < ERR__MAX; i++)
		bad += st->st_errors[i];
	all = st->st_requests + bad;
	for (i = 400; i < STATS_STATUS_MAX; i++)
		bad += st->st_status[i];
	return all ? (double)bad / (double)all : 0.0;
}
