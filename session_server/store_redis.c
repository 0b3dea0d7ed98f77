/*
 * The Redis session store: what lets any number of session_server processes behind a
 * round-robin balancer share sessions. Each event-loop thread keeps one asynchronous connection
 * (common/rconn.c), so requests on a thread are pipelined on it and never block the loop.
 *
 * A session is the hash sess:<key> = { u: user, c: created ms, s: last seen ms }, with a Redis
 * expiry of min(idle, absolute remaining) reset on every use: Redis itself forgets idle and
 * finished sessions, so nothing here sweeps. The set usess:<user> lists a user's keys, so
 * that log out everywhere never scans the keyspace. Creation and look-up-and-touch are small Lua
 * scripts, so each is one round trip and atomic (a logout racing a touch cannot leave a
 * half-written hash behind). EVAL resends the script text, which costs a few hundred bytes per
 * request but cannot fail with NOSCRIPT after Redis restarts.
 *
 * Any failure (Redis down, a timeout, an error reply) is STORE_UNAVAILABLE: the caller answers
 * 503, never 401, so an outage does not log anyone out.
 *
 * Replication to the replicas is asynchronous, so a master that dies right after a login can
 * take the new session with it. --redis-wait N:MS closes that window for logins: the session is
 * confirmed only after WAIT says N replicas have it; fewer within MS and the login gets 503
 * (the cookie is never sent, so the session nobody can name just expires).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "prom.h"
#include "store.h"

#define STORE_REDIS_COUNT_MS	2000	/* how often thread 0 refreshes the session count */
#define STORE_REDIS_INDEX_PRUNE	"64"	/* members of usess:<user> before ended ones are pruned */

/*
 * KEYS[1] sess:<key>, KEYS[2] usess:<user>; ARGV: user, now ms, ttl ms, absolute ms, key.
 * usess:<user> indexes the user's sessions for log out everywhere. No session outlives the
 * newest by more than the absolute timeout, so the index expires then; members of sessions
 * that ended are pruned once it grows past STORE_REDIS_INDEX_PRUNE.
 */
static const char store_redis_create_lua[] =
    "redis.call('HSET', KEYS[1], 'u', ARGV[1], 'c', ARGV[2], 's', ARGV[2]) "
    "redis.call('PEXPIRE', KEYS[1], ARGV[3]) "
    "if redis.call('SADD', KEYS[2], ARGV[5]) == 1 and "
    "    redis.call('SCARD', KEYS[2]) > " STORE_REDIS_INDEX_PRUNE " then "
    "  for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do "
    "    if redis.call('EXISTS', 'sess:' .. k) == 0 then redis.call('SREM', KEYS[2], k) end "
    "  end "
    "end "
    "redis.call('PEXPIRE', KEYS[2], ARGV[4]) "
    "return 1";

/* KEYS[1] sess:<key>; ARGV: key. Returns 1 when the session existed, else 0. */
static const char store_redis_remove_lua[] =
    "local u = redis.call('HGET', KEYS[1], 'u') "
    "if not u then return 0 end "
    "redis.call('SREM', 'usess:' .. u, ARGV[1]) "
    "return redis.call('DEL', KEYS[1])";

/* KEYS[1] usess:<user>. Returns how many sessions ended. */
static const char store_redis_remove_user_lua[] =
    "local n = 0 "
    "for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  n = n + redis.call('DEL', 'sess:' .. k) "
    "end "
    "redis.call('DEL', KEYS[1]) "
    "return n";

/* KEYS[1] key; ARGV: now ms, idle ms, absolute ms. Returns 0 unknown, 1 expired, or {u, c}. */
static const char store_redis_lookup_lua[] =
    "local v = redis.call('HMGET', KEYS[1], 'u', 'c') "
    "if not v[1] or not v[2] then return 0 end "
    "local left = tonumber(v[2]) + tonumber(ARGV[3]) - tonumber(ARGV[1]) "
    "if left <= 0 then redis.call('DEL', KEYS[1]) return 1 end "
    "redis.call('HSET', KEYS[1], 's', ARGV[1]) "
    "redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[2]), left)) "
    "return v";

struct store_redis {
	struct store		 rs_store;
	struct rconn_config	 rs_cfg;
	int			 rs_wait_n;	/* replicas a new session waits for; 0: none */
	int			 rs_wait_ms;
	atomic_long		 rs_keys;	/* DBSIZE as last seen, -1 when unknown */
};

struct store_redis_conn {
	struct store_conn	 rd_conn;
	struct rconn		*rd_rc;
	struct event		*rd_countev;	/* thread 0 only */
};

