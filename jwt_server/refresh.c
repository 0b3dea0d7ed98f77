/*
 * Refresh tokens and logging out everywhere (jwt_server with --revocation).
 *
 * A login starts a family: an opaque refresh token (a secret of secret.h) whose SHA-256 is stored
 * in Redis, never the token itself. POST /refresh spends it and answers a new access token and a new
 * refresh token of the same family (rotation). A spent token that comes back means two parties
 * hold it, the owner and a thief, and nobody can tell which is which: the whole family is revoked
 * (RFC 9700 section 4.14.2), its newest refresh token dies with it, and its access tokens, which
 * carry the family id in "fam", go on the deny-list until the last of them would expire.
 *
 * Each step is one Lua script, so one round trip and atomic: of two refreshes racing with one
 * token, Redis runs one script after the other and the second finds the token spent. EVAL
 * resends the text each time but cannot fail with NOSCRIPT after Redis restarts.
 *
 * Log out everywhere raises the user's generation (ugen:<user>). Every access token carries the
 * generation it was issued in ("gen"), so the old generation goes on the deny-list, and every
 * family remembers its own, so refreshing an older family fails. A generation rather than a
 * cut-off time: iat has one-second resolution, so "issued before the call" cannot be told from
 * "issued just after it" within a second, and a generation needs no clocks that agree.
 *
 * Anything that is not a clear answer from Redis is 503 store_unavailable: no new token is ever
 * issued, and nothing revoked is ever accepted, while Redis cannot be asked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "base64.h"
#include "body.h"
#include "cookie.h"
#include "log.h"
#include "secret.h"
#include "jwtsrv.h"

#define REFRESH_FAM_BYTES	16
#define REFRESH_COOKIE_PATH	"/refresh"
#define REFRESH_MAX_PRESENTED	1024	/* longer is not even read as a wrong token */

/*
 * The login: reads the user's generation and starts the family with its first token.
 * KEYS[1] rt:<hash>; ARGV: user, fam, hash, ttl ms. Returns the generation (a string).
 */
static const char refresh_login_lua[] =
    "local g = redis.call('GET', 'ugen:' .. ARGV[1]) or '0' "
    "local f = 'rf:' .. ARGV[2] "
    "redis.call('HSET', f, 'u', ARGV[1], 'g', g, 'cur', ARGV[3]) "
    "redis.call('PEXPIRE', f, ARGV[4]) "
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4]) "
    "return g";

/*
 * The rotation. KEYS[1] rt:<presented>, KEYS[2] rt:<new>; ARGV: presented hash, new hash,
 * ttl ms, deny seconds. Returns {0} unknown or expired, {2, user} reused (the family is now
 * revoked), {3, user} revoked, or {1, user, fam, generation}.
 */
static const char refresh_rotate_lua[] =
    "local fam = redis.call('GET', KEYS[1]) "
    "if not fam then return {0} end "
    "local f = 'rf:' .. fam "
    "local v = redis.call('HMGET', f, 'u', 'g', 'cur', 'r') "
    "if not v[1] then return {0} end "
    "if v[3] ~= ARGV[1] then "
    "  redis.call('HSET', f, 'r', '1') "
    "  redis.call('SET', 'fdeny:' .. fam, '1', 'EX', ARGV[4]) "
    "  return {2, v[1]} "
    "end "
    "if v[4] or (redis.call('GET', 'ugen:' .. v[1]) or '0') ~= v[2] then return {3, v[1]} end "
    "redis.call('HSET', f, 'cur', ARGV[2]) "
    "redis.call('PEXPIRE', f, ARGV[3]) "
    "redis.call('SET', KEYS[2], fam, 'PX', ARGV[3]) "
    "return {1, v[1], fam, v[2]}";

/* The logout of one token and its family. KEYS[1] deny:<jti>; ARGV: seconds, fam, deny s. */
static const char refresh_logout_lua[] =
    "redis.call('SET', KEYS[1], '1', 'EX', ARGV[1]) "
    "local f = 'rf:' .. ARGV[2] "
    "if redis.call('EXISTS', f) == 1 then redis.call('HSET', f, 'r', '1') end "
    "redis.call('SET', 'fdeny:' .. ARGV[2], '1', 'EX', ARGV[3]) "
    "return 1";

/* Log out everywhere. KEYS[1] ugen:<user>; ARGV: user, deny seconds. Returns the new
 * generation. ugen never expires: were it to fall back to 0, old generations would live again. */
