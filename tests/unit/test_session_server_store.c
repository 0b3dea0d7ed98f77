/*
 * Unit tests of session_server's store interface: session ids and keys, and the memory store's
 * deadlines, sliding idle timeout, LRU eviction and sharing between threads. Times are passed
 * in, so expiry is tested without sleeping.
 */
#include <pthread.h>
#include <string.h>

#include <event2/event.h>

#include "../../session_server/store.h"
#include "unit.h"

#define IDLE	1000
#define ABS	5000

struct answer {
	int			calls;
	enum store_result	res;
	struct session		sess;
};

static void
answer_cb(enum store_result res, const struct session *s, void *arg)
{
	struct answer *a = arg;

	a->calls++;
	a->res = res;
	if (s != NULL)
		a->sess = *s;
}

static struct store *
memory(long max)
{
	struct store_limits lim = { IDLE, ABS, max };

	return store_memory_new(&lim);
}

static void
put(struct store_conn *sc, const char *key, const char *user, int64_t t)
{
	struct session s;
	struct answer a = { 0 };

	CHECK_INT(strlen(key), STORE_KEY_LEN);
	memset(&s, 0, sizeof(s));
	snprintf(s.s_user, sizeof(s.s_user), "%s", user);
	s.s_created = s.s_seen = t;
	store_create(sc, key, &s, answer_cb, &a);
	CHECK_INT(a.calls, 1);
	CHECK_INT(a.res, STORE_OK);
}

static enum store_result
get(struct store_conn *sc, const char *key, int64_t t, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	store_lookup(sc, key, t, answer_cb, a);
	CHECK_INT(a->calls, 1);
	return a->res;
}

static void
test_memory_lookup_slides_idle(void)
{
	struct store *st = memory(10);
	struct store_conn *sc = store_conn_new(st, NULL, 1);
	struct answer a;
	int64_t t = store_now();

	put(sc, "k1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "alice", t);
	CHECK_INT(get(sc, "k1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t + IDLE - 1, &a), STORE_OK);
	CHECK_STR(a.sess.s_user, "alice");
	CHECK(a.sess.s_created == t);
	CHECK(a.sess.s_seen == t + IDLE - 1);
	/* Past the first idle deadline, but the look-up above slid it. */
	CHECK_INT(get(sc, "k1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t + 2 * IDLE - 2, &a),
	    STORE_OK);
	CHECK_INT(get(sc, "k1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t + 3 * IDLE - 2, &a),
	    STORE_EXPIRED);
	CHECK_INT(get(sc, "k1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t + 3 * IDLE - 1, &a),
	    STORE_NOTFOUND);
	CHECK_INT(get(sc, "nope-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t, &a), STORE_NOTFOUND);
	store_conn_free(sc);
	store_free(st);
}

static void
test_memory_absolute_deadline(void)
{
	struct store *st = memory(10);
	struct store_conn *sc = store_conn_new(st, NULL, 1);
	struct answer a;
	int64_t t = store_now(), u;

	put(sc, "k2-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bob", t);
	for (u = t; u < t + ABS; u += IDLE / 2)
		CHECK_INT(get(sc, "k2-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", u, &a), STORE_OK);
	CHECK_INT(get(sc, "k2-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t + ABS, &a), STORE_EXPIRED);
	store_conn_free(sc);
	store_free(st);
}

static void
test_memory_delete(void)
{
	struct store *st = memory(10);
	struct store_conn *sc = store_conn_new(st, NULL, 1);
	struct answer a = { 0 };
	int64_t t = store_now();

	put(sc, "k3-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "carol", t);
	put(sc, "k4-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "carol", t);
	store_delete(sc, "k3-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t, answer_cb, &a);
	CHECK_INT(a.calls, 1);
	CHECK_INT(a.res, STORE_OK);
	store_delete(sc, "k3-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t, answer_cb, &a);
	CHECK_INT(a.res, STORE_NOTFOUND);
	store_delete(sc, "k4-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t + IDLE, answer_cb, &a);
	CHECK_INT(a.res, STORE_EXPIRED);
	CHECK_INT(a.calls, 3);
	CHECK_INT(get(sc, "k4-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t, &a), STORE_NOTFOUND);
	store_conn_free(sc);
	store_free(st);
}

static void
test_memory_evicts_least_recently_used(void)
{
	struct store *st = memory(3);
	struct store_conn *sc = store_conn_new(st, NULL, 1);
	struct answer a;
	int64_t t = store_now();

	put(sc, "e1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "u1", t);
	put(sc, "e2-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "u2", t);
	put(sc, "e3-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "u3", t);
	CHECK_INT(get(sc, "e1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t + 1, &a), STORE_OK);
	put(sc, "e4-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "u4", t + 2);
	CHECK_INT(get(sc, "e2-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t + 3, &a), STORE_NOTFOUND);
	CHECK_INT(get(sc, "e1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t + 3, &a), STORE_OK);
	CHECK_INT(get(sc, "e3-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t + 3, &a), STORE_OK);
	CHECK_INT(get(sc, "e4-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t + 3, &a), STORE_OK);
	store_conn_free(sc);
	store_free(st);
}

#define NTHREADS	4
#define PER_THREAD	2000

struct worker {
	struct store	*st;
	int		 idx;
	int		 ok;
};

/* Each thread creates sessions, then looks up its own and its neighbour's. */
static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct store_conn *sc = store_conn_new(w->st, NULL, w->idx + 1);
	char key[64], sid[STORE_SID_LEN + 1];
	struct answer a;
	int64_t t = store_now();
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		snprintf(key, sizeof(key), "w%d-%06d-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", w->idx, i);
		put(sc, key, "u", t);
		if (i % 16 == 0 && secret_new(sid, key) == 0)	/* the CSPRNG is thread-safe */
			put(sc, key, "r", t);
	}
	for (i = 0; i < PER_THREAD; i++) {
		snprintf(key, sizeof(key), "w%d-%06d-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		    (w->idx + 1) % NTHREADS, i);
		memset(&a, 0, sizeof(a));
		store_lookup(sc, key, t, answer_cb, &a);
		/* The neighbour may not have written it yet; if it has, it must be whole. */
		if (a.res == STORE_OK && strcmp(a.sess.s_user, "u") == 0)
			w->ok++;
		snprintf(key, sizeof(key), "w%d-%06d-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", w->idx, i);
		if (get(sc, key, t, &a) != STORE_OK)
			w->ok = -100000;
	}
	store_conn_free(sc);
	return NULL;
}

static void
test_memory_shared_between_threads(void)
{
	struct store *st = memory(NTHREADS * PER_THREAD * 2);
	struct worker w[NTHREADS];
	pthread_t tid[NTHREADS];
	struct store_conn *sc;
	struct answer a;
	char key[64];
	int i;

	for (i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ st, i, 0 };
		pthread_create(&tid[i], NULL, worker_main, &w[i]);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(tid[i], NULL);
		CHECK(w[i].ok >= 0);
	}
	/* A session made on one thread is found from another. */
	sc = store_conn_new(st, NULL, 9);
	for (i = 0; i < NTHREADS; i++) {
		snprintf(key, sizeof(key), "w%d-%06d-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", i,
		    PER_THREAD - 1);
		CHECK_INT(get(sc, key, store_now(), &a), STORE_OK);
	}
	store_conn_free(sc);
	store_free(st);
}

UNIT_MAIN(CASE(test_memory_lookup_slides_idle),
    CASE(test_memory_absolute_deadline), CASE(test_memory_delete),
    CASE(test_memory_evicts_least_recently_used), CASE(test_memory_shared_between_threads))
