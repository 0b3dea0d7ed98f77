/*
 * JSON Web Keys (see jwk.h): decoding JWKs into OpenSSL key material (configuration and the
 * published test vectors), encoding public keys (for GET /.well-known/jwks.json), and RFC 7638
 * thumbprints. Key values are strict base64url (no padding). Nothing here knows of tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "base64.h"
#include "jwk.h"

static void
jwk_err(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

/* Decodes member name of jwk into out (JWK_MAX_VALUE bytes). Returns the length, 0 when absent,
 * -1 when not a strict base64url string of a sane size. */
static int
jwk_member(const json_t *jwk, const char *name, unsigned char *out)
{
	json_t *j = json_object_get(jwk, name);
	const char *s;
	size_t n, len;

	if (j == NULL)
		return 0;
	if (!json_is_string(j))
		return -1;
	s = json_string_value(j);
	n = json_string_length(j);
	if (n == 0 || base64_decoded_max(n) > JWK_MAX_VALUE ||
	    base64_decode(BASE64_URL, s, n, out, &len) == -1)
		return -1;
	return (int)len;
}

/* Pushes member name as a big number param. Returns 1 when pushed, 0 when absent, -1 on error. */
static int
jwk_push_bn(OSSL_PARAM_BLD *bld, const json_t *jwk, const char *name, const char *param,
    BIGNUM **keep)
{
	unsigned char buf[JWK_MAX_VALUE];
	int n;

	if ((n = jwk_member(jwk, name, buf)) <= 0)
		return n;
	*keep = BN_bin2bn(buf, n, NULL);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (*keep == NULL || OSSL_PARAM_BLD_push_BN(bld, param, *keep) != 1)
		return -1;
	return 1;
}

static EVP_PKEY *
jwk_fromdata(const char *type, OSSL_PARAM_BLD *bld, int priv)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM *params = NULL;

	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
	    params) != 1)
		goto fail;
	/* fromdata trusts its input: a private part that does not match the public one would
	 * sign tokens that nobody can verify. */
	EVP_PKEY_CTX_free(ctx);
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
	    (priv ? EVP_PKEY_pairwise_check(ctx) : EVP_PKEY_public_check(ctx)) != 1)
		goto fail;
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(ctx);
	return pkey;
fail:
	EVP_PKEY_free(pkey);
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(ctx);
	return NULL;
}

static EVP_PKEY *
jwk_decode_rsa(const json_t *jwk, int *priv)
{
	static const char *const extra[][2] = {
		{ "p", OSSL_PKEY_PARAM_RSA_FACTOR1 }, { "q", OSSL_PKEY_PARAM_RSA_FACTOR2 },
		{ "dp", OSSL_PKEY_PARAM_RSA_EXPONENT1 }, { "dq", OSSL_PKEY_PARAM_RSA_EXPONENT2 },
		{ "qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1 },
	};
	OSSL_PARAM_BLD *bld;
	BIGNUM *bn[8] = { NULL };
	EVP_PKEY *pkey = NULL;
	size_t i;
	int d;

	if ((bld = OSSL_PARAM_BLD_new()) == NULL)
		return NULL;
	if (jwk_push_bn(bld, jwk, "n", OSSL_PKEY_PARAM_RSA_N, &bn[0]) != 1 ||
	    jwk_push_bn(bld, jwk, "e", OSSL_PKEY_PARAM_RSA_E, &bn[1]) != 1 ||
	    (d = jwk_push_bn(bld, jwk, "d", OSSL_PKEY_PARAM_RSA_D, &bn[2])) == -1)
		goto done;
	/* The CRT values make signing fast; a private JWK without them is still usable. */
	for (i = 0; d == 1 && i < sizeof(extra) / sizeof(extra[0]); i++)
		if (jwk_push_bn(bld, jwk, extra[i][0], extra[i][1], &bn[3 + i]) == -1)
			goto done;
	*priv = d;
	pkey = jwk_fromdata("RSA", bld, d);
done:
	for (i = 0; i < sizeof(bn) / sizeof(bn[0]); i++)
		BN_clear_free(bn[i]);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

static EVP_PKEY *
jwk_decode_ec(const json_t *jwk, int *priv)
{
	unsigned char pub[1 + 2 * 32], x[JWK_MAX_VALUE], y[JWK_MAX_VALUE];
	OSSL_PARAM_BLD *bld;
	BIGNUM *d = NULL;
	EVP_PKEY *pkey = NULL;
	int has_d;

	if (!json_is_string(json_object_get(jwk, "crv")) ||
	    strcmp(json_string_value(json_object_get(jwk, "crv")), "P-256") != 0)
		return NULL;
	/* RFC 7518 6.2.1.2: x and y are exactly the field size, 32 bytes each. */
	if (jwk_member(jwk, "x", x) != 32 || jwk_member(jwk, "y", y) != 32)
		return NULL;
	pub[0] = 0x04;	/* uncompressed point */
	memcpy(pub + 1, x, 32);
	memcpy(pub + 33, y, 32);
	if ((bld = OSSL_PARAM_BLD_new()) == NULL)
		return NULL;
	if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)) != 1 ||
	    (has_d = jwk_push_bn(bld, jwk, "d", OSSL_PKEY_PARAM_PRIV_KEY, &d)) == -1)
		goto done;
	*priv = has_d;
	pkey = jwk_fromdata("EC", bld, has_d);
