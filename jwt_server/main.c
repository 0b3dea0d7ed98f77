/*
 * jwt_server: the stateless login server. POST /login answers a signed JWT (also set as the
 * access_token cookie); every other request carries it back and is checked by signature alone,
 * so any instance holding the verification key can serve any request behind a round-robin
 * balancer. The price: a token stays valid until it expires unless a deny-list (--revocation,
 * in Redis) brings state back. HTTP plumbing: common/http.c; tokens: common/jwt.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/rand.h>

#include "base64.h"
#include "cli.h"
#include "log.h"
#include "jwtsrv.h"

#define JTI_BYTES	16	/* 128 random bits */
#define MAX_VERIFY_KEYS	8

static const char usage[] =
    "usage: jwt_server --listen HOST:PORT --id NAME --users FILE\n"
    "                  (--secret-file FILE | --key FILE | --verify-key FILE...) [options]\n"
    "  --secret-file FILE      HS256 signing key (at least 32 bytes; keep it mode 0600)\n"
    "  --key FILE              PEM private key; RSA >= 2048: RS256, P-256: ES256,\n"
    "                          Ed25519: EdDSA\n"
    "  --verify-key FILE       a further key accepted for verification only: PEM public\n"
    "                          key, JWK, or HS256 secret (repeatable; for key rotation and\n"
    "                          for instances that verify but never sign)\n"
    "  --issuer NAME           iss of issued tokens, required of verified ones\n"
    "                          (default auth-demo)\n"
    "  --audience NAME         aud of issued tokens, required of verified ones\n"
    "                          (default auth-demo)\n"
    "  --ttl SECONDS           token lifetime (default 900)\n"
    "  --leeway SECONDS        clock skew allowed on exp, nbf and iat (default 30)\n"
    "  --revocation redis://[USER@]HOST:PORT[/DB]\n"
    "              |redis-sentinel://HOST:PORT[,HOST:PORT...][/DB]#MASTER\n"
    "                          deny-list for POST /logout and /logout/all, checked on\n"
    "                          every request\n"
    "  --refresh-ttl SECONDS   issue rotating refresh tokens (POST /refresh) that live this\n"
    "                          long unused; needs --revocation\n"
    "  --redis-password-file FILE\n"
    "                          Redis password (else $REDISCLI_AUTH; never in the URL)\n"
    "  --redis-timeout MS      Redis connect and command timeout (default 1000)\n";

enum {
	OPT_SECRET = 1, OPT_KEY, OPT_VERIFY_KEY, OPT_ISSUER, OPT_AUDIENCE, OPT_TTL, OPT_LEEWAY,
	OPT_REVOCATION, OPT_REDIS_TIMEOUT, OPT_REDIS_PASSWORD, OPT_REFRESH_TTL
};

static const struct option longopts[] = {
	HTTP_LONGOPTS,
	{ "secret-file", required_argument, NULL, OPT_SECRET },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "verify-key", required_argument, NULL, OPT_VERIFY_KEY },
	{ "issuer", required_argument, NULL, OPT_ISSUER },
	{ "audience", required_argument, NULL, OPT_AUDIENCE },
	{ "ttl", required_argument, NULL, OPT_TTL },
	{ "leeway", required_argument, NULL, OPT_LEEWAY },
	{ "revocation", required_argument, NULL, OPT_REVOCATION },
	{ "redis-timeout", required_argument, NULL, OPT_REDIS_TIMEOUT },
	{ "redis-password-file", required_argument, NULL, OPT_REDIS_PASSWORD },
	{ "refresh-ttl", required_argument, NULL, OPT_REFRESH_TTL },
	{ NULL, 0, NULL, 0 }
};

struct jwtsrv jwtsrv;

/* ---- POST /login ---- */

/* Makes the claims of a new token for user: gen when >= 0, fam when not NULL. Returns a new
 * reference, or NULL. */
