/*
 * A log-linear latency histogram in the manner of HdrHistogram: fixed memory (HIST_BUCKETS
 * counters), exact below HIST_SUB, and above that HIST_HALF buckets per power of two, so that
 * every reported percentile is within 1/(2*HIST_HALF) of the true value.
 */
#include "loadgen.h"

#include <string.h>

void
hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

/* Values below HIST_SUB map to themselves; a larger v with its top bit at position m keeps its
 * HIST_SUB_BITS most significant bits: shift e = m - (HIST_SUB_BITS - 1), mantissa v >> e in
 * [HIST_HALF, HIST_SUB), index e * HIST_HALF + mantissa. The ranges join without gaps. */
size_t
hist_index(uint64_t v)
{
	unsigned int m, e;

	if (v >= (UINT64_C(1) << HIST_MAX_BITS))
		v = (UINT64_C(1) << HIST_MAX_BITS) - 1;
	if (v < HIST_SUB)
		return (size_t)v;
	m = 63 - (unsigned int)__builtin_clzll(v);
	e = m - (HIST_SUB_BITS - 1);
	return (size_t)e * HIST_HALF + (size_t)(v >> e);
}

uint64_t
hist_lower(size_t idx)
{
	size_t e;

	if (idx < HIST_SUB)
		return idx;
	e = idx / HIST_HALF - 1;
	return (uint64_t)(idx - e * HIST_HALF) << e;
}

/* The width of bucket idx: 1 for the exact ones, 2^e above. */
static uint64_t
hist_width(size_t idx)
{
	if (idx < HIST_SUB)
		return 1;
	return UINT64_C(1) << (idx / HIST_HALF - 1);
}

void
hist_record(struct hist *h, uint64_t v)
{
	h->h_buckets[hist_index(v)]++;
	if (h->h_count == 0 || v < h->h_min)
		h->h_min = v;
	if (v > h->h_max)
		h->h_max = v;
	h->h_count++;
	h->h_sum += (double)v;
}

void
hist_merge(struct hist *dst, const struct hist *src)
{
	size_t i;

	if (src->h_count == 0)
		return;
	for (i = 0; i < HIST_BUCKETS; i++)
		dst->h_buckets[i] += src->h_buckets[i];
	if (dst->h_count == 0 || src->h_min < dst->h_min)
		dst->h_min = src->h_min;
	if (src->h_max > dst->h_max)
		dst->h_max = src->h_max;
	dst->h_count += src->h_count;
	dst->h_sum += src->h_sum;
}

/* The rank is the nearest-rank definition (ceil(p/100 * n)), the same as indexing a sorted
 * array; the answer is the middle of the bucket holding that rank, kept within [min, max]. */
uint64_t
hist_percentile(const struct hist *h, double p)
{
	uint64_t rank, seen = 0, v;
	size_t i;

	if (h->h_count == 0)
		return 0;
	if (p >= 100.0)
		return h->h_max;
	rank = (uint64_t)(p / 100.0 * (double)h->h_count);
	if ((double)rank < p / 100.0 * (double)h->h_count)
		rank++;
	if (rank == 0)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->h_buckets[i];
		if (seen >= rank)
			break;
	}
	if (i == HIST_BUCKETS)
		return h->h_max;
	v = hist_lower(i) + (hist_width(i) - 1) / 2;
	if (v < h->h_min)
		v = h->h_min;
	if (v > h->h_max)
		v = h->h_max;
	return v;
}

double
hist_mean(const struct hist *h)
{
	return h->h_count ? h->h_sum / (double)h->h_count : 0.0;
}