static const char refresh_logout_all_lua[] =
    "local g = redis.call('INCR', KEYS[1]) "
    "redis.call('SET', 'gdeny:' .. ARGV[1] .. ':' .. (g - 1), '1', 'EX', ARGV[2]) "
    "return g";

/* A login or a refresh waiting for Redis; freed by its callback. */
struct refresh_op {
	struct http_req		*ro_req;
	const struct user	*ro_user;	/* login: owned by the server's users */
	char			 ro_fam[JWTSRV_FAM_LEN + 1];
	char			 ro_token[SECRET_LEN + 1];	/* the new refresh token */
};

/* A logout waiting for Redis. */
struct refresh_logout {
	revoke_cb	 rl_cb;
	void		*rl_arg;
};

/* How long a revoked family or generation stays on the deny-list: until the last access token
 * issued from it would be refused anyway. */
static long
refresh_deny_seconds(void)
{
	return jwtsrv.js_ttl + jwtsrv.js_leeway + 1;
}

static void
refresh_op_free(struct refresh_op *op)
{
	OPENSSL_cleanse(op->ro_token, sizeof(op->ro_token));
	free(op);
}

void
refresh_set_cookie(struct http_req *r, const char *token)
{
	struct cookie_attrs a = {
		.max_age = token ? jwtsrv.js_refresh_ttl : 0,
		.secure = r->secure,
		.http_only = 1,
		.same_site = "Strict",
		.path = REFRESH_COOKIE_PATH,
	};
	char buf[256];

	if (cookie_build(buf, sizeof(buf), JWTSRV_REFRESH_COOKIE, token ? token : "", &a) == 0)
		http_add_header(r, "Set-Cookie", buf);
	else
		log_warnx("%s: cannot build the refresh cookie", __func__);
}

static void
refresh_reply_unavailable(struct http_req *r)
{
	http_auth_failure(r, "store_unavailable");
	http_reply_error(r, 503, "store_unavailable",
	    "The token store cannot be reached, so nothing was issued or revoked; try again.");
}

/* A refresh refused: the cookie is useless from now on, so it goes too. */
static void
refresh_reply_refused(struct http_req *r, const char *code, const char *message)
{
	refresh_set_cookie(r, NULL);
	http_auth_failure(r, code);
	http_reply_error(r, 401, code, message);
}

/* A generation as Redis returns it: a string or an integer >= 0. Returns it, or -1. */
static long long
refresh_reply_gen(const redisReply *v)
{
	char *end;
	long long g;

	if (v->type == REDIS_REPLY_INTEGER)
		return v->integer >= 0 ? v->integer : -1;
	if (v->type != REDIS_REPLY_STRING || v->len == 0 || v->len > 19)
		return -1;
	g = strtoll(v->str, &end, 10);
	return *end == '\0' && g >= 0 ? g : -1;
}

/* ---- The login ---- */

static void
refresh_login_done(struct rconn *rc, redisReply *reply, void *arg)
{
	struct refresh_op *op = arg;
	long long gen = -1;

	/* GET ugen:<user> answers nil for a user who never logged out everywhere. */
	if (reply != NULL && reply->type == REDIS_REPLY_NIL && jwtsrv.js_refresh_ttl == 0)
		gen = 0;
	else if (reply != NULL)
		gen = refresh_reply_gen(reply);
	if (gen < 0) {
		if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
			log_warnx("redis login: %s", reply->str);
		refresh_reply_unavailable(op->ro_req);
	} else if (jwtsrv.js_refresh_ttl > 0) {
		jwtsrv_issue(op->ro_req, op->ro_user, gen, op->ro_fam, op->ro_token);
	} else {
		jwtsrv_issue(op->ro_req, op->ro_user, gen, NULL, NULL);
	}
	refresh_op_free(op);
}

