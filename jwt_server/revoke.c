/*
 * The deny-list of revoked tokens in Redis: "deny:<jti>" exists until the token would have
 * expired anyway, so the list never outgrows the tokens still alive. The same look-up asks about
 * the token's user generation and refresh family (see jwtsrv.h for the keys). One connection per
 * event-loop thread (common/rconn.c gives timeouts and reconnection). Every answer that is not
 * a clear "no" (timeout, disconnect, error reply) is REVOKE_UNAVAILABLE: a verifier that cannot
 * ask must not say "valid".
 *
 * A deny-list that silently comes back empty (Redis restarted without its data, a failover to a
 * replica that missed the last writes, a FLUSHALL) would bring revoked tokens back to life. So
 * it fails closed: the marker "denylist:since" holds the second from which the list is complete.
 * Every (re)connection writes it unless it exists (SET NX), and every check reads it with the
 * deny-list entries (one MGET): a token issued before it is refused as revoked. A missing marker
 * is written anew (SET NX); only when that write succeeds, on a master, is it a loss and the
 * token refused; a node that refuses the write (a demoted master, a replica mid-failover) gets
 * REVOKE_UNAVAILABLE (503), so a planned failover revokes nothing. Tokens issued after a loss
 * keep working.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "prom.h"
#include "jwtsrv.h"

#define REVOKE_MARKER	"denylist:since"

/* One command in flight: freed by its rconn callback, which rconn calls exactly once. */
struct revoke_op {
	revoke_cb	 ro_cb;
	void		*ro_arg;
	long long	 ro_iat;	/* check: the token's issue time */
};

static void
revoke_marker_done(struct rconn *rc, redisReply *reply, void *arg)
{
	if (reply == NULL)
		return;
	if (reply->type == REDIS_REPLY_ERROR)
		log_warnx("deny-list: cannot write %s: %s", REVOKE_MARKER, reply->str);
	else if (reply->type == REDIS_REPLY_STATUS && rconn_stats(rc).connects > 1)
		log_warnx("deny-list: %s was gone: Redis lost the list, so every token issued "
		    "before now is refused until it expires", REVOKE_MARKER);
}

/* Writes the marker unless it exists: now, on the first connection ever or after a loss. */
static void
revoke_marker(struct rconn *rc, void *arg)
{
	if (rconn_command(rc, revoke_marker_done, NULL, "SET " REVOKE_MARKER " %lld NX",
	    (long long)time(NULL)) == -1)
		log_warnx("deny-list: cannot write %s", REVOKE_MARKER);
}

int
revoke_thread_init(struct http_thread *t)
{
	struct rconn_config cfg = jwtsrv.js_redis;

	if (!jwtsrv.js_revocation)
		return 0;
	cfg.on_up = revoke_marker;
	if ((t->data = rconn_new(t->base, &cfg)) == NULL) {
		log_warnx("thread %d: cannot set up the Redis connection", t->index);
		return -1;
	}
	return 0;
}

void
revoke_thread_fini(struct http_thread *t)
{
	if (t->data != NULL)
		rconn_free(t->data);	/* pending commands get REVOKE_UNAVAILABLE */
	t->data = NULL;
}

/*
 * The reply to SET denylist:since NOW NX, sent when a check read no marker. Only a node that
 * takes the write is a master whose list is really gone: "OK" fails closed (the token is
 * refused). A node that refuses it (READONLY: a demoted master or a replica, which rconn leaves
 * for the sentinels' master) or already has a marker (the read was stale) proves no loss, so
 * the answer is REVOKE_UNAVAILABLE and the client retries: a failover revokes nothing.
 */
static void
revoke_lost_done(struct rconn *rc, redisReply *reply, void *arg)
{
	struct revoke_op *op = arg;
	enum revoke_result res = REVOKE_UNAVAILABLE;

	if (reply != NULL && reply->type == REDIS_REPLY_STATUS) {
		log_warnx("deny-list: %s was gone: Redis lost the list, so every token issued "
		    "before now is refused until it expires", REVOKE_MARKER);
		res = REVOKE_YES;
	} else if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		log_warnx("deny-list: %s missing on a node that refuses writes: %s",
		    REVOKE_MARKER, reply->str);
	op->ro_cb(op->ro_arg, res);
	free(op);
}