/* One operation waiting for Redis; freed by store_redis_done(). */
struct store_redis_op {
	enum store_op	 op_op;
	store_cb	 op_cb;
	void		*op_arg;
	int64_t		 op_now;
	uint64_t	 op_start;
	int		 op_wait_n;	/* create: replicas still to wait for */
	int		 op_wait_ms;
};

/* Ends op with res, counts it and frees op. */
static void
store_redis_done(struct store_redis_op *op, enum store_result res, const struct session *sess)
{
	store_observe(op->op_op, res, op->op_start);
	op->op_cb(res, sess, op->op_arg);
	free(op);
}

/* Allocates an operation record; the caller hands it to rconn_command() or store_redis_done(). */
static struct store_redis_op *
store_redis_op_new(enum store_op which, store_cb cb, void *arg, int64_t now)
{
	struct store_redis_op *op;

	if ((op = malloc(sizeof(*op))) == NULL)
		return NULL;
	op->op_op = which;
	op->op_cb = cb;
	op->op_arg = arg;
	op->op_now = now;
	op->op_start = store_clock();
	op->op_wait_n = op->op_wait_ms = 0;
	return op;
}

/* A NULL reply or an error reply: the store is unavailable for this request. */
static int
store_redis_failed(const char *what, redisReply *reply)
{
	if (reply == NULL)
		return 1;
	if (reply->type == REDIS_REPLY_ERROR) {
		log_warnx("redis %s: %s", what, reply->str);
		return 1;
	}
	return 0;
}

static void
store_redis_wait_done(struct rconn *rc, redisReply *reply, void *arg)
{
	struct store_redis_op *op = arg;

	if (store_redis_failed("wait", reply)) {
		store_redis_done(op, STORE_UNAVAILABLE, NULL);
		return;
	}
	if (reply->type != REDIS_REPLY_INTEGER || reply->integer < op->op_wait_n) {
		log_warnx("redis wait: %lld of %d replicas had the new session after %d ms",
		    reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1LL, op->op_wait_n,
		    op->op_wait_ms);
		store_redis_done(op, STORE_UNAVAILABLE, NULL);
		return;
	}
	store_redis_done(op, STORE_OK, NULL);
}

static void
store_redis_create_done(struct rconn *rc, redisReply *reply, void *arg)
{
	struct store_redis_op *op = arg;

	if (store_redis_failed("create", reply))
		store_redis_done(op, STORE_UNAVAILABLE, NULL);
	else if (op->op_wait_n == 0)
		store_redis_done(op, STORE_OK, NULL);
	else if (rconn_command(rc, store_redis_wait_done, op, "WAIT %d %d", op->op_wait_n,
	    op->op_wait_ms) == -1)
		store_redis_done(op, STORE_UNAVAILABLE, NULL);
}

static void
store_redis_create(struct store_conn *sc, const char *key, const struct session *sess,
    store_cb cb, void *arg)
{
	struct store_redis_conn *rd = (struct store_redis_conn *)sc;
	struct store_redis *rs = (struct store_redis *)sc->sc_store;
	const struct store_limits *lim = &sc->sc_store->st_limits;
	int64_t ttl = lim->idle_ms < lim->absolute_ms ? lim->idle_ms : lim->absolute_ms;
	struct store_redis_op *op;

	if ((op = store_redis_op_new(STORE_OP_CREATE, cb, arg, sess->s_created)) == NULL) {
		cb(STORE_UNAVAILABLE, NULL, arg);
		return;
	}
	op->op_wait_n = rs->rs_wait_n;
	op->op_wait_ms = rs->rs_wait_ms;
	if (rconn_command(rd->rd_rc, store_redis_create_done, op,
	    "EVAL %s 2 sess:%s usess:%s %s %lld %lld %lld %s", store_redis_create_lua, key,
	    sess->s_user, sess->s_user, (long long)sess->s_created, (long long)ttl,
	    (long long)lim->absolute_ms, key) == -1)
		store_redis_done(op, STORE_UNAVAILABLE, NULL);
}