void
refresh_login(struct http_req *r, const struct user *u)
{
	unsigned char fam[REFRESH_FAM_BYTES];
	char hash[SECRET_HASH_LEN + 1];
	struct refresh_op *op;
	int rv;

	if ((op = calloc(1, sizeof(*op))) == NULL) {
		http_reply_error(r, 503, "busy", "The server is out of memory; try again.");
		return;
	}
	op->ro_req = r;
	op->ro_user = u;
	if (jwtsrv.js_refresh_ttl == 0) {
		rv = rconn_command(r->thr->data, refresh_login_done, op, "GET ugen:%s", u->username);
	} else {
		if (RAND_bytes(fam, sizeof(fam)) != 1 || secret_new(op->ro_token, hash) == -1) {
			refresh_op_free(op);
			http_reply_error(r, 503, "busy", "Cannot make a refresh token; try again.");
			return;
		}
		base64_encode(BASE64_URL, fam, sizeof(fam), op->ro_fam);
		rv = rconn_command(r->thr->data, refresh_login_done, op,
		    "EVAL %s 1 rt:%s %s %s %s %lld", refresh_login_lua, hash, u->username,
		    op->ro_fam, hash, (long long)jwtsrv.js_refresh_ttl * 1000);
	}
	if (rv == -1) {
		refresh_op_free(op);
		refresh_reply_unavailable(r);
	}
}

/* ---- POST /refresh ---- */

/* Element i of a script's array reply as a string, or NULL. Borrowed from reply. */
static const char *
refresh_elem(const redisReply *reply, size_t i)
{
	const redisReply *e;

	if (reply->type != REDIS_REPLY_ARRAY || i >= reply->elements)
		return NULL;
	e = reply->element[i];
	return e->type == REDIS_REPLY_STRING && memchr(e->str, '\0', e->len) == NULL ? e->str :
	    NULL;
}

static void
refresh_rotated(struct rconn *rc, redisReply *reply, void *arg)
{
	struct refresh_op *op = arg;
	struct http_req *r = op->ro_req;
	const struct user *u;
	const char *user, *fam;
	long long gen;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER) {
		if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
			log_warnx("redis refresh: %s", reply->str);
		refresh_reply_unavailable(r);
		goto done;
	}
	user = refresh_elem(reply, 1);
	switch (reply->element[0]->integer) {
	case 1:
		fam = refresh_elem(reply, 2);
		gen = reply->elements == 4 ? refresh_reply_gen(reply->element[3]) : -1;
		if (user == NULL || fam == NULL || strlen(fam) != JWTSRV_FAM_LEN || gen < 0) {
			log_warnx("redis refresh: malformed family record");
			refresh_reply_unavailable(r);
		} else if ((u = users_find(http_users(r->thr->srv), user)) == NULL) {
			refresh_reply_refused(r, "invalid_refresh_token",
			    "The refresh token's user no longer exists.");
		} else {
			jwtsrv_issue(r, u, gen, fam, op->ro_token);
		}
		break;
	case 2:
		log_warnx("refresh token reuse: the family of user %s is revoked",
		    user ? user : "?");
		refresh_reply_refused(r, "refresh_reused", "This refresh token was already used: "
		    "someone else may hold a copy, so all tokens of this login are revoked. Log in "
		    "again.");
		break;
	case 3:
		refresh_reply_refused(r, "refresh_revoked", "This login was revoked (a reused "
		    "refresh token, a logout, or log out everywhere). Log in again.");
		break;
	default:
		refresh_reply_refused(r, "invalid_refresh_token",
		    "The refresh token is unknown or has expired. Log in again.");
		break;
	}
 done:
	refresh_op_free(op);
}

/*
 * Copies the presented refresh token into out (outlen bytes): the body's
 * "refresh_token" when it has one, else the cookie; never the URL, which ends up in logs and
 * browser history. Returns its length, 0 when there is none, or -1 after replying 400 itself.
 */
static int
refresh_presented(struct http_req *r, char *out, size_t outlen)
{
	const char *body, *hdr, *why, *s;
	json_t *obj, *v;
	int unsupported = 0, n = 0;
	size_t len;

	if ((body = http_body(r, &len)) != NULL && len > 0) {
		if ((obj = body_parse(http_header(r, "Content-Type"), body, len, &why,
		    &unsupported)) == NULL) {
			http_reply_error(r, unsupported ? 415 : 400,
			    unsupported ? "unsupported_media_type" : "bad_request", why);
			return -1;
		}
		if ((v = json_object_get(obj, "refresh_token")) != NULL) {
			s = json_string_value(v);
			/* Too long or not a string: a value that cannot match is passed on as one. */
			n = snprintf(out, outlen, "%s", s ? s : "-");
			if (n < 0 || (size_t)n >= outlen)
				n = (int)outlen - 1;
		}
		json_decref(obj);
		if (v != NULL)
			return n;
	}
	if ((hdr = http_header(r, "Cookie")) != NULL &&
	    (n = cookie_get(hdr, JWTSRV_REFRESH_COOKIE, out, outlen)) > 0)
		return n;
	return 0;
}

