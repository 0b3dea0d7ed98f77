/* The Prometheus text format (see prom.h). */
#include <stdio.h>
#include <stdlib.h>

#include "prom.h"

void
prom_family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
prom_sample(struct evbuffer *out, const char *name, const char *labels,
    unsigned long long value)
{
	if (labels != NULL)
		evbuffer_add_printf(out, "%s{%s} %llu\n", name, labels, value);
	else
		evbuffer_add_printf(out, "%s %llu\n", name, value);
}

void
prom_counter(struct evbuffer *out, const char *name, const char *help,
    unsigned long long value)
{
	prom_family(out, name, "counter", help);
	prom_sample(out, name, NULL, value);
}

void
prom_gauge(struct evbuffer *out, const char *name, const char *help, long long value)
{
	prom_family(out, name, "gauge", help);
	evbuffer_add_printf(out, "%s %lld\n", name, value);
}

void
prom_threads(struct evbuffer *out, const struct prom_series *series, size_t nseries,
    int nthreads, prom_row_fn row, void *arg)
{
	unsigned long long *v;
	char labels[32];
	size_t f;
	int i;

	if (nseries > PROM_MAX_SERIES || nthreads < 1 ||
	    (v = calloc((size_t)nthreads, PROM_MAX_SERIES * sizeof(*v))) == NULL)
		return;		/* a caller's mistake, or out of memory: no samples at all */
	/* Each thread's row is read once, so that its values are of one moment. */
	for (i = 0; i < nthreads; i++)
		row(arg, i, v + (size_t)i * PROM_MAX_SERIES);
	for (f = 0; f < nseries; f++) {
		prom_family(out, series[f].name, series[f].type, series[f].help);
		for (i = 0; i < nthreads; i++) {
			snprintf(labels, sizeof(labels), "thread=\"%d\"", i);
			prom_sample(out, series[f].name, labels, v[(size_t)i * PROM_MAX_SERIES + f]);
		}
	}
	free(v);
}

void
prom_histogram(struct evbuffer *out, const char *name, const char *labels,
    const double *bounds, const unsigned long long *counts, size_t n, double sum)
{
	const char *sep = labels != NULL ? "," : "";
	unsigned long long cum = 0;
	size_t b;

	if (labels == NULL)
		labels = "";
	for (b = 0; b < n; b++) {
		cum += counts[b];
		evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
		    bounds[b], cum);
	}
	cum += counts[n];
	evbuffer_add_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, cum);
	if (*labels != '\0') {
		evbuffer_add_printf(out, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, sum,
		    name, labels, cum);
	} else {
		evbuffer_add_printf(out, "%s_sum %.6f\n%s_count %llu\n", name, sum, name, cum);
	}
}
