/*
 * Authentication of a request by its token: where the token is taken from (the Authorization
 * header, else the access_token cookie), verification, the deny-list, and the one table that
 * turns every verification reason into an HTTP answer (RFC 6750 section 3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bearer.h"
#include "cookie.h"
#include "log.h"
#include "jwtsrv.h"

#define AUTH_MAX_JTI	128
#define AUTH_MAX_SUB	256	/* the longest username (users.c) */

/* The body's error code for each rejection. Every one is a 401 with error="invalid_token" in
 * WWW-Authenticate; the code is finer for the two a client can act on. */
static const char *const auth_codes[JWT_NREASONS] = {
	[JWT_TOO_LARGE] = "invalid_token",
	[JWT_MALFORMED] = "invalid_token",
	[JWT_UNSUPPORTED_HEADER] = "invalid_token",
	[JWT_ALG_NOT_ALLOWED] = "invalid_token",
	[JWT_UNKNOWN_KEY] = "invalid_token",
	[JWT_BAD_SIGNATURE] = "invalid_token",
	[JWT_BAD_CLAIMS] = "invalid_token",
	[JWT_EXPIRED] = "token_expired",
	[JWT_NOT_YET_VALID] = "invalid_token",
	[JWT_WRONG_ISSUER] = "invalid_token",
	[JWT_WRONG_AUDIENCE] = "invalid_token",
	[JWT_REVOKED] = "token_revoked",
};

/* A request whose token is being looked up in the deny-list. */
struct auth_req {
	struct http_req	*ar_req;
	json_t		*ar_claims;
	auth_next_fn	 ar_next;
};

/* 401 without a token: RFC 6750 3.1 says no error code then. */
static void
auth_reply_missing(struct http_req *r)
{
	http_add_header(r, "WWW-Authenticate", "Bearer realm=\"" JWTSRV_REALM "\"");
	http_auth_failure(r, "not_authenticated");
	http_reply_error(r, 401, "not_authenticated",
	    "Send a token in Authorization: Bearer or the access_token cookie (POST /login).");
}

static void
auth_reply_reason(struct http_req *r, enum jwt_reason why)
{
	char hdr[256];

	snprintf(hdr, sizeof(hdr), "Bearer realm=\"%s\", error=\"invalid_token\", "
	    "error_description=\"%s\"", JWTSRV_REALM, jwt_reason_text(why));
	http_add_header(r, "WWW-Authenticate", hdr);
	http_auth_failure(r, jwt_reason_code(why));
	http_reply_error(r, 401, auth_codes[why], jwt_reason_text(why));
}

static void
auth_reply_unavailable(struct http_req *r)
{
	http_auth_failure(r, "store_unavailable");
	http_reply_error(r, 503, "store_unavailable",
	    "The revocation list cannot be reached, so the token cannot be checked; try again.");
}

static void
auth_denylist_done(void *arg, enum revoke_result res)
{
	struct auth_req *ar = arg;

	switch (res) {
	case REVOKE_NO:
		ar->ar_next(ar->ar_req, ar->ar_claims);
		ar->ar_claims = NULL;
		break;
	case REVOKE_YES:
		auth_reply_reason(ar->ar_req, JWT_REVOKED);
		break;
	case REVOKE_UNAVAILABLE:
		auth_reply_unavailable(ar->ar_req);
		break;
	}
	json_decref(ar->ar_claims);
	free(ar);
}


/* A claim that is a string of 1..max bytes, or NULL. Borrowed from claims. */
static const char *
auth_claim_string(json_t *claims, const char *name, size_t max)
{
	json_t *v = json_object_get(claims, name);

	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max)
		return NULL;
	return json_string_value(v);
}

/*
 * Takes what the deny-list is asked about from verified claims. Revocation works by jti, user
 * generation and, for tokens from a refresh family, fam: a token without the first two could
 * never be revoked, so it is refused. Returns 0, or -1 (the strings are borrowed from claims).
 */
static int
auth_revoke_ids(json_t *claims, struct revoke_ids *ids)
{
	json_t *gen = json_object_get(claims, "gen");

	ids->ri_jti = auth_claim_string(claims, "jti", AUTH_MAX_JTI);
	ids->ri_sub = auth_claim_string(claims, "sub", AUTH_MAX_SUB);
	ids->ri_fam = NULL;
	if (ids->ri_jti == NULL || ids->ri_sub == NULL || !json_is_integer(gen) ||
	    json_integer_value(gen) < 0)
		return -1;
	ids->ri_gen = json_integer_value(gen);
	ids->ri_iat = (long long)json_number_value(json_object_get(claims, "iat"));
	if (json_object_get(claims, "fam") != NULL &&
	    ((ids->ri_fam = auth_claim_string(claims, "fam", JWTSRV_FAM_LEN)) == NULL ||
	    strlen(ids->ri_fam) != JWTSRV_FAM_LEN))
		return -1;
	return 0;
}

/* Whether an Authorization value uses the Bearer scheme (case-insensitive), well-formed or not. */
static int
auth_is_bearer(const char *hdr)
{
	return strncasecmp(hdr, "Bearer", 6) == 0 && (hdr[6] == '\0' || hdr[6] == ' ' ||
	    hdr[6] == '\t');
}

void
auth_request(struct http_req *r, auth_next_fn next)
{
	char cookie[BEARER_MAX_TOKEN + 1];
	const char *hdr, *tok;
	struct auth_req *ar;
	enum jwt_reason why;
	struct revoke_ids ids;
	json_t *claims = NULL;
	size_t len;
	int n;

	if ((hdr = http_header(r, "Authorization")) != NULL && auth_is_bearer(hdr)) {
		/* A Bearer header that does not parse is a bad token, not a missing one. Another
		 * scheme (Basic, ...) presents no bearer token at all (RFC 6750 section 3.1). */
		if ((tok = bearer_parse(hdr, &len)) == NULL) {
			auth_reply_reason(r, JWT_MALFORMED);
			return;
		}
	} else if ((hdr = http_header(r, "Cookie")) != NULL &&
	    (n = cookie_get(hdr, JWTSRV_COOKIE, cookie, sizeof(cookie))) > 0) {
		tok = cookie;
		len = (size_t)n;
	} else {
		auth_reply_missing(r);
		return;
	}
	if (jwt_verify(jwtsrv.js_verifier, tok, len, time(NULL), &why, &claims) == -1) {
		http_reply_error(r, 503, "busy", "The token could not be checked; try again.");
		return;
	}
	if (why != JWT_VALID) {
		auth_reply_reason(r, why);
		return;
	}
	if (!jwtsrv.js_revocation) {
		next(r, claims);
		return;
	}
	if (auth_revoke_ids(claims, &ids) == -1) {
		json_decref(claims);
		auth_reply_reason(r, JWT_BAD_CLAIMS);
		return;
	}
	if ((ar = calloc(1, sizeof(*ar))) == NULL) {
		json_decref(claims);
		http_reply_error(r, 503, "busy", "The server is out of memory; try again.");
		return;
	}
	ar->ar_req = r;
	ar->ar_claims = claims;
	ar->ar_next = next;
	if (revoke_check(r->thr, &ids, auth_denylist_done, ar) == -1) {
		json_decref(claims);
		free(ar);
		auth_reply_unavailable(r);
	}
}
