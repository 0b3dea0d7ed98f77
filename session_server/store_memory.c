/*
 * The in-process session store: one table shared by all event-loop threads of this process, so
 * a session made on thread 1 is found on thread 2. It is also exactly what breaks behind a
 * round-robin balancer: another process has another table.
 *
 * A mutex guards the table; every critical section is a hash look-up and a few pointer moves,
 * far shorter than the HTTP work around it. Two lists order the sessions: by last use (the
 * head idles out first, and is the one evicted when full) and by creation (the head reaches the
 * absolute deadline first), so the sweep timer only ever touches sessions that are due.
 *
 * When --max-sessions is reached, the least recently used session is evicted rather than the
 * login refused: refusing would let whoever filled the table lock every other user out until
 * sessions idle away, while evicting costs only the most idle user a new login. Evictions are
 * logged and counted so that an undersized table shows.
 */
#include <sys/queue.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "prom.h"
#include "store.h"

#define STORE_MEMORY_SWEEP_MS	1000

struct store_memory_entry {
	char				 me_key[STORE_KEY_LEN + 1];
	struct store_memory_entry	*me_next;	/* hash chain */
	TAILQ_ENTRY(store_memory_entry)	 me_lru;	/* by last use, oldest first */
	TAILQ_ENTRY(store_memory_entry)	 me_age;	/* by creation, oldest first */
	struct session			 me_sess;
};
TAILQ_HEAD(store_memory_list, store_memory_entry);

struct store_memory {
	struct store			 ms_store;
	pthread_mutex_t			 ms_mu;
	struct store_memory_entry	**ms_buckets;
	size_t				 ms_mask;	/* buckets - 1, a power of two minus one */
	struct store_memory_list	 ms_lru;
	struct store_memory_list	 ms_age;
	atomic_long			 ms_count;
};

struct store_memory_conn {
	struct store_conn	 mc_conn;
	struct event		*mc_sweepev;	/* thread 0 only */
};

/* FNV-1a: the keys are SHA-256 outputs of server-chosen ids, so a simple mix spreads them. */
static size_t
store_memory_hash(const char *key)
{
	uint64_t h = 14695981039346656037u;
	int i;

	for (i = 0; i < STORE_KEY_LEN; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211u;
	return (size_t)h;
}

static struct store_memory_entry **
store_memory_slot(struct store_memory *ms, const char *key)
{
	struct store_memory_entry **pp = &ms->ms_buckets[store_memory_hash(key) & ms->ms_mask];

	while (*pp != NULL && strcmp((*pp)->me_key, key) != 0)
		pp = &(*pp)->me_next;
	return pp;
}

/* Unlinks the entry at *pp from the chain and both lists and frees it. Called with ms_mu held. */
static void
store_memory_unlink(struct store_memory *ms, struct store_memory_entry **pp)
{
	struct store_memory_entry *e = *pp;

	*pp = e->me_next;
	TAILQ_REMOVE(&ms->ms_lru, e, me_lru);
	TAILQ_REMOVE(&ms->ms_age, e, me_age);
	atomic_fetch_sub(&ms->ms_count, 1);
	free(e);
}

static void
store_memory_remove_entry(struct store_memory *ms, struct store_memory_entry *e)
{
	store_memory_unlink(ms, store_memory_slot(ms, e->me_key));
}

static int
store_memory_expired(const struct store_limits *lim, const struct session *s, int64_t now)
{
	return now - s->s_seen >= lim->idle_ms || now - s->s_created >= lim->absolute_ms;
}

/* Drops every session past a deadline. Called with ms_mu held; returns how many. */
static unsigned long
store_memory_sweep_locked(struct store_memory *ms, int64_t now)
{
	const struct store_limits *lim = &ms->ms_store.st_limits;
	struct store_memory_entry *e;
	unsigned long n = 0;

	while ((e = TAILQ_FIRST(&ms->ms_lru)) != NULL && now - e->me_sess.s_seen >= lim->idle_ms) {
		store_memory_remove_entry(ms, e);
		n++;
	}
	while ((e = TAILQ_FIRST(&ms->ms_age)) != NULL &&
	    now - e->me_sess.s_created >= lim->absolute_ms) {
		store_memory_remove_entry(ms, e);
		n++;
	}
	return n;
}

static void
store_memory_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct store_memory *ms = arg;
	unsigned long n;

	pthread_mutex_lock(&ms->ms_mu);
	n = store_memory_sweep_locked(ms, store_now());
	pthread_mutex_unlock(&ms->ms_mu);
	if (n > 0) {
		store_count_expired(n);
		log_debug("%s: %lu sessions expired", __func__, n);
	}
}

