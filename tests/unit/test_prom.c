/* Unit tests for common/prom.c: the Prometheus text format of counters, histograms and
 * per-thread families. */
#include <string.h>

#include <event2/buffer.h>

#include "unit.h"
#include "prom.h"

static struct evbuffer *out;

/* The text written so far, NUL-terminated; the buffer is emptied for the next check. */
static const char *
text(void)
{
	static char s[2048];
	size_t n = evbuffer_get_length(out);

	if (n >= sizeof(s))
		n = sizeof(s) - 1;
	evbuffer_remove(out, s, n);
	s[n] = '\0';
	return s;
}

static void
counter_and_sample(void)
{
	out = evbuffer_new();
	prom_counter(out, "x_total", "Things.", 7);
	CHECK_STR(text(), "# HELP x_total Things.\n# TYPE x_total counter\nx_total 7\n");
	prom_sample(out, "y", "a=\"b\"", 3);
	CHECK_STR(text(), "y{a=\"b\"} 3\n");
	prom_gauge(out, "g", "Level.", -2);
	CHECK_STR(text(), "# HELP g Level.\n# TYPE g gauge\ng -2\n");
	evbuffer_free(out);
}

static void
histogram_is_cumulative(void)
{
	static const double bounds[] = { 0.001, 0.01 };
	static const unsigned long long counts[] = { 1, 2, 3 };

	out = evbuffer_new();
	prom_histogram(out, "h", NULL, bounds, counts, 2, 0.5);
	CHECK_STR(text(), "h_bucket{le=\"0.001\"} 1\nh_bucket{le=\"0.01\"} 3\n"
	    "h_bucket{le=\"+Inf\"} 6\nh_sum 0.500000\nh_count 6\n");
	prom_histogram(out, "h", "op=\"get\"", bounds, counts, 2, 0.25);
	CHECK_STR(text(), "h_bucket{op=\"get\",le=\"0.001\"} 1\nh_bucket{op=\"get\",le=\"0.01\"} 3\n"
	    "h_bucket{op=\"get\",le=\"+Inf\"} 6\nh_sum{op=\"get\"} 0.250000\nh_count{op=\"get\"} 6\n");
	evbuffer_free(out);
}

/* A prom_row_fn: thread i's values are 10 * i + 1 and 10 * i + 2. */
static void
row(void *arg, int i, unsigned long long *v)
{
	v[0] = 10 * (unsigned long long)i + 1;
	v[1] = 10 * (unsigned long long)i + 2;
}

static void
threads_share_one_family_header(void)
{
	static const struct prom_series series[] = {
		{ "a_up", "gauge", "Up." }, { "b_total", "counter", "Bs." } };

	out = evbuffer_new();
	prom_threads(out, series, 2, 2, row, NULL);
	CHECK_STR(text(), "# HELP a_up Up.\n# TYPE a_up gauge\n"
	    "a_up{thread=\"0\"} 1\na_up{thread=\"1\"} 11\n"
	    "# HELP b_total Bs.\n# TYPE b_total counter\n"
	    "b_total{thread=\"0\"} 2\nb_total{thread=\"1\"} 12\n");
	evbuffer_free(out);
}

UNIT_MAIN(CASE(counter_and_sample), CASE(histogram_is_cumulative),
    CASE(threads_share_one_family_header))
