/* The run's report: a few human-readable lines, the contract's JSON (SPEC.md "loadgen"), and
 * the thresholds that turn it into an exit status for CI. */
#include "loadgen.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"

static const char *
report_flow(enum lg_flow f)
{
	return f == FLOW_SESSION ? "session" : f == FLOW_JWT ? "jwt" : f == FLOW_REFRESH ?
	    "refresh" : "none";
}

static double
report_ms(const struct stats *st, double p)
{
	return (double)hist_percentile(&st->st_latency, p) / 1000.0;
}

static double
report_rps(const struct stats *st)
{
	return st->st_duration > 0 ? (double)st->st_requests / st->st_duration : 0.0;
}

void
report_text(const struct stats *st, const struct lg_config *cfg, FILE *out)
{
	size_t i;

	fprintf(out, "%s  flow %s, %ld users on %ld connections, %ld thread%s, ",
	    cfg->url_text, report_flow(cfg->flow), cfg->users, cfg->concurrency, cfg->threads,
	    cfg->threads == 1 ? "" : "s");
	if (cfg->rate > 0)
		fprintf(out, "open loop at %g/s\n", cfg->rate);
	else
		fprintf(out, "closed loop\n");
	fprintf(out, "  requests       %llu in %.2f s, %.1f/s\n",
	    (unsigned long long)st->st_requests, st->st_duration, report_rps(st));
	fprintf(out, "  latency ms     p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f"
	    "  mean %.3f\n", report_ms(st, 50), report_ms(st, 90), report_ms(st, 99),
	    report_ms(st, 99.9), (double)st->st_latency.h_max / 1000.0,
	    hist_mean(&st->st_latency) / 1000.0);
	fprintf(out, "  status        ");
	for (i = 0; i < STATS_STATUS_MAX; i++)
		if (st->st_status[i] > 0)
			fprintf(out, " %zu: %llu", i, (unsigned long long)st->st_status[i]);
	fprintf(out, "\n  errors        ");
	for (i = 0; i < ERR__MAX; i++)
		fprintf(out, " %s %llu", stats_err_name((enum lg_err)i),
		    (unsigned long long)st->st_errors[i]);
	fprintf(out, "  (error rate %.2f%%)\n", 100.0 * stats_error_rate(st));
	if (cfg->flow != FLOW_NONE) {
		fprintf(out, "  logins         ok %llu  failed %llu\n",
		    (unsigned long long)st->st_logins_ok, (unsigned long long)st->st_logins_failed);
		fprintf(out, "  auth failures  %llu (%.2f%% of responses)\n",
		    (unsigned long long)st->st_auth_failures, st->st_requests ?
		    100.0 * (double)st->st_auth_failures / (double)st->st_requests : 0.0);
	}
	fprintf(out, "  backends      ");
	for (i = 0; i < st->st_nbackends; i++)
		fprintf(out, " %s: %llu", st->st_backends[i].sb_name,
		    (unsigned long long)st->st_backends[i].sb_n);
	if (st->st_backends_other > 0)
		fprintf(out, " (others): %llu", (unsigned long long)st->st_backends_other);
	if (st->st_no_backend > 0)
		fprintf(out, " (no X-Served-By): %llu", (unsigned long long)st->st_no_backend);
	fprintf(out, "\n");
}

/* The per-second series: [{"t": second, "ok", "http_4xx", "http_5xx", "errors": {...}}].
 * The caller owns the reference; NULL when out of memory. */
static json_t *
report_series(const struct stats *st)
{
	const struct stats_second *s;
	json_t *a, *o, *e;
	size_t i, k;

	if ((a = json_array()) == NULL)
		return NULL;
	for (i = 0; i < st->st_nseconds; i++) {
		s = &st->st_series[i];
		if ((o = json_object()) == NULL || (e = json_object()) == NULL) {
			json_decref(o);
			json_decref(a);
			return NULL;
		}
		json_object_set_new(o, "t", json_integer((json_int_t)i));
		json_object_set_new(o, "ok", json_integer(s->ss_ok));
		json_object_set_new(o, "http_4xx", json_integer(s->ss_http_4xx));
		json_object_set_new(o, "http_5xx", json_integer(s->ss_http_5xx));
		for (k = 0; k < ERR__MAX; k++)
			json_object_set_new(e, stats_err_name((enum lg_err)k),
			    json_integer(s->ss_errors[k]));
		json_object_set_new(o, "errors", e);
		json_array_append_new(a, o);
	}
	return a;
}

