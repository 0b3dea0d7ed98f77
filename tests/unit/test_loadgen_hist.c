/* loadgen's latency histogram against a sorted-array reference: every percentile within the
 * promised relative error, across several distributions, plus the bucket layout and merging. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "unit.h"
#include "../../loadgen/loadgen.h"

#define N 200000

static uint64_t rng = 88172645463325252ULL;

static uint64_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static double
uniform01(void)
{
	return (double)(next_rand() >> 11) / 9007199254740992.0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Records vals, then compares each percentile with the nearest-rank answer of the sorted
 * array: the error must stay below 1/(2*HIST_HALF) of the true value (exact below HIST_SUB). */
static void
check_against_sorted(uint64_t *vals, size_t n)
{
	static struct hist h;
	static const double ps[] = { 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100 };
	size_t i, rank;
	uint64_t got, want;
	double err, bound;

	hist_init(&h);
	for (i = 0; i < n; i++)
		hist_record(&h, vals[i]);
	qsort(vals, n, sizeof(*vals), cmp_u64);
	CHECK_INT(h.h_count, n);
	CHECK_INT(h.h_min, vals[0]);
	CHECK_INT(h.h_max, vals[n - 1]);
	for (i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		rank = (size_t)ceil(ps[i] / 100.0 * (double)n);
		if (rank == 0)
			rank = 1;
		want = vals[rank - 1];
		got = hist_percentile(&h, ps[i]);
		err = fabs((double)got - (double)want);
		bound = want < HIST_SUB ? 0 : (double)want / (2.0 * HIST_HALF);
		if (!CHECK(err <= bound))
			fprintf(stderr, "    p%g: got %llu, want %llu (bound %.1f)\n", ps[i],
			    (unsigned long long)got, (unsigned long long)want, bound);
	}
}

static void
hist_uniform(void)
{
	static uint64_t v[N];
	size_t i;

	for (i = 0; i < N; i++)
		v[i] = 1 + next_rand() % 100000;
	check_against_sorted(v, N);
}

static void
hist_lognormal(void)
{
	static uint64_t v[N];
	size_t i;
	double u1, u2, z;

	/* Latency-like: median around 1 ms, a long tail. */
	for (i = 0; i < N; i++) {
		u1 = uniform01() + 1e-12;
		u2 = uniform01();
		z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
		v[i] = (uint64_t)exp(log(1000.0) + 1.2 * z);
	}
	check_against_sorted(v, N);
}

static void
hist_bimodal_with_outliers(void)
{
	static uint64_t v[N];
	size_t i;

	for (i = 0; i < N; i++) {
		if (i % 1000 == 0)
			v[i] = 5000000 + next_rand() % 5000000;	/* rare multi-second stalls */
		else if (i % 2)
			v[i] = 200 + next_rand() % 50;
		else
			v[i] = 20000 + next_rand() % 3000;
	}
	check_against_sorted(v, N);
}

static void
hist_small_exact(void)
{
	static uint64_t v[1000];
	size_t i;

	for (i = 0; i < 1000; i++)
		v[i] = next_rand() % HIST_SUB;
	check_against_sorted(v, 1000);
}

static void
hist_single_value(void)
{
	struct hist *h = malloc(sizeof(*h));

	hist_init(h);
	CHECK_INT(hist_percentile(h, 50), 0);	/* empty */
	hist_record(h, 123456);
	CHECK_INT(hist_percentile(h, 50), 123456);	/* clamped to [min, max] */
	CHECK_INT(hist_percentile(h, 99.9), 123456);
	CHECK_INT(hist_percentile(h, 100), 123456);
	free(h);
}

static void
hist_layout(void)
{
	uint64_t v;
	size_t i, prev = 0;

	/* Contiguous, monotonic, each value within its bucket, bounded memory. */
	for (v = 0; v < (1u << 20); v += 1 + v / 97) {
		i = hist_index(v);
		CHECK(i >= prev);
		CHECK(i < HIST_BUCKETS);
		CHECK(hist_lower(i) <= v);
		if (i + 1 < HIST_BUCKETS)
			CHECK(hist_lower(i + 1) > v);
		prev = i;
	}
	for (i = 1; i < HIST_BUCKETS; i++)
		CHECK(hist_lower(i) > hist_lower(i - 1));
	CHECK_INT(hist_index(HIST_SUB - 1), HIST_SUB - 1);
	CHECK_INT(hist_index(HIST_SUB), HIST_SUB);
	CHECK_INT(hist_index(UINT64_MAX), HIST_BUCKETS - 1);	/* clamped, not out of bounds */
	CHECK(sizeof(struct hist) < 32 * 1024);
}

static void
hist_merge_equals_one(void)
{
	static struct hist a, b, all;
	uint64_t v;
	size_t i;

	hist_init(&a);
	hist_init(&b);
	hist_init(&all);
	for (i = 0; i < 50000; i++) {
		v = next_rand() % 1000000;
		hist_record(i % 3 ? &a : &b, v);
		hist_record(&all, v);
	}
	hist_merge(&a, &b);
	CHECK_INT(a.h_count, all.h_count);
	CHECK_INT(a.h_min, all.h_min);
	CHECK_INT(a.h_max, all.h_max);
	CHECK(memcmp(a.h_buckets, all.h_buckets, sizeof(a.h_buckets)) == 0);
	CHECK_INT(hist_percentile(&a, 99), hist_percentile(&all, 99));
	CHECK(fabs(hist_mean(&a) - hist_mean(&all)) < 1e-6);
}

UNIT_MAIN(CASE(hist_uniform), CASE(hist_lognormal), CASE(hist_bimodal_with_outliers),
    CASE(hist_small_exact), CASE(hist_single_value), CASE(hist_layout), CASE(hist_merge_equals_one))