static void
store_memory_create(struct store_conn *sc, const char *key, const struct session *sess, store_cb cb,
    void *arg)
{
	struct store_memory *ms = (struct store_memory *)sc->sc_store;
	uint64_t start = store_clock();
	struct store_memory_entry *e, **pp, *old;
	int evicted = 0;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		store_observe(STORE_OP_CREATE, STORE_UNAVAILABLE, start);
		cb(STORE_UNAVAILABLE, NULL, arg);
		return;
	}
	memcpy(e->me_key, key, STORE_KEY_LEN);
	e->me_sess = *sess;
	pthread_mutex_lock(&ms->ms_mu);
	if (atomic_load(&ms->ms_count) >= ms->ms_store.st_limits.max_sessions) {
		old = TAILQ_FIRST(&ms->ms_lru);
		store_memory_remove_entry(ms, old);
		evicted = 1;
	}
	pp = store_memory_slot(ms, key);
	if (*pp != NULL)	/* a 256-bit collision: replace rather than keep two */
		store_memory_unlink(ms, pp);
	e->me_next = ms->ms_buckets[store_memory_hash(key) & ms->ms_mask];
	ms->ms_buckets[store_memory_hash(key) & ms->ms_mask] = e;
	TAILQ_INSERT_TAIL(&ms->ms_lru, e, me_lru);
	TAILQ_INSERT_TAIL(&ms->ms_age, e, me_age);
	atomic_fetch_add(&ms->ms_count, 1);
	pthread_mutex_unlock(&ms->ms_mu);
	if (evicted) {
		store_count_evicted(1);
		log_warnx("session table full (--max-sessions %ld): evicted the least recently used",
		    ms->ms_store.st_limits.max_sessions);
	}
	store_observe(STORE_OP_CREATE, STORE_OK, start);
	cb(STORE_OK, NULL, arg);
}

static void
store_memory_lookup(struct store_conn *sc, const char *key, int64_t now, store_cb cb, void *arg)
{
	struct store_memory *ms = (struct store_memory *)sc->sc_store;
	uint64_t start = store_clock();
	enum store_result res = STORE_NOTFOUND;
	struct store_memory_entry **pp, *e;
	struct session copy;

	pthread_mutex_lock(&ms->ms_mu);
	pp = store_memory_slot(ms, key);
	if ((e = *pp) != NULL) {
		if (store_memory_expired(&ms->ms_store.st_limits, &e->me_sess, now)) {
			store_memory_unlink(ms, pp);
			res = STORE_EXPIRED;
		} else {
			e->me_sess.s_seen = now;
			TAILQ_REMOVE(&ms->ms_lru, e, me_lru);
			TAILQ_INSERT_TAIL(&ms->ms_lru, e, me_lru);
			copy = e->me_sess;
			res = STORE_OK;
		}
	}
	pthread_mutex_unlock(&ms->ms_mu);
	if (res == STORE_EXPIRED)
		store_count_expired(1);
	store_observe(STORE_OP_LOOKUP, res, start);
	cb(res, res == STORE_OK ? &copy : NULL, arg);
}

static void
store_memory_remove(struct store_conn *sc, const char *key, int64_t now, store_cb cb, void *arg)
{
	struct store_memory *ms = (struct store_memory *)sc->sc_store;
	uint64_t start = store_clock();
	enum store_result res = STORE_NOTFOUND;
	struct store_memory_entry **pp;

	pthread_mutex_lock(&ms->ms_mu);
	pp = store_memory_slot(ms, key);
	if (*pp != NULL) {
		res = store_memory_expired(&ms->ms_store.st_limits, &(*pp)->me_sess, now) ?
		    STORE_EXPIRED : STORE_OK;
		store_memory_unlink(ms, pp);
	}
	pthread_mutex_unlock(&ms->ms_mu);
	store_observe(STORE_OP_DELETE, res, start);
	cb(res, NULL, arg);
}