void
refresh_route(struct http_req *r)
{
	char presented[REFRESH_MAX_PRESENTED], old[SECRET_HASH_LEN + 1], new[SECRET_HASH_LEN + 1];
	struct refresh_op *op;
	int n;

	if (jwtsrv.js_refresh_ttl == 0) {
		http_reply_error(r, 404, "not_found",
		    "Refresh tokens are off on this server (--refresh-ttl).");
		return;
	}
	if (memchr(r->target, '?', r->targetlen) != NULL) {
		http_reply_error(r, 400, "bad_request", "A refresh token is never taken from the "
		    "URL: send it in the JSON body or the refresh_token cookie.");
		return;
	}
	if ((n = refresh_presented(r, presented, sizeof(presented))) == -1)
		return;
	if (n == 0) {
		http_auth_failure(r, "not_authenticated");
		http_reply_error(r, 401, "not_authenticated", "Send the refresh token in the JSON "
		    "body ({\"refresh_token\": ...}) or the refresh_token cookie.");
		return;
	}
	if (secret_hash(presented, (size_t)n, old) == -1) {
		OPENSSL_cleanse(presented, sizeof(presented));
		refresh_reply_refused(r, "invalid_refresh_token", "That is not a refresh token.");
		return;
	}
	OPENSSL_cleanse(presented, sizeof(presented));
	if ((op = calloc(1, sizeof(*op))) == NULL || secret_new(op->ro_token, new) == -1) {
		free(op);
		http_reply_error(r, 503, "busy", "Cannot make a refresh token; try again.");
		return;
	}
	op->ro_req = r;
	if (rconn_command(r->thr->data, refresh_rotated, op, "EVAL %s 2 rt:%s rt:%s %s %s %lld %ld",
	    refresh_rotate_lua, old, new, old, new, (long long)jwtsrv.js_refresh_ttl * 1000,
	    refresh_deny_seconds()) == -1) {
		refresh_op_free(op);
		refresh_reply_unavailable(r);
	}
}

/* ---- POST /logout and POST /logout/all ---- */

static void
refresh_logout_done(struct rconn *rc, redisReply *reply, void *arg)
{
	struct refresh_logout *rl = arg;

	if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		log_warnx("redis logout: %s", reply->str);
	rl->rl_cb(rl->rl_arg, reply != NULL && reply->type == REDIS_REPLY_INTEGER ? REVOKE_NO :
	    REVOKE_UNAVAILABLE);
	free(rl);
}

int
refresh_logout(struct http_thread *t, const char *jti, long seconds, const char *fam,
    revoke_cb cb, void *arg)
{
	struct refresh_logout *rl;

	if (t->data == NULL || (rl = malloc(sizeof(*rl))) == NULL)
		return -1;
	rl->rl_cb = cb;
	rl->rl_arg = arg;
	if (rconn_command(t->data, refresh_logout_done, rl, "EVAL %s 1 deny:%s %ld %s %ld",
	    refresh_logout_lua, jti, seconds, fam, refresh_deny_seconds()) == -1) {
		free(rl);
		return -1;
	}
	return 0;
}

static void
refresh_logged_out_all(struct rconn *rc, redisReply *reply, void *arg)
{
	struct http_req *r = arg;

	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
		if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
			log_warnx("redis logout/all: %s", reply->str);
		refresh_reply_unavailable(r);
		return;
	}
	http_set_auth_cookie(r, JWTSRV_COOKIE, NULL, 0);
	if (jwtsrv.js_refresh_ttl > 0)
		refresh_set_cookie(r, NULL);
	http_reply_json(r, 200, json_pack("{s:s, s:b, s:I, s:s}", "status",
	    "logged_out_everywhere", "revoked", 1, "generation", (json_int_t)reply->integer,
	    "message", "Every token of this user issued until now is refused by every server, "
	    "and every refresh token is revoked. Logging in again works at once."));
}

static void
refresh_logout_all_ok(struct http_req *r, json_t *claims)
{
	const char *sub = json_string_value(json_object_get(claims, "sub"));

	if (rconn_command(r->thr->data, refresh_logged_out_all, r, "EVAL %s 1 ugen:%s %s %ld",
	    refresh_logout_all_lua, sub, sub, refresh_deny_seconds()) == -1)
		refresh_reply_unavailable(r);
	json_decref(claims);
}

void
refresh_logout_all(struct http_req *r)
{
	auth_request(r, refresh_logout_all_ok);
}
