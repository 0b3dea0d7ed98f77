/*
 * The keys of jwt.h: HS256 secrets and RSA, P-256 and Ed25519 keys from files, PEM text, JWKs
 * or raw bytes. A key fixes its algorithm (RS256, ES256, EdDSA, HS256) and has an id (kid).
 * The struct is private to jwt_key.c and jwt.c (jwt_key_private.h).
 */
#ifndef JWT_KEY_H
#define JWT_KEY_H

#include <stddef.h>

#include <jansson.h>

#define JWT_MIN_SECRET		32	/* bytes of HS256 key material */
#define JWT_MIN_RSA_BITS	2048
#define JWT_KID_MAX		64

enum jwt_alg { JWT_HS256, JWT_RS256, JWT_ES256, JWT_EDDSA };

struct jwt_key;

/* "HS256", "RS256", "ES256" or "EdDSA". */
const char *jwt_alg_name(enum jwt_alg);

/*
 * Loads a key file: a PEM private key (RSA of at least 2048 bits: RS256, P-256: ES256,
 * Ed25519: EdDSA; it can sign and verify), a PEM public key (verify only), a JWK (RFC 7517),
 * or else an HS256 secret (the file's bytes, one trailing newline dropped, at least
 * JWT_MIN_SECRET of them; refused when it looks like PEM, which is the key-confusion attack).
 * Returns a new key (jwt_key_free) or NULL with a sentence naming the file in err.
 */
struct jwt_key *jwt_key_load(const char *path, char *err, size_t errlen);
/* Loads an HS256 secret file as above, without guessing at other formats. */
struct jwt_key *jwt_key_load_secret(const char *path, char *err, size_t errlen);
/* A key from PEM text (private or public). Returns a new key or NULL with err set. */
struct jwt_key *jwt_key_from_pem(const char *pem, size_t len, char *err, size_t errlen);
/* An HS256 key from len bytes of secret (copied). Returns a new key or NULL with err set. */
struct jwt_key *jwt_key_from_secret(const void *secret, size_t len, char *err, size_t errlen);
/*
 * A key from a JWK object (borrowed; see jwk.h for the kinds): its "kid" member becomes the
 * key's kid, its "alg" member must be the key's algorithm. Only configuration ever comes here:
 * a JWK inside a token header is never looked at. Returns a new key or NULL with err set.
 */
struct jwt_key *jwt_key_from_jwk(const json_t *jwk, char *err, size_t errlen);
void jwt_key_free(struct jwt_key *);

enum jwt_alg jwt_key_alg(const struct jwt_key *);
/* 1 when the key holds private material (or is an HS256 secret). */
int jwt_key_can_sign(const struct jwt_key *);
/* The key id: the RFC 7638 thumbprint for public keys; for a secret, a keyed hash of the secret
 * that reveals nothing a token does not. Owned by the key. */
const char *jwt_key_kid(const struct jwt_key *);
/* Replaces the kid (at most JWT_KID_MAX bytes, copied). Returns 0 or -1. */
int jwt_key_set_kid(struct jwt_key *, const char *kid);
/* The public key as a JWK object (RFC 7517), with "kid", "alg" and "use": a new reference, or
 * NULL for a secret or on failure. */
json_t *jwt_key_jwk(const struct jwt_key *);

#endif
