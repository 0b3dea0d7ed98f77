/*
 * The session store of session_server: session ids, the key they are stored under, and one
 * asynchronous interface over two back ends, an in-process table (store_memory.c) and Redis
 * (store_redis.c), so that the HTTP handlers do not know which one they talk to.
 *
 * A session id is a secret of secret.h (256 random bits, base64url). The stores never see it:
 * they are keyed by its hash, base64url(SHA-256(id)), so a dump of Redis or of the process
 * holds no cookie anyone could replay.
 *
 * There is one struct store per server and one struct store_conn per event-loop thread (the
 * Redis back end keeps one connection per thread there). Every operation calls its callback
 * exactly once, on the calling thread, possibly before the operation returns (the memory store
 * always answers at once; Redis answers STORE_UNAVAILABLE at once while it is down).
 */
#ifndef STORE_H
#define STORE_H

#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "body.h"
#include "rconn.h"
#include "secret.h"

#define STORE_SID_LEN		SECRET_LEN	/* a session id: secret_new(), secret_hash() */
#define STORE_KEY_LEN		SECRET_HASH_LEN	/* the key it is stored under */
#define STORE_MAX_USER		BODY_MAX_FIELD

struct session {
	char	 s_user[STORE_MAX_USER + 1];
	int64_t	 s_created;	/* ms since the epoch */
	int64_t	 s_seen;	/* last authenticated request, ms since the epoch */
};

enum store_result {
	STORE_OK,
	STORE_NOTFOUND,		/* never existed, logged out, or expired and forgotten */
	STORE_EXPIRED,		/* known but past its idle or absolute deadline (now removed) */
	STORE_UNAVAILABLE	/* the store cannot be reached or failed: the caller answers 503 */
};

enum store_op { STORE_OP_CREATE, STORE_OP_LOOKUP, STORE_OP_DELETE, STORE_OP_DELETE_USER,
	STORE_NOPS };

struct store_limits {
	int64_t	 idle_ms;
	int64_t	 absolute_ms;
	long	 max_sessions;		/* memory store only */
};

/* sess is borrowed: valid only during the call (NULL unless STORE_OK on a lookup). */
typedef void (*store_cb)(enum store_result res, const struct session *sess, void *arg);

/* n: how many sessions ended (meaningful with STORE_OK only). */
typedef void (*store_count_cb)(enum store_result res, long n, void *arg);

struct store;
struct store_conn;

/* What a back end provides. */
struct store_ops {
	const char	*name;
	int		 shared;	/* 1: every server sees the same sessions */
	/* Per-thread state for the loop base; thread index idx. NULL on failure. */
	struct store_conn *(*conn_new)(struct store *, struct event_base *base, int idx);
	void		 (*conn_free)(struct store_conn *);
	/* Stores sess under key; it expires after min(idle, absolute) without use. */
	void		 (*create)(struct store_conn *, const char *key, const struct session *sess,
			    store_cb cb, void *arg);
	/* Finds key, checks both deadlines, and slides the idle one (last-seen := now). */
	void		 (*lookup)(struct store_conn *, const char *key, int64_t now, store_cb cb,
			    void *arg);
	void		 (*remove)(struct store_conn *, const char *key, int64_t now, store_cb cb,
			    void *arg);
	/* Ends every session of user that this store holds. */
	void		 (*remove_user)(struct store_conn *, const char *user, store_count_cb cb,
			    void *arg);
	/* 1 when requests can be served. */
	int		 (*up)(struct store_conn *);
	/* Sessions held, or -1 when unknown. */
	long		 (*count)(struct store_conn *);
	/* Appends back-end metrics (Prometheus text) for the threads' conns[0..n). */
	void		 (*metrics)(struct store_conn **conns, int n, struct evbuffer *out);
	void		 (*free)(struct store *);
};

/* The part of every back end's store and per-thread state that the dispatcher uses. */
struct store {
	const struct store_ops	*st_ops;
	struct store_limits	 st_limits;
};

struct store_conn {
	struct store		*sc_store;
	struct event_base	*sc_base;
};

/* Back ends. Each returns a store owned by the caller (free with store_free), or NULL. */
struct store *store_memory_new(const struct store_limits *lim);
/* cfg is copied; each thread then opens its own connection. With wait_replicas > 0, a new
 * session is confirmed only once that many replicas have it (Redis WAIT, at most wait_ms). */
struct store *store_redis_new(const struct store_limits *lim, const struct rconn_config *cfg,
    int wait_replicas, int wait_ms);
void store_free(struct store *st);

/* Per-thread state, owned by the caller: free with store_conn_free() on the same thread. */
struct store_conn *store_conn_new(struct store *st, struct event_base *base, int idx);
void store_conn_free(struct store_conn *sc);

/* Wall-clock milliseconds, the unit of session times. */
int64_t store_now(void);

/* The operations, dispatched to the back end; cb is called exactly once (see above). The key and
 * sess are copied as needed before return. */
void store_create(struct store_conn *sc, const char *key, const struct session *sess,
    store_cb cb, void *arg);
void store_lookup(struct store_conn *sc, const char *key, int64_t now, store_cb cb, void *arg);
void store_delete(struct store_conn *sc, const char *key, int64_t now, store_cb cb, void *arg);
/* Ends every session of user (log out everywhere): on every server when store_shared(), else
 * only those of this process. */
void store_delete_user(struct store_conn *sc, const char *user, store_count_cb cb, void *arg);
int store_up(struct store_conn *sc);
int store_shared(const struct store_conn *sc);
const char *store_name(const struct store_conn *sc);

/* For back ends: records one finished operation and its latency (start from store_clock()). */
uint64_t store_clock(void);
void store_observe(enum store_op op, enum store_result res, uint64_t start);
/* Counts sessions the back end dropped on its own. */
void store_count_expired(unsigned long n);
void store_count_evicted(unsigned long n);

/*
 * Appends the store's metrics (Prometheus text): operation counts and latency, plus the back
 * end's own, with per-thread series for each of conns[0..n), thread i's state at conns[i]
 * (n >= 1). Called from any one thread: it reads the others' state only through atomics.
 */
void store_metrics(struct store_conn **conns, int n, struct evbuffer *out);

#endif