/* Builds the report object; the caller owns the reference. */
static json_t *
report_object(const struct stats *st, const struct lg_config *cfg)
{
	json_t *o, *lat, *status, *errors, *backends, *logins, *conf;
	char code[8];
	size_t i;

	o = json_object();
	lat = json_object();
	status = json_object();
	errors = json_object();
	backends = json_object();
	logins = json_object();
	conf = json_object();
	if (o == NULL || lat == NULL || status == NULL || errors == NULL || backends == NULL ||
	    logins == NULL || conf == NULL)
		goto fail;
	json_object_set_new(o, "requests", json_integer((json_int_t)st->st_requests));
	json_object_set_new(o, "rps", json_real(report_rps(st)));
	json_object_set_new(o, "duration_s", json_real(st->st_duration));
	json_object_set_new(lat, "p50", json_real(report_ms(st, 50)));
	json_object_set_new(lat, "p90", json_real(report_ms(st, 90)));
	json_object_set_new(lat, "p99", json_real(report_ms(st, 99)));
	json_object_set_new(lat, "p999", json_real(report_ms(st, 99.9)));
	json_object_set_new(lat, "max", json_real((double)st->st_latency.h_max / 1000.0));
	json_object_set_new(lat, "mean", json_real(hist_mean(&st->st_latency) / 1000.0));
	for (i = 0; i < STATS_STATUS_MAX; i++) {
		if (st->st_status[i] == 0)
			continue;
		snprintf(code, sizeof(code), "%zu", i);
		json_object_set_new(status, code, json_integer((json_int_t)st->st_status[i]));
	}
	for (i = 0; i < ERR__MAX; i++)
		json_object_set_new(errors, stats_err_name((enum lg_err)i),
		    json_integer((json_int_t)st->st_errors[i]));
	for (i = 0; i < st->st_nbackends; i++)
		json_object_set_new(backends, st->st_backends[i].sb_name,
		    json_integer((json_int_t)st->st_backends[i].sb_n));
	json_object_set_new(o, "auth_failures", json_integer((json_int_t)st->st_auth_failures));
	json_object_set_new(o, "auth_failure_rate", json_real(st->st_requests ?
	    (double)st->st_auth_failures / (double)st->st_requests : 0.0));
	json_object_set_new(o, "error_rate", json_real(stats_error_rate(st)));
	json_object_set_new(logins, "ok", json_integer((json_int_t)st->st_logins_ok));
	json_object_set_new(logins, "failed", json_integer((json_int_t)st->st_logins_failed));
	json_object_set_new(o, "backends_other", json_integer((json_int_t)st->st_backends_other));
	json_object_set_new(o, "no_backend", json_integer((json_int_t)st->st_no_backend));
	json_object_set_new(conf, "url", json_string(cfg->url_text));
	json_object_set_new(conf, "flow", json_string(report_flow(cfg->flow)));
	json_object_set_new(conf, "path", json_string(cfg->path));
	json_object_set_new(conf, "users", json_integer(cfg->users));
	json_object_set_new(conf, "concurrency", json_integer(cfg->concurrency));
	json_object_set_new(conf, "threads", json_integer(cfg->threads));
	json_object_set_new(conf, "rate", json_real(cfg->rate));
	json_object_set_new(o, "latency_ms", lat);
	json_object_set_new(o, "status", status);
	json_object_set_new(o, "errors", errors);
	json_object_set_new(o, "backends", backends);
	json_object_set_new(o, "logins", logins);
	json_object_set_new(o, "config", conf);
	json_object_set_new(o, "series", report_series(st));
	return o;
fail:
	json_decref(o);
	json_decref(lat);
	json_decref(status);
	json_decref(errors);
	json_decref(backends);
	json_decref(logins);
	json_decref(conf);
	return NULL;
}

int
report_json(const struct stats *st, const struct lg_config *cfg, const char *path)
{
	json_t *o;
	int rc;

	if ((o = report_object(st, cfg)) == NULL) {
		log_warnx("out of memory building the JSON report");
		return -1;
	}
	if (strcmp(path, "-") == 0) {
		rc = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
	} else
		rc = json_dump_file(o, path, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	if (rc == -1)
		log_warn("cannot write %s", path);
	return rc;
}

int
report_check(const struct stats *st, const struct lg_config *cfg)
{
	double rate = stats_error_rate(st), p99 = report_ms(st, 99);
	int bad = 0;

	if (cfg->max_error_rate >= 0 && rate > cfg->max_error_rate) {
		fprintf(stderr, "loadgen: error rate %.4f is above --max-error-rate %g\n", rate,
		    cfg->max_error_rate);
		bad = 1;
	}
	if (cfg->max_p99_ms >= 0 && p99 > cfg->max_p99_ms) {
		fprintf(stderr, "loadgen: p99 latency %.3f ms is above --max-p99-ms %g\n", p99,
		    cfg->max_p99_ms);
		bad = 1;
	}
	return bad ? -1 : 0;
}

/* ---- the progress line ---- */

static pthread_t		 progress_thread;
static atomic_int		 progress_stop;
static int			 progress_on;
static const struct worker	*progress_workers;
static size_t			 progress_n;
static uint64_t			 progress_start_us;

static void *
report_progress(void *arg)
{
	struct timespec half = { 0, 500000000 };
	uint64_t req, err, http;
	double secs;
	size_t i;

	while (!atomic_load(&progress_stop)) {
		nanosleep(&half, NULL);
		req = err = http = 0;
		for (i = 0; i < progress_n; i++) {
			req += atomic_load_explicit(&progress_workers[i].w_stats.st_live_requests,
			    memory_order_relaxed);
			err += atomic_load_explicit(&progress_workers[i].w_stats.st_live_errors,
			    memory_order_relaxed);
			http += atomic_load_explicit(
			    &progress_workers[i].w_stats.st_live_http_errors, memory_order_relaxed);
		}
		secs = (double)(lg_now_us() - progress_start_us) / 1e6;
		fprintf(stderr, "\r\033[Kloadgen: %.1f s  %llu requests  %.0f/s  errors %llu  "
		    "status>=400 %llu", secs, (unsigned long long)req,
		    secs > 0 ? (double)req / secs : 0.0, (unsigned long long)err,
		    (unsigned long long)http);
		fflush(stderr);
	}
	return NULL;
}

void
report_progress_start(const struct worker *workers, size_t n, uint64_t start_us)
{
	if (!isatty(STDERR_FILENO))
		return;
	progress_workers = workers;
	progress_n = n;
	progress_start_us = start_us;
	if (pthread_create(&progress_thread, NULL, report_progress, NULL) == 0)
		progress_on = 1;
}

void
report_progress_stop(void)
{
	if (!progress_on)
		return;
	atomic_store(&progress_stop, 1);
	pthread_join(progress_thread, NULL);
	fprintf(stderr, "\r\033[K");
	fflush(stderr);
	progress_on = 0;
}
