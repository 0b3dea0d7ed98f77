/* jwt_server's private header: the global configuration and the interfaces between main.c
 * (flags, routes), auth.c (finding and verifying the token) and revoke.c (the Redis deny-list). */
#ifndef JWTSRV_H
#define JWTSRV_H

#include <jansson.h>

#include "http.h"
#include "jwt.h"
#include "rconn.h"

#define JWTSRV_COOKIE	"access_token"
#define JWTSRV_REALM	"jwt_server"

/* Set up by main() before serving; read-only afterwards, so every thread shares it. */
struct jwtsrv {
	struct jwt_verifier	*js_verifier;	/* owns every key */
	const struct jwt_key	*js_signer;	/* NULL: this instance only verifies */
	const char		*js_issuer;
	const char		*js_audience;
	long			 js_ttl;
	long			 js_leeway;
	int			 js_revocation;	/* --revocation given */
	struct rconn_config	 js_redis;
	char			*js_jwks;	/* the body of GET /.well-known/jwks.json */
};

extern struct jwtsrv jwtsrv;

/* ---- auth.c ---- */

/* Called with a valid, unrevoked token's claims: a new reference the callee releases. */
typedef void (*auth_next_fn)(struct http_req *, json_t *claims);

/* Finds the token (Authorization: Bearer, else the access_token cookie), verifies it, checks
 * the deny-list when revocation is on, and calls next; or replies itself (401 with
 * WWW-Authenticate, 503 when the deny-list cannot be asked). */
void auth_request(struct http_req *r, auth_next_fn next);

/* ---- revoke.c ---- */

enum revoke_result {
	REVOKE_NO,		/* not on the deny-list / added to it */
	REVOKE_YES,		/* on the deny-list */
	REVOKE_UNAVAILABLE	/* Redis did not answer: never read as "not revoked" */
};

typedef void (*revoke_cb)(void *arg, enum revoke_result);

/* Per-thread Redis connection in t->data. Return 0 or -1. */
int revoke_thread_init(struct http_thread *t);
void revoke_thread_fini(struct http_thread *t);
/*
 * Asks whether the token jti issued at iat (seconds) is denied: on the list, or issued before
 * the list last lost its data / denies jti for seconds. Returns 0 when asked (cb is then called
 * exactly once, later, from t's loop), or -1 when Redis is not reachable right now (no call).
 * arg stays the caller's.
 */
int revoke_check(struct http_thread *t, const char *jti, long long iat, revoke_cb cb,
    void *arg);
int revoke_add(struct http_thread *t, const char *jti, long seconds, revoke_cb cb, void *arg);
/* Adds the deny-list state to /healthz; returns 200 or 503. */
int revoke_health(struct http_thread *t, json_t *body);
/* Appends the Redis connection counters to /metrics. */
void revoke_metrics(struct http_thread *t, struct evbuffer *out);

#endif