done:
	BN_clear_free(d);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

static EVP_PKEY *
jwk_decode_okp(const json_t *jwk, int *priv)
{
	unsigned char x[JWK_MAX_VALUE], d[JWK_MAX_VALUE], pub[32];
	EVP_PKEY *pkey;
	size_t publen = sizeof(pub);
	int n;

	if (!json_is_string(json_object_get(jwk, "crv")) ||
	    strcmp(json_string_value(json_object_get(jwk, "crv")), "Ed25519") != 0 ||
	    jwk_member(jwk, "x", x) != 32 || (n = jwk_member(jwk, "d", d)) == -1)
		return NULL;
	if (n == 0) {
		*priv = 0;
		return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, 32);
	}
	*priv = 1;
	pkey = n == 32 ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, 32) : NULL;
	OPENSSL_cleanse(d, sizeof(d));
	/* A private key whose x is someone else's would sign tokens nobody can check. */
	if (pkey != NULL && (EVP_PKEY_get_raw_public_key(pkey, pub, &publen) != 1 ||
	    publen != 32 || memcmp(pub, x, 32) != 0)) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	return pkey;
}

/* A member that must be a string when present. Returns 0 with *out set (NULL when absent), or
 * -1. */
static int
jwk_string(const json_t *jwk, const char *name, const char **out)
{
	json_t *j = json_object_get(jwk, name);

	*out = NULL;
	if (j == NULL)
		return 0;
	if (!json_is_string(j))
		return -1;
	*out = json_string_value(j);
	return 0;
}

int
jwk_decode(const json_t *jwk, struct jwk_material *m, char *err, size_t errlen)
{
	const char *t;
	int n;

	memset(m, 0, sizeof(*m));
	if (!json_is_object(jwk) || jwk_string(jwk, "kty", &t) == -1 || t == NULL) {
		jwk_err(err, errlen, "not a JWK object with a \"kty\"");
		return -1;
	}
	if (jwk_string(jwk, "alg", &m->jm_alg) == -1) {
		jwk_err(err, errlen, "JWK \"alg\" must be a string");
		return -1;
	}
	if (jwk_string(jwk, "kid", &m->jm_kid) == -1) {
		jwk_err(err, errlen, "JWK \"kid\" must be a string");
		return -1;
	}
	if (strcmp(t, "oct") == 0) {
		if ((n = jwk_member(jwk, "k", m->jm_secret)) <= 0) {
			jwk_err(err, errlen, "JWK \"k\" is missing or not base64url");
			jwk_material_clear(m);
			return -1;
		}
		m->jm_secretlen = (size_t)n;
		m->jm_private = 1;
		return 0;
	}
	if (strcmp(t, "RSA") == 0)
		m->jm_pkey = jwk_decode_rsa(jwk, &m->jm_private);
	else if (strcmp(t, "EC") == 0)
		m->jm_pkey = jwk_decode_ec(jwk, &m->jm_private);
	else if (strcmp(t, "OKP") == 0)
		m->jm_pkey = jwk_decode_okp(jwk, &m->jm_private);
	ERR_clear_error();
	if (m->jm_pkey == NULL) {
		jwk_err(err, errlen, "unsupported or invalid JWK (RSA, EC P-256, OKP Ed25519, oct)");
		return -1;
	}
	return 0;
}