static void
store_redis_lookup_done(struct rconn *rc, redisReply *reply, void *arg)
{
	struct store_redis_op *op = arg;
	struct session sess;
	redisReply *u, *c;
	char *end;

	if (store_redis_failed("lookup", reply)) {
		store_redis_done(op, STORE_UNAVAILABLE, NULL);
		return;
	}
	if (reply->type == REDIS_REPLY_INTEGER) {
		store_redis_done(op, reply->integer == 1 ? STORE_EXPIRED : STORE_NOTFOUND, NULL);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    (u = reply->element[0])->type != REDIS_REPLY_STRING ||
	    (c = reply->element[1])->type != REDIS_REPLY_STRING ||
	    u->len == 0 || u->len > STORE_MAX_USER || memchr(u->str, '\0', u->len) != NULL)
		goto bad;
	memset(&sess, 0, sizeof(sess));
	memcpy(sess.s_user, u->str, u->len);
	sess.s_created = strtoll(c->str, &end, 10);
	if (*end != '\0' || end == c->str)
		goto bad;
	sess.s_seen = op->op_now;
	store_redis_done(op, STORE_OK, &sess);
	return;
 bad:
	log_warnx("redis lookup: malformed session record");
	store_redis_done(op, STORE_UNAVAILABLE, NULL);
}

static void
store_redis_lookup(struct store_conn *sc, const char *key, int64_t now, store_cb cb, void *arg)
{
	struct store_redis_conn *rd = (struct store_redis_conn *)sc;
	const struct store_limits *lim = &sc->sc_store->st_limits;
	struct store_redis_op *op;

	if ((op = store_redis_op_new(STORE_OP_LOOKUP, cb, arg, now)) == NULL) {
		cb(STORE_UNAVAILABLE, NULL, arg);
		return;
	}
	if (rconn_command(rd->rd_rc, store_redis_lookup_done, op, "EVAL %s 1 sess:%s %lld %lld %lld",
	    store_redis_lookup_lua, key, (long long)now, (long long)lim->idle_ms,
	    (long long)lim->absolute_ms) == -1)
		store_redis_done(op, STORE_UNAVAILABLE, NULL);
}

static void
store_redis_remove_done(struct rconn *rc, redisReply *reply, void *arg)
{
	if (store_redis_failed("delete", reply))
		store_redis_done(arg, STORE_UNAVAILABLE, NULL);
	else
		store_redis_done(arg, reply->type == REDIS_REPLY_INTEGER && reply->integer == 1 ?
		    STORE_OK : STORE_NOTFOUND, NULL);
}

static void
store_redis_remove(struct store_conn *sc, const char *key, int64_t now, store_cb cb, void *arg)
{
	struct store_redis_conn *rd = (struct store_redis_conn *)sc;
	struct store_redis_op *op;

	if ((op = store_redis_op_new(STORE_OP_DELETE, cb, arg, now)) == NULL) {
		cb(STORE_UNAVAILABLE, NULL, arg);
		return;
	}
	if (rconn_command(rd->rd_rc, store_redis_remove_done, op, "EVAL %s 1 sess:%s %s",
	    store_redis_remove_lua, key, key) == -1)
		store_redis_done(op, STORE_UNAVAILABLE, NULL);
}

/* A log-out-everywhere waiting for Redis; freed by store_redis_remove_user_done(). */
struct store_redis_user_op {
	store_count_cb	 uo_cb;
	void		*uo_arg;
	uint64_t	 uo_start;
};

static void
store_redis_remove_user_done(struct rconn *rc, redisReply *reply, void *arg)
{
	struct store_redis_user_op *uo = arg;
	enum store_result res = STORE_UNAVAILABLE;

	if (!store_redis_failed("delete user", reply) && reply->type == REDIS_REPLY_INTEGER)
		res = STORE_OK;
	store_observe(STORE_OP_DELETE_USER, res, uo->uo_start);
	uo->uo_cb(res, res == STORE_OK ? (long)reply->integer : 0, uo->uo_arg);
	free(uo);
}

static void
store_redis_remove_user(struct store_conn *sc, const char *user, store_count_cb cb, void *arg)
{
	struct store_redis_conn *rd = (struct store_redis_conn *)sc;
	struct store_redis_user_op *uo;

	if ((uo = malloc(sizeof(*uo))) == NULL) {
		cb(STORE_UNAVAILABLE, 0, arg);
		return;
	}
	uo->uo_cb = cb;
	uo->uo_arg = arg;
	uo->uo_start = store_clock();
	if (rconn_command(rd->rd_rc, store_redis_remove_user_done, uo, "EVAL %s 1 usess:%s",
	    store_redis_remove_user_lua, user) == -1) {
		free(uo);
		store_observe(STORE_OP_DELETE_USER, STORE_UNAVAILABLE, store_clock());
		cb(STORE_UNAVAILABLE, 0, arg);
	}
}

static void
store_redis_count_done(struct rconn *rc, redisReply *reply, void *arg)
{
	struct store_redis *rs = arg;

	atomic_store(&rs->rs_keys, reply != NULL && reply->type == REDIS_REPLY_INTEGER ?
	    (long)reply->integer : -1L);
}

