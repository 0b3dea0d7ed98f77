/*
 * The store interface of session_server (see store.h): session ids and their keys, dispatch to
 * the back end, and the operation counters and latency histograms every back end shares.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "prom.h"
#include "store.h"

static const char *const op_names[STORE_NOPS] = { "create", "lookup", "delete",
    "delete_user" };
static const char *const result_names[] = { "ok", "not_found", "expired", "unavailable" };
#define NRESULTS	(sizeof(result_names) / sizeof(result_names[0]))
static const double lat_bounds[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1 };
#define NBOUNDS		(sizeof(lat_bounds) / sizeof(lat_bounds[0]))

/* Process-wide, updated by every thread without locks. */
static struct {
	atomic_ulong	ops[STORE_NOPS][NRESULTS];
	atomic_ulong	lat[STORE_NOPS][NBOUNDS + 1];
	atomic_ulong	lat_ns_sum[STORE_NOPS];
	atomic_ulong	expired;
	atomic_ulong	evicted;
} counters;

int64_t
store_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t
store_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
store_observe(enum store_op op, enum store_result res, uint64_t start)
{
	uint64_t ns = store_clock() - start;
	double secs = (double)ns / 1e9;
	size_t b;

	for (b = 0; b < NBOUNDS && secs > lat_bounds[b]; b++)
		;
	atomic_fetch_add(&counters.ops[op][res], 1);
	atomic_fetch_add(&counters.lat[op][b], 1);
	atomic_fetch_add(&counters.lat_ns_sum[op], ns);
}

void
store_count_expired(unsigned long n)
{
	atomic_fetch_add(&counters.expired, n);
}

void
store_count_evicted(unsigned long n)
{
	atomic_fetch_add(&counters.evicted, n);
}

void
store_free(struct store *st)
{
	if (st != NULL)
		st->st_ops->free(st);
}

struct store_conn *
store_conn_new(struct store *st, struct event_base *base, int idx)
{
	return st->st_ops->conn_new(st, base, idx);
}

void
store_conn_free(struct store_conn *sc)
{
	if (sc != NULL)
		sc->sc_store->st_ops->conn_free(sc);
}

void
store_create(struct store_conn *sc, const char *key, const struct session *sess, store_cb cb,
    void *arg)
{
	sc->sc_store->st_ops->create(sc, key, sess, cb, arg);
}

void
store_lookup(struct store_conn *sc, const char *key, int64_t now, store_cb cb, void *arg)
{
	sc->sc_store->st_ops->lookup(sc, key, now, cb, arg);
}

void
store_delete(struct store_conn *sc, const char *key, int64_t now, store_cb cb, void *arg)
{
	sc->sc_store->st_ops->remove(sc, key, now, cb, arg);
}

void
store_delete_user(struct store_conn *sc, const char *user, store_count_cb cb, void *arg)
{
	sc->sc_store->st_ops->remove_user(sc, user, cb, arg);
}

int
store_shared(const struct store_conn *sc)
{
	return sc->sc_store->st_ops->shared;
}

int
store_up(struct store_conn *sc)
{
	return sc->sc_store->st_ops->up(sc);
}

const char *
store_name(const struct store_conn *sc)
{
	return sc->sc_store->st_ops->name;
}

/* The prom_row_fn of session_store_up: arg is store_metrics()'s conns. */
static void
store_up_row(void *arg, int i, unsigned long long *v)
{
	struct store_conn **conns = arg;

	v[0] = (unsigned long long)store_up(conns[i]);
}

void
store_metrics(struct store_conn **conns, int n, struct evbuffer *out)
{
	static const struct prom_series up = { "session_store_up", "gauge",
	    "1 when the store answers, by event-loop thread." };
	struct store_conn *sc = conns[0];	/* for what every thread shares */
	unsigned long long counts[NBOUNDS + 1], v;
	char labels[160];
	size_t op, res, b;
	long active;

	prom_family(out, "session_store_operations_total", "counter",
	    "Session store operations, by operation and result.");
	for (op = 0; op < STORE_NOPS; op++)
		for (res = 0; res < NRESULTS; res++)
			if ((v = atomic_load(&counters.ops[op][res])) != 0) {
				snprintf(labels, sizeof(labels), "store=\"%s\",op=\"%s\",result=\"%s\"",
				    store_name(sc), op_names[op], result_names[res]);
				prom_sample(out, "session_store_operations_total", labels, v);
			}
	prom_family(out, "session_store_duration_seconds", "histogram",
	    "Session store latency, by operation.");
	for (op = 0; op < STORE_NOPS; op++) {
		for (b = 0; b <= NBOUNDS; b++)
			counts[b] = atomic_load(&counters.lat[op][b]);
		snprintf(labels, sizeof(labels), "op=\"%s\"", op_names[op]);
		prom_histogram(out, "session_store_duration_seconds", labels, lat_bounds, counts,
		    NBOUNDS, atomic_load(&counters.lat_ns_sum[op]) / 1e9);
	}
	prom_counter(out, "sessions_created_total", "Sessions created by logins.",
	    atomic_load(&counters.ops[STORE_OP_CREATE][STORE_OK]));
	prom_counter(out, "sessions_expired_total", "Sessions dropped at a deadline (memory store).",
	    atomic_load(&counters.expired));
	prom_counter(out, "sessions_evicted_total", "Sessions evicted by --max-sessions.",
	    atomic_load(&counters.evicted));
	if ((active = sc->sc_store->st_ops->count(sc)) >= 0) {
		prom_family(out, "sessions_active", "gauge", "Sessions the store holds.");
		snprintf(labels, sizeof(labels), "store=\"%s\"", store_name(sc));
		prom_sample(out, "sessions_active", labels, (unsigned long long)active);
	}
	prom_threads(out, &up, 1, n, store_up_row, conns);
	sc->sc_store->st_ops->metrics(conns, n, out);
}
