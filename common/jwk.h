/*
 * JSON Web Keys (RFC 7517, RFC 7518 section 6, RFC 8037) and thumbprints (RFC 7638) for the
 * keys of jwt.h. Only configuration ever reaches jwk_import(): a JWK inside a token header is
 * never looked at.
 */
#ifndef JWK_H
#define JWK_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "jwt.h"

#define JWK_THUMBPRINT_LEN	43	/* base64url of a SHA-256 */

/*
 * A key from a JWK object: "oct" (HS256), "RSA", "EC" with crv P-256, "OKP" with crv Ed25519,
 * public or private (with "d"). A "kid" member becomes the key's kid; an "alg" member must
 * match the key. Returns a new key (jwt_key_free) or NULL with a sentence in err.
 */
struct jwt_key *jwk_import(const json_t *jwk, char *err, size_t errlen);

/* The RFC 7638 members of pkey's public key (kty and the key values): a new reference, or NULL. */
json_t *jwk_public(EVP_PKEY *pkey);

/* Writes pkey's RFC 7638 thumbprint, base64url, NUL-terminated, into out (JWK_THUMBPRINT_LEN + 1
 * bytes). Returns 0 or -1. */
int jwk_thumbprint(EVP_PKEY *pkey, char *out);

/*
 * Wraps pkey into a key (shared by jwt.c and jwk.c): checks the type (RSA of JWT_MIN_RSA_BITS or
 * more, P-256, Ed25519), picks the algorithm and derives the kid. Takes over the caller's
 * reference to pkey, also on failure. has_private says whether pkey can sign.
 */
struct jwt_key *jwt_key_wrap(EVP_PKEY *pkey, int has_private, char *err, size_t errlen);

#endif
