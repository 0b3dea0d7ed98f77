/*
 * The keys of jwt.h (see jwt_key.h): HS256 secrets, and RSA, P-256 and Ed25519 keys read from
 * files, PEM text or JWKs (through jwk.c, which knows only JSON and key material). Each key gets
 * its algorithm from its type and its kid from its contents, and keeps the OpenSSL contexts
 * jwt.c copies for each signature.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base64.h"
#include "jwk.h"
#include "jwt_key.h"
#include "jwt_key_private.h"

#define JWT_MAX_KEYFILE		65536

static const char *const jwt_alg_names[] = {
	[JWT_HS256] = "HS256", [JWT_RS256] = "RS256", [JWT_ES256] = "ES256", [JWT_EDDSA] = "EdDSA"
};

const char *
jwt_alg_name(enum jwt_alg a)
{
	return jwt_alg_names[a];
}

static void
jwt_err(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

static struct jwt_key *
jwt_key_alloc(void)
{
	return calloc(1, sizeof(struct jwt_key));
}

void
jwt_key_free(struct jwt_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->k_pkey);
	EVP_MAC_CTX_free(k->k_hmac);
	EVP_MD_CTX_free(k->k_verify);
	free(k);
}

enum jwt_alg
jwt_key_alg(const struct jwt_key *k)
{
	return k->k_alg;
}

int
jwt_key_can_sign(const struct jwt_key *k)
{
	return k->k_private;
}

const char *
jwt_key_kid(const struct jwt_key *k)
{
	return k->k_kid;
}

int
jwt_key_set_kid(struct jwt_key *k, const char *kid)
{
	size_t n = strlen(kid);

	if (n == 0 || n > JWT_KID_MAX)
		return -1;
	memcpy(k->k_kid, kid, n + 1);
	return 0;
}

int
jwt_key_hmac(const struct jwt_key *k, const void *in, size_t n, unsigned char *out)
{
	EVP_MAC_CTX *c;
	size_t len = 0;
	int ok;

	if ((c = EVP_MAC_CTX_dup(k->k_hmac)) == NULL)
		return -1;
	ok = EVP_MAC_update(c, in, n) == 1 &&
	    EVP_MAC_final(c, out, &len, JWT_HS256_LEN) == 1 && len == JWT_HS256_LEN;
	EVP_MAC_CTX_free(c);
	return ok ? 0 : -1;
}

struct jwt_key *
jwt_key_from_secret(const void *secret, size_t len, char *err, size_t errlen)
{
	struct jwt_key *k = NULL;
	EVP_MAC *mac = NULL;
	OSSL_PARAM params[2];
	unsigned char id[JWT_HS256_LEN];

	if (len < JWT_MIN_SECRET) {
		jwt_err(err, errlen, "an HS256 secret needs at least 32 bytes");
		return NULL;
	}
	if (len >= 10 && memcmp(secret, "-----BEGIN", 10) == 0) {
		/* A PEM key used as an HMAC secret is the classic key-confusion attack. */
		jwt_err(err, errlen, "a PEM key cannot be an HS256 secret");
		return NULL;
	}
	if ((k = jwt_key_alloc()) == NULL)
		goto fail;
	k->k_alg = JWT_HS256;
	k->k_private = 1;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
	    (k->k_hmac = EVP_MAC_CTX_new(mac)) == NULL ||
	    EVP_MAC_init(k->k_hmac, secret, len, params) != 1)
		goto fail;
	/* The kid is a MAC under the secret itself: it tells no more than any token does. */
	if (jwt_key_hmac(k, "jwt-kid", 7, id) == -1)
		goto fail;
	base64_encode(BASE64_URL, id, 16, k->k_kid);
	EVP_MAC_free(mac);
	OPENSSL_cleanse(id, sizeof(id));
	return k;
fail:
	jwt_err(err, errlen, "cannot set up HMAC-SHA256");
	EVP_MAC_free(mac);
	jwt_key_free(k);
	return NULL;
}

/*
 * Wraps pkey into a key: checks the type (RSA of JWT_MIN_RSA_BITS or more, P-256, Ed25519),
 * picks the algorithm and derives the kid. Takes over the caller's reference to pkey, also on
 * failure. has_private says whether pkey can sign.
 */
static struct jwt_key *
jwt_key_wrap(EVP_PKEY *pkey, int has_private, char *err, size_t errlen)
{
	struct jwt_key *k = NULL;
	char group[64];

	if ((k = jwt_key_alloc()) == NULL) {
		jwt_err(err, errlen, "out of memory");
		goto fail;
	}
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		if (EVP_PKEY_get_bits(pkey) < JWT_MIN_RSA_BITS) {
			jwt_err(err, errlen, "RSA keys need at least 2048 bits");
			goto fail;
		}
		k->k_alg = JWT_RS256;
	} else if (EVP_PKEY_is_a(pkey, "EC")) {
		if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
		    sizeof(group), NULL) != 1 || (strcmp(group, "prime256v1") != 0 &&
		    strcmp(group, "P-256") != 0)) {
			jwt_err(err, errlen, "EC keys must be on curve P-256 (ES256)");
			goto fail;
		}
		k->k_alg = JWT_ES256;
	} else if (EVP_PKEY_is_a(pkey, "ED25519")) {
		k->k_alg = JWT_EDDSA;
	} else {
		jwt_err(err, errlen, "unsupported key type (RSA, P-256 or Ed25519 only)");
		goto fail;
	}
	k->k_pkey = pkey;
	k->k_private = has_private;
	if (k->k_alg != JWT_EDDSA && ((k->k_verify = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit_ex(k->k_verify, NULL, "SHA256", NULL, NULL, pkey, NULL) != 1)) {
		jwt_err(err, errlen, "cannot set up signature verification");
		k->k_pkey = NULL;
		goto fail;
	}
	if (jwk_thumbprint(pkey, k->k_kid) == -1) {
		jwt_err(err, errlen, "cannot compute the key thumbprint");
		k->k_pkey = NULL;
		goto fail;
	}
	return k;
fail:
	EVP_PKEY_free(pkey);
	jwt_key_free(k);
	return NULL;
}