static json_t *
jwtsrv_claims(const struct user *u, time_t now, long long gen, const char *fam)
{
	unsigned char rnd[JTI_BYTES];
	char jti[32];
	json_t *c;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return NULL;
	base64_encode(BASE64_URL, rnd, sizeof(rnd), jti);
	c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "sub", u->username,
	    "name", u->name ? u->name : "", "role", u->role ? u->role : "", "iss", jwtsrv.js_issuer,
	    "aud", jwtsrv.js_audience, "iat", (json_int_t)now,
	    "exp", (json_int_t)(now + jwtsrv.js_ttl), "jti", jti);
	if (c != NULL && gen >= 0 && json_object_set_new(c, "gen", json_integer(gen)) == -1)
		goto fail;
	if (c != NULL && fam != NULL && json_object_set_new(c, "fam", json_string(fam)) == -1)
		goto fail;
	return c;
 fail:
	json_decref(c);
	return NULL;
}

void
jwtsrv_issue(struct http_req *r, const struct user *u, long long gen, const char *fam,
    const char *refresh)
{
	json_t *claims, *body;
	char *tok;

	if ((claims = jwtsrv_claims(u, time(NULL), gen, fam)) == NULL ||
	    (tok = jwt_sign(jwtsrv.js_signer, claims)) == NULL) {
		json_decref(claims);
		log_warnx("%s: cannot sign a token", __func__);
		http_reply_error(r, 503, "busy", "The token could not be made; try again.");
		return;
	}
	json_decref(claims);
	http_set_auth_cookie(r, JWTSRV_COOKIE, tok, jwtsrv.js_ttl);
	body = json_pack("{s:s, s:s, s:I, s:s, s:s}", "access_token", tok,
	    "token_type", "Bearer", "expires_in", (json_int_t)jwtsrv.js_ttl,
	    "username", u->username, "served_by", http_cfg(r->thr->srv)->id);
	if (body != NULL && refresh != NULL) {
		refresh_set_cookie(r, refresh);
		json_object_set_new(body, "refresh_token", json_string(refresh));
		json_object_set_new(body, "refresh_expires_in", json_integer(jwtsrv.js_refresh_ttl));
	}
	http_reply_json(r, 200, body);
	free(tok);
}

static void
jwtsrv_login_ok(struct http_req *r, const struct user *u)
{
	if (jwtsrv.js_revocation)
		refresh_login(r, u);
	else
		jwtsrv_issue(r, u, -1, NULL, NULL);
}

static void
jwtsrv_login(struct http_req *r)
{
	if (jwtsrv.js_signer == NULL) {
		http_reply_error(r, 503, "cannot_issue",
		    "This instance only verifies tokens; log in at one that has a signing key.");
		return;
	}
	http_login(r, jwtsrv_login_ok);
}

/* ---- GET /profile ---- */

/*
 * The profile comes from the users file, found by the token's sub, not from the claims: the
 * email is not in the token, and a changed role or a removed user shows at once rather than
 * when the token expires. Only the identity is the token's word.
 */
static void
jwtsrv_profile_ok(struct http_req *r, json_t *claims)
{
	const char *sub = json_string_value(json_object_get(claims, "sub"));
	const struct user *u = sub ? users_find(http_users(r->thr->srv), sub) : NULL;

	if (u == NULL) {
		http_add_header(r, "WWW-Authenticate", "Bearer realm=\"" JWTSRV_REALM "\", "
		    "error=\"invalid_token\", error_description=\"The user no longer exists.\"");
		http_auth_failure(r, "unknown_user");
		http_reply_error(r, 401, "invalid_token", "The token's user no longer exists.");
	} else {
		http_reply_json(r, 200, json_pack("{s:s, s:s?, s:s?, s:s?, s:s, s:s}",
		    "username", u->username, "name", u->name, "email", u->email, "role", u->role,
		    "served_by", http_cfg(r->thr->srv)->id, "auth", "jwt"));
	}
	json_decref(claims);
}

