/*
 * JSON Web Tokens (RFC 7519) in the JWS compact serialization (RFC 7515), following the
 * JWT best current practices (RFC 8725): HS256, RS256, ES256 and EdDSA (Ed25519) through
 * OpenSSL 3, with the keys of jwt_key.h. The algorithm always comes from the configured key,
 * never from the token; the token's "kid" only chooses among configured keys; "jwk", "jku",
 * "x5u" and "x5c" are never used. Verification keeps "could not process" (-1) apart from
 * "rejected" (a reason).
 */
#ifndef JWT_H
#define JWT_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "jwt_key.h"

#define JWT_MAX_TOKEN		8192	/* default largest token we look at */
#define JWT_DEFAULT_LEEWAY	30	/* seconds of clock skew allowed */
#define JWT_DEFAULT_ISSUER	"auth-demo"	/* iss and aud unless configured */

/* Why a token was refused. JWT_VALID is not a rejection. */
enum jwt_reason {
	JWT_VALID = 0,
	JWT_TOO_LARGE,		/* longer than the verifier's maximum */
	JWT_MALFORMED,		/* not three strict base64url segments of JSON objects */
	JWT_UNSUPPORTED_HEADER,	/* a "crit" extension or a "typ" we do not understand */
	JWT_ALG_NOT_ALLOWED,	/* "alg" is not the algorithm of a configured key */
	JWT_UNKNOWN_KEY,	/* "kid" names no configured key, or no key could be chosen */
	JWT_BAD_SIGNATURE,
	JWT_BAD_CLAIMS,		/* exp missing, or exp/nbf/iat/jti of the wrong type */
	JWT_EXPIRED,
	JWT_NOT_YET_VALID,	/* nbf or iat in the future */
	JWT_WRONG_ISSUER,
	JWT_WRONG_AUDIENCE,
	JWT_REVOKED,		/* decided by the caller's deny-list, never by jwt_verify() */
	JWT_NREASONS
};

struct jwt_verifier;

/* A short code for logs and metrics ("expired", "bad_signature", ...). */
const char *jwt_reason_code(enum jwt_reason);
/* A human sentence for error messages. */
const char *jwt_reason_text(enum jwt_reason);

/*
 * Signs input (the JWS signing input) with key into sig (room for 512 bytes), in the JWS form:
 * ES256 as the 64 bytes R||S. Returns 0 with *siglen set, or -1. Exposed for the published
 * test vectors; jwt_sign() is the normal way in.
 */
int jwt_sign_input(const struct jwt_key *, const char *input, size_t len, unsigned char *sig,
    size_t *siglen);
/* Makes a token with header {"alg", "typ": "JWT", "kid"} over claims (borrowed). Returns a new
 * NUL-terminated string the caller frees, or NULL. */
char *jwt_sign(const struct jwt_key *, json_t *claims);

/*
 * Splits and parses a token without verifying anything (for display). Returns 0 with new
 * references in *header and *payload and a malloc'd signature in *sig (the caller frees all
 * three), or -1 with *why set (JWT_TOO_LARGE or JWT_MALFORMED).
 */
int jwt_decode(const char *token, size_t len, json_t **header, json_t **payload,
    unsigned char **sig, size_t *siglen, enum jwt_reason *why);

/* ---- Verification ---- */

/* A new verifier with no keys, no issuer or audience requirement, JWT_DEFAULT_LEEWAY and
 * JWT_MAX_TOKEN. Free with jwt_verifier_free(). Returns NULL when out of memory. */
struct jwt_verifier *jwt_verifier_new(void);
/* Frees the verifier and every key added to it. */
void jwt_verifier_free(struct jwt_verifier *);
/* Adds key; the verifier takes it over on success (on failure it stays the caller's). Returns 0,
 * or -1 when the kid is already taken or there are too many keys. Like the setters below, only
 * while no thread is verifying with v. */
int jwt_verifier_add_key(struct jwt_verifier *, struct jwt_key *);
/* The number of keys and the i-th one (owned by the verifier), for JWKS. */
size_t jwt_verifier_nkeys(const struct jwt_verifier *);
const struct jwt_key *jwt_verifier_key(const struct jwt_verifier *, size_t i);
/* How many verifications found their token in the verifier's cache (see jwt_verify()). */
unsigned long jwt_verifier_cache_hits(const struct jwt_verifier *);
/* Requires "iss" to equal issuer / "aud" to be or contain audience (copied; NULL: no check).
 * Return 0 or -1. */
int jwt_verifier_set_issuer(struct jwt_verifier *, const char *issuer);
int jwt_verifier_set_audience(struct jwt_verifier *, const char *audience);
void jwt_verifier_set_leeway(struct jwt_verifier *, long seconds);
void jwt_verifier_set_max_len(struct jwt_verifier *, size_t max);

/*
 * Verifies token (len bytes, need not be NUL-terminated) at time now. Returns -1 when it could
 * not be processed (out of memory, a library failure); otherwise 0 with *why set: JWT_VALID, and
 * then *claims (if claims is not NULL) gets a new reference to the payload, or a rejection
 * reason. Safe to call from several threads at once on the same verifier.
 *
 * Each thread remembers the last tokens it accepted (a bounded cache keyed by the exact header
 * and payload bytes) so that it parses each one once; the signature and the claims are still
 * checked on every call. The payload may be the one the cache holds: read it, do not change it,
 * and drop the reference on the thread that got it. The cache of a thread goes when the thread
 * ends; jwt_verifier_free() frees the calling thread's.
 */
int jwt_verify(const struct jwt_verifier *, const char *token, size_t len, time_t now,
    enum jwt_reason *why, json_t **claims);

#endif
