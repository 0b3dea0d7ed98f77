/*
 * JSON Web Keys (RFC 7517, RFC 7518 section 6, RFC 8037) and thumbprints (RFC 7638): a codec
 * between JWK JSON and OpenSSL key material that knows nothing of tokens. jwt_key.c makes keys
 * of what it decodes.
 */
#ifndef JWK_H
#define JWK_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

#define JWK_THUMBPRINT_LEN	43	/* base64url of a SHA-256 */
#define JWK_MAX_VALUE		1024	/* bytes of one decoded member: RSA-8192 */

/* What a JWK holds: key material (one of jm_pkey and jm_secret) and its "alg" and "kid". */
struct jwk_material {
	EVP_PKEY	*jm_pkey;	/* "RSA", "EC" P-256, "OKP" Ed25519; NULL for "oct" */
	int		 jm_private;	/* jm_pkey holds the private key ("d") */
	unsigned char	 jm_secret[JWK_MAX_VALUE];	/* "oct": the "k" bytes */
	size_t		 jm_secretlen;
	const char	*jm_alg;	/* "alg" or NULL; borrowed from the JSON */
	const char	*jm_kid;	/* "kid" or NULL; borrowed from the JSON */
};

/*
 * Decodes a JWK object: "oct", "RSA", "EC" with crv P-256, "OKP" with crv Ed25519, public or
 * private (with "d"; its public part must match). Key values are strict base64url. Returns 0
 * with m filled (jwk_material_clear() releases it; jm_alg and jm_kid live as long as jwk), or
 * -1 with a sentence in err and nothing to release.
 */
int jwk_decode(const json_t *jwk, struct jwk_material *m, char *err, size_t errlen);
/* Frees the key and wipes the secret; m may then be reused. */
void jwk_material_clear(struct jwk_material *m);

/* The RFC 7638 members of pkey's public key (kty and the key values): a new reference, or NULL. */
json_t *jwk_encode(EVP_PKEY *pkey);

/* Writes pkey's RFC 7638 thumbprint, base64url, NUL-terminated, into out (JWK_THUMBPRINT_LEN + 1
 * bytes). Returns 0 or -1. */
int jwk_thumbprint(EVP_PKEY *pkey, char *out);

#endif