static void
jwtsrv_profile(struct http_req *r)
{
	auth_request(r, jwtsrv_profile_ok);
}

/* ---- POST /logout ---- */

/* A logout waiting for Redis to store the jti. */
struct logout_state {
	struct http_req	*lo_req;
	time_t		 lo_exp;
};

static void
jwtsrv_logout_reply(struct http_req *r, int revoked, time_t exp)
{
	char when[32], msg[256];
	struct tm tm;

	http_set_auth_cookie(r, JWTSRV_COOKIE, NULL, 0);
	if (jwtsrv.js_refresh_ttl > 0)
		refresh_set_cookie(r, NULL);
	if (revoked) {
		http_reply_json(r, 200, json_pack("{s:s, s:b, s:s}", "status", "logged_out",
		    "revoked", 1, "message", "The token is on the deny-list: it no longer works "
		    "anywhere in the cluster."));
		return;
	}
	gmtime_r(&exp, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(msg, sizeof(msg), "The cookie is cleared, but the token itself stays valid until "
	    "it expires at %s: a stateless token cannot be taken back without a deny-list "
	    "(--revocation).", when);
	http_reply_json(r, 200, json_pack("{s:s, s:b, s:s, s:s}", "status", "logged_out",
	    "revoked", 0, "valid_until", when, "message", msg));
}

static void
jwtsrv_logout_stored(void *arg, enum revoke_result res)
{
	struct logout_state *lo = arg;

	if (res == REVOKE_UNAVAILABLE) {
		http_auth_failure(lo->lo_req, "store_unavailable");
		http_reply_error(lo->lo_req, 503, "store_unavailable",
		    "The revocation list cannot be reached, so the token was not revoked; try again.");
	} else {
		jwtsrv_logout_reply(lo->lo_req, 1, lo->lo_exp);
	}
	free(lo);
}

static void
jwtsrv_logout_ok(struct http_req *r, json_t *claims)
{
	time_t exp = (time_t)json_number_value(json_object_get(claims, "exp"));
	const char *jti = json_string_value(json_object_get(claims, "jti"));
	const char *fam = json_string_value(json_object_get(claims, "fam"));
	struct logout_state *lo;
	int rv;
	long left;

	if (!jwtsrv.js_revocation) {
		jwtsrv_logout_reply(r, 0, exp);
		goto done;
	}
	/* Deny until the token would be refused anyway: its exp plus the leeway. */
	left = (long)(exp - time(NULL)) + jwtsrv.js_leeway;
	if (left < 1)
		left = 1;
	if ((lo = malloc(sizeof(*lo))) == NULL) {
		http_reply_error(r, 503, "busy", "The server is out of memory; try again.");
		goto done;
	}
	lo->lo_req = r;
	lo->lo_exp = exp;
	/* With refresh tokens, the family goes too: its refresh token must not mint new ones. */
	if (fam != NULL)
		rv = refresh_logout(r->thr, jti, left, fam, jwtsrv_logout_stored, lo);
	else
		rv = revoke_add(r->thr, jti, left, jwtsrv_logout_stored, lo);
	if (rv == -1)
		jwtsrv_logout_stored(lo, REVOKE_UNAVAILABLE);
done:
	json_decref(claims);
}

static void
jwtsrv_logout(struct http_req *r)
{
	auth_request(r, jwtsrv_logout_ok);
}

/* ---- POST /logout/all ---- */

static void
jwtsrv_logout_all_stateless(struct http_req *r, json_t *claims)
{
	json_decref(claims);
	http_set_auth_cookie(r, JWTSRV_COOKIE, NULL, 0);
	http_reply_json(r, 200, json_pack("{s:s, s:b, s:s}", "status", "not_revoked",
	    "revoked", 0, "message", "Only this browser's cookie is cleared: without a revocation "
	    "store (--revocation) no server can refuse your other tokens before they expire."));
}

static void
jwtsrv_logout_all(struct http_req *r)
{
	if (jwtsrv.js_revocation)
		refresh_logout_all(r);
	else
		auth_request(r, jwtsrv_logout_all_stateless);
}

/* ---- GET /.well-known/jwks.json ---- */

static void
jwtsrv_jwks(struct http_req *r)
{
	http_add_header(r, "Cache-Control", "public, max-age=300");
	http_reply_json(r, 200, json_loads(jwtsrv.js_jwks, 0, NULL));
}

static const struct http_route routes[] = {
	{ "/login", HTTP_POST, jwtsrv_login, 1 },
	{ "/profile", HTTP_GET, jwtsrv_profile, 1 },
	{ "/logout", HTTP_POST, jwtsrv_logout, 1 },
	{ "/logout/all", HTTP_POST, jwtsrv_logout_all, 1 },
	{ "/refresh", HTTP_POST, refresh_route, 1 },
	{ "/.well-known/jwks.json", HTTP_GET, jwtsrv_jwks, 0 },
	{ NULL, 0, NULL, 0 }
};

static int
jwtsrv_health(struct http_thread *t, json_t *body)
{
	json_object_set_new(body, "alg", json_string(jwtsrv.js_signer ?
	    jwt_alg_name(jwt_key_alg(jwtsrv.js_signer)) : "verify-only"));
	return revoke_health(t, body);
}

/* ---- Start-up ---- */

/* Loads one key file into the verifier; exits on any problem, since a server with a key
 * missing would reject tokens it should accept. Returns the key (owned by the verifier). */
static const struct jwt_key *
jwtsrv_add_key(const char *flag, const char *path, int secret_only)
{
	struct jwt_key *k;
	struct stat st;
	char err[512];

	k = secret_only ? jwt_key_load_secret(path, err, sizeof(err)) :
	    jwt_key_load(path, err, sizeof(err));
	if (k == NULL)
		fatalx("%s %s", flag, err);
	if ((jwt_key_alg(k) == JWT_HS256 || jwt_key_can_sign(k)) && stat(path, &st) == 0 &&
	    (st.st_mode & 077) != 0)
		log_warnx("%s: %s is readable by others; chmod 600 it", flag, path);
	if (jwt_verifier_add_key(jwtsrv.js_verifier, k) == -1)
		fatalx("%s %s: the same key twice, or more than %d keys", flag, path, MAX_VERIFY_KEYS);
	log_info("%s %s: %s key, kid %s", flag, path, jwt_alg_name(jwt_key_alg(k)),
	    jwt_key_kid(k));
	return k;
}

/* Builds the JWKS body once: the public halves of every asymmetric key. Returns a malloc'd
 * string the caller frees, or NULL. */
static char *
jwtsrv_make_jwks(void)
{
	json_t *keys = json_array(), *jwk, *set;
	size_t i;
	char *s = NULL;

	for (i = 0; i < jwt_verifier_nkeys(jwtsrv.js_verifier); i++)
		if ((jwk = jwt_key_jwk(jwt_verifier_key(jwtsrv.js_verifier, i))) != NULL)
			json_array_append_new(keys, jwk);
	if ((set = json_pack("{s:o}", "keys", keys)) != NULL)
		s = json_dumps(set, JSON_COMPACT);
	json_decref(set);
	return s;
}

int
main(int argc, char *argv[])
{
	struct http_config cfg;
	struct http_app app = {
		.routes = routes,
		.thread_init = revoke_thread_init,
		.thread_fini = revoke_thread_fini,
		.health = jwtsrv_health,
		.metrics = revoke_metrics,
	};
	const char *secret = NULL, *key = NULL, *verify[MAX_VERIFY_KEYS], *revocation = NULL;
	const char *redis_password = NULL;
	int opt, nverify = 0, i, rv;

	http_cli_init("jwt_server", usage);
	http_config_init(&cfg);
	rconn_config_init(&jwtsrv.js_redis);
	jwtsrv.js_issuer = jwtsrv.js_audience = JWT_DEFAULT_ISSUER;
	jwtsrv.js_ttl = 900;
	jwtsrv.js_leeway = JWT_DEFAULT_LEEWAY;
	while ((opt = cli_next(argc, argv, longopts)) != -1) {
		if (http_config_opt(&cfg, opt, optarg))
			continue;
		switch (opt) {
		case OPT_SECRET:
			secret = optarg;
			break;
		case OPT_KEY:
			key = optarg;
			break;
		case OPT_VERIFY_KEY:
			if (nverify == MAX_VERIFY_KEYS)
				cli_bad("--verify-key: at most %d", MAX_VERIFY_KEYS);
			verify[nverify++] = optarg;
			break;
		case OPT_ISSUER:
			jwtsrv.js_issuer = optarg;
			break;
		case OPT_AUDIENCE:
			jwtsrv.js_audience = optarg;
			break;
		case OPT_TTL:
			jwtsrv.js_ttl = cli_num("--ttl", optarg, 1, 7L * 86400);
			break;
		case OPT_LEEWAY:
			jwtsrv.js_leeway = cli_num("--leeway", optarg, 0, 600);
			break;
		case OPT_REVOCATION:
			revocation = optarg;
			break;
		case OPT_REDIS_PASSWORD:
			redis_password = optarg;
			break;
		case OPT_REFRESH_TTL:
			jwtsrv.js_refresh_ttl = cli_num("--refresh-ttl", optarg, 1, 365L * 86400);
			break;
		case OPT_REDIS_TIMEOUT:
			jwtsrv.js_redis.connect_timeout_ms = jwtsrv.js_redis.command_timeout_ms =
			    (int)cli_num("--redis-timeout", optarg, 10, 60000);
			break;
		}
	}
	if (optind < argc)
		cli_bad("unexpected argument '%s'", argv[optind]);
	http_config_check(&cfg);
	if (secret != NULL && key != NULL)
		cli_bad("give one signing key: --secret-file or --key, not both");
	if (secret == NULL && key == NULL && nverify == 0)
		cli_bad("a key is needed: --secret-file, --key or --verify-key");
	if (*jwtsrv.js_issuer == '\0' || *jwtsrv.js_audience == '\0')
		cli_bad("--issuer and --audience cannot be empty");
	if (revocation != NULL) {
		rconn_config_cli(&jwtsrv.js_redis, "--revocation", revocation, redis_password);
		jwtsrv.js_revocation = 1;
	}
	if (jwtsrv.js_refresh_ttl > 0 && !jwtsrv.js_revocation)
		cli_bad("--refresh-ttl needs --revocation: refresh families live in Redis");
	log_init("jwt_server", cfg.debug);
	if ((jwtsrv.js_verifier = jwt_verifier_new()) == NULL ||
	    jwt_verifier_set_issuer(jwtsrv.js_verifier, jwtsrv.js_issuer) == -1 ||
	    jwt_verifier_set_audience(jwtsrv.js_verifier, jwtsrv.js_audience) == -1)
		fatalx("out of memory");
	jwt_verifier_set_leeway(jwtsrv.js_verifier, jwtsrv.js_leeway);
	if (secret != NULL)
		jwtsrv.js_signer = jwtsrv_add_key("--secret-file", secret, 1);
	if (key != NULL) {
		jwtsrv.js_signer = jwtsrv_add_key("--key", key, 0);
		if (!jwt_key_can_sign(jwtsrv.js_signer))
			fatalx("--key %s: a public key cannot sign; use --verify-key", key);
	}
	for (i = 0; i < nverify; i++)
		jwtsrv_add_key("--verify-key", verify[i], 0);
	if ((jwtsrv.js_jwks = jwtsrv_make_jwks()) == NULL)
		fatalx("cannot build the JWKS");
	rv = http_serve(&cfg, &app);
	free(jwtsrv.js_jwks);
	jwt_verifier_free(jwtsrv.js_verifier);
	return rv;
}