/* Walks the whole table: a per-user index would cost every login to save this rare call. */
static void
store_memory_remove_user(struct store_conn *sc, const char *user, store_count_cb cb, void *arg)
{
	struct store_memory *ms = (struct store_memory *)sc->sc_store;
	uint64_t start = store_clock();
	struct store_memory_entry *e, *next;
	long n = 0;

	pthread_mutex_lock(&ms->ms_mu);
	for (e = TAILQ_FIRST(&ms->ms_age); e != NULL; e = next) {
		next = TAILQ_NEXT(e, me_age);
		if (strcmp(e->me_sess.s_user, user) == 0) {
			store_memory_remove_entry(ms, e);
			n++;
		}
	}
	pthread_mutex_unlock(&ms->ms_mu);
	store_observe(STORE_OP_DELETE_USER, STORE_OK, start);
	cb(STORE_OK, n, arg);
}

static struct store_conn *
store_memory_conn_new(struct store *st, struct event_base *base, int idx)
{
	static const struct timeval sweep = { STORE_MEMORY_SWEEP_MS / 1000,
	    (STORE_MEMORY_SWEEP_MS % 1000) * 1000 };
	struct store_memory_conn *mc;

	if ((mc = calloc(1, sizeof(*mc))) == NULL)
		return NULL;
	mc->mc_conn.sc_store = st;
	mc->mc_conn.sc_base = base;
	/* One sweeper is enough for the shared table. */
	if (idx == 0) {
		if ((mc->mc_sweepev = event_new(base, -1, EV_PERSIST, store_memory_sweep, st)) == NULL ||
		    event_add(mc->mc_sweepev, &sweep) == -1) {
			if (mc->mc_sweepev != NULL)
				event_free(mc->mc_sweepev);
			free(mc);
			return NULL;
		}
	}
	return &mc->mc_conn;
}

static void
store_memory_conn_free(struct store_conn *sc)
{
	struct store_memory_conn *mc = (struct store_memory_conn *)sc;

	if (mc->mc_sweepev != NULL)
		event_free(mc->mc_sweepev);
	free(mc);
}

static int
store_memory_up(struct store_conn *sc)
{
	return 1;
}

static long
store_memory_count(struct store_conn *sc)
{
	return atomic_load(&((struct store_memory *)sc->sc_store)->ms_count);
}

static void
store_memory_metrics(struct store_conn **conns, int n, struct evbuffer *out)
{
	prom_gauge(out, "sessions_max", "The --max-sessions bound.",
	    conns[0]->sc_store->st_limits.max_sessions);
}

static void
store_memory_free(struct store *st)
{
	struct store_memory *ms = (struct store_memory *)st;
	struct store_memory_entry *e;

	while ((e = TAILQ_FIRST(&ms->ms_age)) != NULL)
		store_memory_remove_entry(ms, e);
	pthread_mutex_destroy(&ms->ms_mu);
	free(ms->ms_buckets);
	free(ms);
}

static const struct store_ops store_memory_ops = {
	.name = "memory",
	.shared = 0,
	.conn_new = store_memory_conn_new,
	.conn_free = store_memory_conn_free,
	.create = store_memory_create,
	.lookup = store_memory_lookup,
	.remove = store_memory_remove,
	.remove_user = store_memory_remove_user,
	.up = store_memory_up,
	.count = store_memory_count,
	.metrics = store_memory_metrics,
	.free = store_memory_free,
};

struct store *
store_memory_new(const struct store_limits *lim)
{
	struct store_memory *ms;
	size_t n = 1024;

	if (lim->max_sessions < 1 || (ms = calloc(1, sizeof(*ms))) == NULL)
		return NULL;
	/* About one bucket per session at the bound keeps chains short without resizing. */
	while (n < (size_t)lim->max_sessions && n < ((size_t)1 << 24))
		n <<= 1;
	if ((ms->ms_buckets = calloc(n, sizeof(*ms->ms_buckets))) == NULL) {
		free(ms);
		return NULL;
	}
	ms->ms_mask = n - 1;
	ms->ms_store.st_ops = &store_memory_ops;
	ms->ms_store.st_limits = *lim;
	pthread_mutex_init(&ms->ms_mu, NULL);
	TAILQ_INIT(&ms->ms_lru);
	TAILQ_INIT(&ms->ms_age);
	return &ms->ms_store;
}