void
jwk_material_clear(struct jwk_material *m)
{
	EVP_PKEY_free(m->jm_pkey);
	OPENSSL_cleanse(m->jm_secret, sizeof(m->jm_secret));
	memset(m, 0, sizeof(*m));
}

/* Sets member name of obj to the base64url of n bytes. Returns 0 or -1. */
static int
jwk_set_b64(json_t *obj, const char *name, const unsigned char *in, size_t n)
{
	char out[2 * JWK_MAX_VALUE];

	if (base64_encoded_len(n) >= sizeof(out))
		return -1;
	base64_encode(BASE64_URL, in, n, out);
	return json_object_set_new(obj, name, json_string(out));
}

static int
jwk_set_bn(json_t *obj, const char *name, EVP_PKEY *pkey, const char *param)
{
	unsigned char buf[JWK_MAX_VALUE];
	BIGNUM *bn = NULL;
	int n, rc = -1;

	if (EVP_PKEY_get_bn_param(pkey, param, &bn) == 1 && (n = BN_num_bytes(bn)) <= JWK_MAX_VALUE &&
	    BN_bn2bin(bn, buf) == n)
		rc = jwk_set_b64(obj, name, buf, (size_t)n);
	BN_free(bn);
	return rc;
}

/* For EC, x and y are padded to the field size (RFC 7518 6.2.1.2). */
static int
jwk_set_coord(json_t *obj, const char *name, EVP_PKEY *pkey, const char *param)
{
	unsigned char buf[32];
	BIGNUM *bn = NULL;
	int rc = -1;

	if (EVP_PKEY_get_bn_param(pkey, param, &bn) == 1 && BN_bn2binpad(bn, buf, 32) == 32)
		rc = jwk_set_b64(obj, name, buf, 32);
	BN_free(bn);
	return rc;
}

json_t *
jwk_encode(EVP_PKEY *pkey)
{
	unsigned char raw[32];
	size_t rawlen = sizeof(raw);
	json_t *j;
	int rc;

	if ((j = json_object()) == NULL)
		return NULL;
	if (EVP_PKEY_is_a(pkey, "RSA"))
		rc = json_object_set_new(j, "kty", json_string("RSA")) == -1 ||
		    jwk_set_bn(j, "n", pkey, OSSL_PKEY_PARAM_RSA_N) == -1 ||
		    jwk_set_bn(j, "e", pkey, OSSL_PKEY_PARAM_RSA_E) == -1;
	else if (EVP_PKEY_is_a(pkey, "EC"))
		rc = json_object_set_new(j, "kty", json_string("EC")) == -1 ||
		    json_object_set_new(j, "crv", json_string("P-256")) == -1 ||
		    jwk_set_coord(j, "x", pkey, OSSL_PKEY_PARAM_EC_PUB_X) == -1 ||
		    jwk_set_coord(j, "y", pkey, OSSL_PKEY_PARAM_EC_PUB_Y) == -1;
	else if (EVP_PKEY_is_a(pkey, "ED25519"))
		rc = json_object_set_new(j, "kty", json_string("OKP")) == -1 ||
		    json_object_set_new(j, "crv", json_string("Ed25519")) == -1 ||
		    EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) != 1 || rawlen != 32 ||
		    jwk_set_b64(j, "x", raw, 32) == -1;
	else
		rc = 1;
	ERR_clear_error();
	if (rc) {
		json_decref(j);
		return NULL;
	}
	return j;
}

int
jwk_thumbprint(EVP_PKEY *pkey, char *out)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	json_t *j;
	char *s;
	int rc = -1;

	if ((j = jwk_encode(pkey)) == NULL)
		return -1;
	/* RFC 7638: the required members only, sorted, no whitespace; all values are plain
	 * ASCII, so Jansson's compact sorted output is exactly the canonical form. */
	if ((s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS)) != NULL &&
	    EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32) {
		base64_encode(BASE64_URL, md, 32, out);
		rc = 0;
	}
	free(s);
	json_decref(j);
	return rc;
}