/* The reply to MGET denylist:since deny:<jti> gdeny:<sub>:<gen> [fdeny:<fam>]. */
static void
revoke_check_done(struct rconn *rc, redisReply *reply, void *arg)
{
	struct revoke_op *op = arg;
	enum revoke_result res = REVOKE_UNAVAILABLE;
	redisReply *since;
	size_t i;

	if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2) {
		since = reply->element[0];
		if (since->type != REDIS_REPLY_STRING) {
			/* Judged by revoke_lost_done(), which then owns op. */
			if (rconn_command(rc, revoke_lost_done, op, "SET " REVOKE_MARKER
			    " %lld NX", (long long)time(NULL)) == 0)
				return;
		} else {
			res = op->ro_iat < atoll(since->str) ? REVOKE_YES : REVOKE_NO;
			for (i = 1; i < reply->elements; i++)
				if (reply->element[i]->type != REDIS_REPLY_NIL)
					res = REVOKE_YES;
		}
	}
	op->ro_cb(op->ro_arg, res);
	free(op);
}

static void
revoke_add_done(struct rconn *rc, redisReply *reply, void *arg)
{
	struct revoke_op *op = arg;
	enum revoke_result res = REVOKE_UNAVAILABLE;

	if (reply != NULL && reply->type == REDIS_REPLY_STATUS)
		res = REVOKE_NO;
	else if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		log_warnx("redis logout: %s", reply->str);
	op->ro_cb(op->ro_arg, res);
	free(op);
}

/* Allocates the record of one command; NULL when out of memory. */
static struct revoke_op *
revoke_op_new(revoke_cb cb, void *arg)
{
	struct revoke_op *op;

	if ((op = malloc(sizeof(*op))) == NULL)
		return NULL;
	op->ro_cb = cb;
	op->ro_arg = arg;
	return op;
}

int
revoke_check(struct http_thread *t, const struct revoke_ids *ids, revoke_cb cb, void *arg)
{
	char jti[160], gen[320], fam[64];
	const char *argv[5] = { "MGET", REVOKE_MARKER, jti, gen, fam };
	size_t argvlen[5] = { 4, sizeof(REVOKE_MARKER) - 1 };
	struct revoke_op *op;
	int argc = 4;

	argvlen[2] = (size_t)snprintf(jti, sizeof(jti), "deny:%s", ids->ri_jti);
	argvlen[3] = (size_t)snprintf(gen, sizeof(gen), "gdeny:%s:%lld", ids->ri_sub, ids->ri_gen);
	if (ids->ri_fam != NULL)
		argvlen[argc++] = (size_t)snprintf(fam, sizeof(fam), "fdeny:%s", ids->ri_fam);
	if (argvlen[2] >= sizeof(jti) || argvlen[3] >= sizeof(gen) ||
	    (argc == 5 && argvlen[4] >= sizeof(fam)))
		return -1;
	if (t->data == NULL || (op = revoke_op_new(cb, arg)) == NULL)
		return -1;
	op->ro_iat = ids->ri_iat;
	if (rconn_command_argv(t->data, revoke_check_done, op, argc, argv, argvlen) == -1) {
		free(op);
		return -1;
	}
	return 0;
}

int
revoke_add(struct http_thread *t, const char *jti, long seconds, revoke_cb cb, void *arg)
{
	struct revoke_op *op;

	if (t->data == NULL || (op = revoke_op_new(cb, arg)) == NULL)
		return -1;
	if (rconn_command(t->data, revoke_add_done, op, "SET deny:%s 1 EX %ld", jti,
	    seconds) == -1) {
		free(op);
		return -1;
	}
	return 0;
}

int
revoke_health(struct http_thread *t, json_t *body)
{
	int up;

	if (!jwtsrv.js_revocation) {
		json_object_set_new(body, "revocation", json_string("off"));
		return 200;
	}
	up = rconn_is_up(t->data);
	json_object_set_new(body, "revocation", json_string(rconn_state_name(rconn_state(t->data))));
	return up ? 200 : 503;
}

/* The prom_row_fn of revoke_metrics(): arg is the server. */
static void
revoke_row(void *arg, int i, unsigned long long *v)
{
	struct rconn *rc = http_thread_at(arg, i)->data;
	struct rconn_stats st = rconn_stats(rc);

	v[0] = (unsigned long long)rconn_is_up(rc);
	v[1] = st.failed;
	v[2] = st.refused;
}

void
revoke_metrics(struct http_server *srv, struct evbuffer *out)
{
	static const struct prom_series series[] = {
		{ "jwt_denylist_up", "gauge",
		    "Whether each thread's Redis deny-list connection is up." },
		{ "jwt_denylist_failed_total", "counter", "Deny-list commands that got no answer." },
		{ "jwt_denylist_refused_total", "counter",
		    "Deny-list commands refused while Redis was down." },
	};

	if (!jwtsrv.js_revocation)
		return;
	prom_threads(out, series, sizeof(series) / sizeof(series[0]),
	    http_cfg(srv)->threads, revoke_row, srv);
}
