/* Password hashes: scrypt (RFC 7914) through OpenSSL 3's EVP_KDF, in passlib's string format
 * "$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>" with the standard base64 alphabet unpadded.
 * We write 16-byte salts and 32-byte hashes, as passlib does. */
#include "passwd.h"
#include "base64.h"

#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define PASSWD_SALT	16
#define PASSWD_HASHLEN	32
#define PASSWD_SALT_MIN	8
#define PASSWD_SALT_MAX	64
/* OpenSSL refuses scrypt above maxmem (32 MiB by default, too small for OWASP's N = 2^17,
 * r = 8). We allow what the parameters need up to this cap, which still fits RFC 7914's
 * largest test vector (N = 2^20, r = 8: 1 GiB), so a hostile hash string cannot ask for more. */
#define PASSWD_MAXMEM	((uint64_t)2 << 30)

/* A parsed hash string. */
struct passwd_parsed {
	struct passwd_cost cost;
	unsigned char	 salt[PASSWD_SALT_MAX];
	size_t		 saltlen;
	unsigned char	 hash[PASSWD_HASHLEN];
};

/* Bytes scrypt needs for these parameters (OpenSSL's own sum: B = 128 r p plus
 * V = 128 r (N + 2)), or UINT64_MAX when that does not even fit. */
static uint64_t
passwd_memory(uint64_t N, uint32_t r, uint32_t p)
{
	uint64_t b, v;

	if (__builtin_mul_overflow((uint64_t)128 * r, p, &b) ||
	    __builtin_mul_overflow((uint64_t)128 * r, N + 2, &v) || v + b < v)
		return UINT64_MAX;
	return v + b;
}

int
scrypt_kdf(const void *pw, size_t pwlen, const void *salt, size_t saltlen, uint64_t N,
    uint32_t r, uint32_t p, unsigned char *out, size_t outlen)
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[7];
	uint64_t maxmem;
	int ret = -1;

	if (r == 0 || p == 0 || (maxmem = passwd_memory(N, r, p)) > PASSWD_MAXMEM)
		return -1;
	if ((kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL)) == NULL ||
	    (ctx = EVP_KDF_CTX_new(kdf)) == NULL)
		goto fail;
	/* OpenSSL takes the pointers as const in practice; the casts only satisfy the API. */
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pw, pwlen);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
	params[2] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &N);
	params[3] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r);
	params[4] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p);
	params[5] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
	params[6] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, outlen, params) != 1)
		goto fail;
	ret = 0;
 fail:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return ret;
}

/* Reads a decimal number in [min, max] without sign or leading zeros, ending at stop.
 * Advances *s past stop. Returns the number or -1. */
static long
passwd_number(const char **s, char stop, long min, long max)
{
	const char *p = *s;
	long v = 0;

	if (*p < '0' || *p > '9' || (*p == '0' && p[1] != stop))
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (*p - '0');
		if (v > max)
			return -1;
	}
	if (*p != stop || v < min)
		return -1;
	*s = p + 1;
	return v;
}

uint64_t
passwd_work(const struct passwd_cost *c)
{
	/* ln <= 22, r <= 32, p <= 16 (passwd_parse): at most 2^35, no overflow. */
	return ((uint64_t)1 << c->ln) * c->r * c->p;
}

/* Parses a hash string into pp, whatever its cost. Returns 0, or -1 when it is malformed. */
static int
passwd_parse(const char *hash, struct passwd_parsed *pp)
{
	const char *s = hash, *dollar;
	size_t n, len;
	long v;

	if (strncmp(s, "$scrypt$ln=", 11) != 0)
		return -1;
	s += 11;
	if ((v = passwd_number(&s, ',', 1, 22)) == -1)
		return -1;
	pp->cost.ln = (int)v;
	if (strncmp(s, "r=", 2) != 0)
		return -1;
	s += 2;
	if ((v = passwd_number(&s, ',', 1, 32)) == -1)
		return -1;
	pp->cost.r = (uint32_t)v;
	if (strncmp(s, "p=", 2) != 0)
		return -1;
	s += 2;
	if ((v = passwd_number(&s, '$', 1, 16)) == -1)
		return -1;
	pp->cost.p = (uint32_t)v;

	if ((dollar = strchr(s, '$')) == NULL)
		return -1;
	n = (size_t)(dollar - s);
	if (base64_decoded_max(n) > PASSWD_SALT_MAX ||
	    base64_decode(BASE64_STD, s, n, pp->salt, &pp->saltlen) == -1 ||
	    pp->saltlen < PASSWD_SALT_MIN)
		return -1;
	s = dollar + 1;
	n = strlen(s);
	if (base64_decoded_max(n) != PASSWD_HASHLEN ||
	    base64_decode(BASE64_STD, s, n, pp->hash, &len) == -1 || len != PASSWD_HASHLEN)
		return -1;
	return 0;
}

/* Parses hash into pp and refuses a cost over PASSWD_MAX_WORK. Returns 0 or -1. */
static int
passwd_parse_capped(const char *hash, struct passwd_parsed *pp)
{
	if (passwd_parse(hash, pp) == -1 || passwd_work(&pp->cost) > PASSWD_MAX_WORK)
		return -1;
	return 0;
}

int
passwd_check(const char *hash)
{
	struct passwd_parsed pp;

	return passwd_parse_capped(hash, &pp);
}

int
passwd_cost(const char *hash, struct passwd_cost *c)
{
	struct passwd_parsed pp;

	if (passwd_parse(hash, &pp) == -1)
		return -1;
	*c = pp.cost;
	return 0;
}

int
passwd_hash(const char *pw, size_t pwlen, int ln, char *out, size_t outlen)
{
	unsigned char salt[PASSWD_SALT], hash[PASSWD_HASHLEN];
	char salt64[PASSWD_SALT * 2], hash64[PASSWD_HASHLEN * 2];
	struct passwd_cost c = { ln, 8, 1 };
	int n;

	if (ln < 1 || ln > 22 || passwd_work(&c) > PASSWD_MAX_WORK ||
	    RAND_bytes(salt, sizeof(salt)) != 1 ||
	    scrypt_kdf(pw, pwlen, salt, sizeof(salt), (uint64_t)1 << ln, 8, 1, hash,
	    sizeof(hash)) == -1)
		return -1;
	base64_encode(BASE64_STD, salt, sizeof(salt), salt64);
	base64_encode(BASE64_STD, hash, sizeof(hash), hash64);
	OPENSSL_cleanse(hash, sizeof(hash));
	n = snprintf(out, outlen, "$scrypt$ln=%d,r=8,p=1$%s$%s", ln, salt64, hash64);
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return 0;
}

int
passwd_verify(const char *pw, size_t pwlen, const char *hash)
{
	struct passwd_parsed pp;
	unsigned char got[PASSWD_HASHLEN];
	int ok;

	if (passwd_parse_capped(hash, &pp) == -1 ||
	    scrypt_kdf(pw, pwlen, pp.salt, pp.saltlen, (uint64_t)1 << pp.cost.ln, pp.cost.r,
	    pp.cost.p, got, sizeof(got)) == -1)
		return -1;
	ok = CRYPTO_memcmp(got, pp.hash, sizeof(got)) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}
