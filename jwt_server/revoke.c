/*
 * The deny-list of revoked tokens in Redis: "deny:<jti>" exists until the token would have
 * expired anyway, so the list never outgrows the tokens still alive. One EXISTS also asks about
 * the token's user generation and refresh family (see jwtsrv.h for the keys). One connection per
 * event-loop thread (common/rconn.c gives timeouts and reconnection). Every answer that is not
 * a clear "no" (timeout, disconnect, error reply) is REVOKE_UNAVAILABLE: a verifier that cannot
 * ask must not say "valid".
 */
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "jwtsrv.h"

/* One command in flight: freed by its rconn callback, which rconn calls exactly once. */
struct revoke_op {
	revoke_cb	 ro_cb;
	void		*ro_arg;
};

int
revoke_thread_init(struct http_thread *t)
{
	if (!jwtsrv.js_revocation)
		return 0;
	if ((t->data = rconn_new(t->base, &jwtsrv.js_redis)) == NULL) {
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

static void
revoke_check_done(struct rconn *rc, redisReply *reply, void *arg)
{
	struct revoke_op *op = arg;
	enum revoke_result res = REVOKE_UNAVAILABLE;

	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
		res = reply->integer > 0 ? REVOKE_YES : REVOKE_NO;
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
	const char *argv[4] = { "EXISTS", jti, gen, fam };
	size_t argvlen[4] = { 6 };
	struct revoke_op *op;
	int argc = 3;

	argvlen[1] = (size_t)snprintf(jti, sizeof(jti), "deny:%s", ids->ri_jti);
	argvlen[2] = (size_t)snprintf(gen, sizeof(gen), "gdeny:%s:%lld", ids->ri_sub, ids->ri_gen);
	if (ids->ri_fam != NULL)
		argvlen[argc++] = (size_t)snprintf(fam, sizeof(fam), "fdeny:%s", ids->ri_fam);
	if (argvlen[1] >= sizeof(jti) || argvlen[2] >= sizeof(gen) ||
	    (argc == 4 && argvlen[3] >= sizeof(fam)))
		return -1;
	if (t->data == NULL || (op = revoke_op_new(cb, arg)) == NULL)
		return -1;
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

void
revoke_metrics(struct http_thread *t, struct evbuffer *out)
{
	const struct rconn_stats *st;

	if (t->data == NULL)
		return;
	st = rconn_stats(t->data);
	evbuffer_add_printf(out,
	    "# HELP jwt_denylist_up Whether this thread's Redis deny-list connection is up.\n"
	    "# TYPE jwt_denylist_up gauge\njwt_denylist_up{thread=\"%d\"} %d\n"
	    "# HELP jwt_denylist_failed_total Deny-list commands that got no answer.\n"
	    "# TYPE jwt_denylist_failed_total counter\n"
	    "jwt_denylist_failed_total{thread=\"%d\"} %llu\n"
	    "# HELP jwt_denylist_refused_total Deny-list commands refused while Redis was down.\n"
	    "# TYPE jwt_denylist_refused_total counter\n"
	    "jwt_denylist_refused_total{thread=\"%d\"} %llu\n",
	    t->index, rconn_is_up(t->data), t->index, (unsigned long long)st->failed, t->index,
	    (unsigned long long)st->refused);
}