struct jwt_key *
jwt_key_from_jwk(const json_t *jwk, char *err, size_t errlen)
{
	struct jwk_material m;
	struct jwt_key *k;

	if (jwk_decode(jwk, &m, err, errlen) == -1)
		return NULL;
	if (m.jm_pkey == NULL)
		k = jwt_key_from_secret(m.jm_secret, m.jm_secretlen, err, errlen);
	else {
		k = jwt_key_wrap(m.jm_pkey, m.jm_private, err, errlen);
		m.jm_pkey = NULL;	/* taken over by jwt_key_wrap() */
	}
	if (k == NULL)
		goto done;
	if (m.jm_alg != NULL && strcmp(m.jm_alg, jwt_alg_name(k->k_alg)) != 0) {
		jwt_err(err, errlen, "JWK \"alg\" does not match the key");
		goto fail;
	}
	if (m.jm_kid != NULL && jwt_key_set_kid(k, m.jm_kid) == -1) {
		jwt_err(err, errlen, "JWK \"kid\" must be a string of 1 to 64 bytes");
		goto fail;
	}
done:
	jwk_material_clear(&m);
	return k;
fail:
	jwt_key_free(k);
	jwk_material_clear(&m);
	return NULL;
}

/* Encrypted PEM keys are refused rather than prompting on a terminal. */
static int
jwt_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag; (void)u;
	return -1;
}

struct jwt_key *
jwt_key_from_pem(const char *pem, size_t len, char *err, size_t errlen)
{
	BIO *b;
	EVP_PKEY *pkey;
	int priv = 1;

	if (len > JWT_MAX_KEYFILE || (b = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		jwt_err(err, errlen, "cannot read the PEM text");
		return NULL;
	}
	pkey = PEM_read_bio_PrivateKey(b, NULL, jwt_no_passphrase, NULL);
	if (pkey == NULL) {
		priv = 0;
		ERR_clear_error();
		(void)BIO_reset(b);
		pkey = PEM_read_bio_PUBKEY(b, NULL, jwt_no_passphrase, NULL);
	}
	BIO_free(b);
	ERR_clear_error();
	if (pkey == NULL) {
		jwt_err(err, errlen, "not an unencrypted PEM private key or public key");
		return NULL;
	}
	return jwt_key_wrap(pkey, priv, err, errlen);
}

/* Reads a whole small file. Returns malloc'd bytes (NUL-terminated, the caller frees) with
 * *len set, or NULL with err set. */
static char *
jwt_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	size_t got = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		jwt_err(err, errlen, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_size > JWT_MAX_KEYFILE) {
		jwt_err(err, errlen, "not a regular file of at most 64 KiB");
		goto fail;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		goto fail;
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			jwt_err(err, errlen, "short read");
			goto fail;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*len = got;
	close(fd);
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

/* The secret is the file's bytes without one trailing newline, so echo and editors work. */
static struct jwt_key *
jwt_key_secret_bytes(char *buf, size_t len, char *err, size_t errlen)
{
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	return jwt_key_from_secret(buf, len, err, errlen);
}

static void
jwt_err_file(char *err, size_t errlen, const char *path)
{
	char tmp[256];

	if (err == NULL || errlen == 0)
		return;
	snprintf(tmp, sizeof(tmp), "%s", err);
	snprintf(err, errlen, "%s: %s", path, tmp);
}

struct jwt_key *
jwt_key_load_secret(const char *path, char *err, size_t errlen)
{
	struct jwt_key *k;
	char *buf;
	size_t len;

	if ((buf = jwt_read_file(path, &len, err, errlen)) == NULL) {
		jwt_err_file(err, errlen, path);
		return NULL;
	}
	k = jwt_key_secret_bytes(buf, len, err, errlen);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (k == NULL)
		jwt_err_file(err, errlen, path);
	return k;
}

struct jwt_key *
jwt_key_load(const char *path, char *err, size_t errlen)
{
	struct jwt_key *k;
	json_t *jwk = NULL;
	char *buf;
	size_t len, skip;

	if ((buf = jwt_read_file(path, &len, err, errlen)) == NULL) {
		jwt_err_file(err, errlen, path);
		return NULL;
	}
	skip = strspn(buf, " \t\r\n");
	if (strncmp(buf + skip, "-----BEGIN", 10) == 0)
		k = jwt_key_from_pem(buf, len, err, errlen);
	else if (buf[skip] == '{' &&
	    (jwk = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL)) != NULL)
		k = jwt_key_from_jwk(jwk, err, errlen);
	else
		k = jwt_key_secret_bytes(buf, len, err, errlen);
	json_decref(jwk);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (k == NULL)
		jwt_err_file(err, errlen, path);
	return k;
}

json_t *
jwt_key_jwk(const struct jwt_key *k)
{
	json_t *jwk;

	if (k->k_pkey == NULL || (jwk = jwk_encode(k->k_pkey)) == NULL)
		return NULL;
	if (json_object_set_new(jwk, "kid", json_string(k->k_kid)) == -1 ||
	    json_object_set_new(jwk, "alg", json_string(jwt_alg_name(k->k_alg))) == -1 ||
	    json_object_set_new(jwk, "use", json_string("sig")) == -1) {
		json_decref(jwk);
		return NULL;
	}
	return jwk;
}
