/*
 * The key struct, private to jwt_key.c (which makes keys) and jwt.c (which signs and verifies
 * with them). Nothing else reaches inside a key.
 */
#ifndef JWT_KEY_PRIVATE_H
#define JWT_KEY_PRIVATE_H

#include <openssl/evp.h>

#include "jwt_key.h"

#define JWT_HS256_LEN		32	/* bytes of an HMAC-SHA256 */

struct jwt_key {
	enum jwt_alg	 k_alg;
	EVP_PKEY	*k_pkey;	/* NULL for HS256 */
	int		 k_private;
	EVP_MAC_CTX	*k_hmac;	/* HS256: initialised with the secret, duplicated per use */
	EVP_MD_CTX	*k_verify;	/* RS256, ES256: initialised for verifying, copied per use,
					 * since a fresh init costs more than the ECDSA itself */
	char		 k_kid[JWT_KID_MAX + 1];
};

/* HMAC-SHA256 of n bytes under the HS256 key k into out (JWT_HS256_LEN bytes). Returns 0 or -1.
 * Safe from several threads at once. */
int jwt_key_hmac(const struct jwt_key *k, const void *in, size_t n, unsigned char *out);

#endif