static void
store_redis_count_timer(evutil_socket_t fd, short what, void *arg)
{
	struct store_redis_conn *rd = arg;
	struct store_redis *rs = (struct store_redis *)rd->rd_conn.sc_store;

	if (rconn_command(rd->rd_rc, store_redis_count_done, rs, "DBSIZE") == -1)
		atomic_store(&rs->rs_keys, -1L);
}

static struct store_conn *
store_redis_conn_new(struct store *st, struct event_base *base, int idx)
{
	static const struct timeval every = { STORE_REDIS_COUNT_MS / 1000,
	    (STORE_REDIS_COUNT_MS % 1000) * 1000 };
	struct store_redis *rs = (struct store_redis *)st;
	struct store_redis_conn *rd;

	if ((rd = calloc(1, sizeof(*rd))) == NULL)
		return NULL;
	rd->rd_conn.sc_store = st;
	rd->rd_conn.sc_base = base;
	if ((rd->rd_rc = rconn_new(base, &rs->rs_cfg)) == NULL)
		goto fail;
	if (idx == 0 && ((rd->rd_countev = event_new(base, -1, EV_PERSIST, store_redis_count_timer,
	    rd)) == NULL || event_add(rd->rd_countev, &every) == -1))
		goto fail;
	return &rd->rd_conn;
 fail:
	if (rd->rd_countev != NULL)
		event_free(rd->rd_countev);
	rconn_free(rd->rd_rc);
	free(rd);
	return NULL;
}

static void
store_redis_conn_free(struct store_conn *sc)
{
	struct store_redis_conn *rd = (struct store_redis_conn *)sc;

	if (rd->rd_countev != NULL)
		event_free(rd->rd_countev);
	rconn_free(rd->rd_rc);	/* pending operations get STORE_UNAVAILABLE */
	free(rd);
}

static int
store_redis_up(struct store_conn *sc)
{
	return rconn_is_up(((struct store_redis_conn *)sc)->rd_rc);
}

static long
store_redis_count(struct store_conn *sc)
{
	return atomic_load(&((struct store_redis *)sc->sc_store)->rs_keys);
}

/* The prom_row_fn of the series below: arg is store_redis_metrics()'s conns. */
static void
store_redis_row(void *arg, int i, unsigned long long *v)
{
	struct store_conn **conns = arg;
	struct rconn *rc = ((struct store_redis_conn *)conns[i])->rd_rc;
	struct rconn_stats st = rconn_stats(rc);

	v[0] = st.connects;
	v[1] = st.disconnects;
	v[2] = st.timeouts;
	v[3] = st.commands;
	v[4] = st.refused;
	v[5] = (unsigned long long)rconn_pending(rc);
}

/* Each thread's connection, read from whichever thread answers GET /metrics (rconn.h). */
static void
store_redis_metrics(struct store_conn **conns, int n, struct evbuffer *out)
{
	static const struct prom_series series[] = {
		{ "redis_connects_total", "counter",
		    "Successful (re)connections of each thread's connection." },
		{ "redis_disconnects_total", "counter", "Connections lost or dropped." },
		{ "redis_timeouts_total", "counter",
		    "Connections dropped because a command timed out." },
		{ "redis_commands_total", "counter", "Commands sent." },
		{ "redis_refused_total", "counter",
		    "Commands refused at once because Redis was down." },
		{ "redis_pending", "gauge", "Commands waiting for a reply." },
	};

	prom_threads(out, series, sizeof(series) / sizeof(series[0]), n, store_redis_row, conns);
}

static void
store_redis_free(struct store *st)
{
	free(st);
}

static const struct store_ops store_redis_ops = {
	.name = "redis",
	.shared = 1,
	.conn_new = store_redis_conn_new,
	.conn_free = store_redis_conn_free,
	.create = store_redis_create,
	.lookup = store_redis_lookup,
	.remove = store_redis_remove,
	.remove_user = store_redis_remove_user,
	.up = store_redis_up,
	.count = store_redis_count,
	.metrics = store_redis_metrics,
	.free = store_redis_free,
};

struct store *
store_redis_new(const struct store_limits *lim, const struct rconn_config *cfg,
    int wait_replicas, int wait_ms)
{
	struct store_redis *rs;

	if ((rs = calloc(1, sizeof(*rs))) == NULL)
		return NULL;
	rs->rs_store.st_ops = &store_redis_ops;
	rs->rs_store.st_limits = *lim;
	rs->rs_cfg = *cfg;
	rs->rs_wait_n = wait_replicas;
	rs->rs_wait_ms = wait_ms;
	atomic_store(&rs->rs_keys, -1L);
	return &rs->rs_store;
}
