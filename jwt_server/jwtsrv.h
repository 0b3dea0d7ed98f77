/*
 * jwt_server's private header: the global configuration and the interfaces between main.c
 * (flags, routes, issuing tokens), auth.c (finding and verifying the token), revoke.c (the Redis
 * deny-list) and refresh.c (refresh-token families, log out everywhere).
 *
 * The Redis keys, all in the --revocation database:
 *   deny:<jti>          an access token logged out, until it would expire
 *   ugen:<user>         the user's generation, raised by POST /logout/all (no expiry; 0 if absent)
 *   gdeny:<user>:<gen>  every access token of that generation refused, until the last expires
 *   rf:<fam>            a refresh family: u user, g generation, cur hash of its newest token,
 *                       r "1" once revoked; expires refresh-ttl after its last rotation
 *   rt:<hash>           a refresh token (by base64url SHA-256) -> its family, spent ones included
 *   fdeny:<fam>         every access token of that family refused, until the last expires
 * An access token is refused when any of deny:<jti>, gdeny:<sub>:<gen>, fdeny:<fam> exists.
 */
#ifndef JWTSRV_H
#define JWTSRV_H

#include <jansson.h>

#include "http.h"
#include "jwt.h"
#include "rconn.h"

#define JWTSRV_COOKIE	"access_token"
#define JWTSRV_REFRESH_COOKIE	"refresh_token"
#define JWTSRV_FAM_LEN	22	/* base64url of 128 random bits */
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
	long			 js_refresh_ttl;/* --refresh-ttl; 0: no refresh tokens */
	struct rconn_config	 js_redis;
	char			*js_jwks;	/* the body of GET /.well-known/jwks.json */
};

extern struct jwtsrv jwtsrv;

/* ---- main.c ---- */

/*
 * Signs an access token for user and replies 200 with it (and the access_token cookie). gen < 0:
 * no generation claim (revocation off). fam and refresh (both or neither): the refresh family
 * and the new refresh token, added to the reply and set as the refresh_token cookie.
 */
void jwtsrv_issue(struct http_req *r, const struct user *u, long long gen, const char *fam,
    const char *refresh);

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
/* What an access token is checked against (borrowed strings). */
struct revoke_ids {
	const char	*ri_jti;
	const char	*ri_sub;
	long long	 ri_gen;	/* the user's generation when it was issued */
	const char	*ri_fam;	/* its refresh family, or NULL */
	long long	 ri_iat;	/* when it was issued (seconds) */
};

/*
 * Asks whether the token is denied: by jti, user generation or family, or issued (iat) before
 * the list last lost its data / denies jti for seconds. Returns 0 when asked (cb is then called
 * exactly once, later, from t's loop), or -1 when Redis is not reachable right now (no call).
 * arg stays the caller's.
 */
int revoke_check(struct http_thread *t, const struct revoke_ids *ids, revoke_cb cb, void *arg);
int revoke_add(struct http_thread *t, const char *jti, long seconds, revoke_cb cb, void *arg);
/* Adds the deny-list state to /healthz; returns 200 or 503. */
int revoke_health(struct http_thread *t, json_t *body);
/* Appends every thread's Redis connection counters to /metrics. */
void revoke_metrics(struct http_server *srv, struct evbuffer *out);

/* ---- refresh.c ---- */

/* After the password check when --revocation is on: reads the user's generation and, with
 * refresh tokens on, starts a family with its first token; then jwtsrv_issue(), or 503. */
void refresh_login(struct http_req *r, const struct user *u);
/* POST /refresh: rotation, reuse detection. */
void refresh_route(struct http_req *r);
/* POST /logout with refresh tokens on: denies jti for seconds and revokes the family fam.
 * Same contract as revoke_add(). */
int refresh_logout(struct http_thread *t, const char *jti, long seconds, const char *fam,
    revoke_cb cb, void *arg);
/* POST /logout/all. */
void refresh_logout_all(struct http_req *r);
/* Sets the refresh_token cookie (Path=/refresh, SameSite=Strict), or deletes it (NULL). */
void refresh_set_cookie(struct http_req *r, const char *token);

#endif
