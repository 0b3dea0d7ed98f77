/*
 * Small helpers for the Prometheus text format (version 0.0.4), so that every program writes
 * its metrics the same way: a family header, one sample, a histogram.
 */
#ifndef PROM_H
#define PROM_H

#include <stddef.h>

#include <event2/buffer.h>

/* "# HELP name help" and "# TYPE name type" (type: "counter", "gauge", "histogram"). */
void prom_family(struct evbuffer *out, const char *name, const char *type, const char *help);
/* One sample "name{labels} value"; labels is the text between the braces, or NULL. */
void prom_sample(struct evbuffer *out, const char *name, const char *labels,
    unsigned long long value);
/* A counter family with a single sample without labels. */
void prom_counter(struct evbuffer *out, const char *name, const char *help,
    unsigned long long value);
/* A gauge family with a single sample without labels. */
void prom_gauge(struct evbuffer *out, const char *name, const char *help, long long value);

#define PROM_MAX_SERIES	8	/* families in one prom_threads() call */

/* One family of per-thread samples, for prom_threads(). */
struct prom_series {
	const char	*name;
	const char	*type;		/* "counter" or "gauge" */
	const char	*help;
};

/* Fills v[0..nseries) with thread's values, in the order of the series. */
typedef void (*prom_row_fn)(void *arg, int thread, unsigned long long *v);

/*
 * Per-thread families: for each of series[0..nseries) (at most PROM_MAX_SERIES), its header
 * once, then one sample per thread labelled thread="0" .. thread="nthreads-1", so that every
 * scrape lists every thread and a family's samples stay together, as the format wants.
 * row(arg, i, v) is called once for each thread i, before anything is written.
 */
void prom_threads(struct evbuffer *out, const struct prom_series *series, size_t nseries,
    int nthreads, prom_row_fn row, void *arg);

/*
 * The samples of one histogram series: counts[0..n] per bucket (not cumulative; counts[n] is
 * above the last bound), bounds[0..n) in seconds, sum in seconds. labels may be NULL; the family
 * header is the caller's (prom_family), so that several series can share it.
 */
void prom_histogram(struct evbuffer *out, const char *name, const char *labels,
    const double *bounds, const unsigned long long *counts, size_t n, double sum);

#endif
