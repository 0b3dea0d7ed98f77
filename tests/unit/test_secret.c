/* Unit tests for common/secret.c: session ids and refresh tokens, and the hashes stored for them. */
#include <openssl/evp.h>

#include "unit.h"
#include "base64.h"
#include "secret.h"

static int
hash_of(const char *s, char *hash)
{
	return secret_hash(s, strlen(s), hash);
}

static void
new_and_hash(void)
{
	char sid[SECRET_LEN + 1], key[SECRET_HASH_LEN + 1], key2[SECRET_HASH_LEN + 1];
	char other[SECRET_LEN + 1], bad[64];
	size_t i;

	CHECK_INT(secret_new(sid, key), 0);
	CHECK_INT(strlen(sid), SECRET_LEN);
	CHECK_INT(strlen(key), SECRET_HASH_LEN);
	CHECK_INT(strspn(sid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
	    SECRET_LEN);
	CHECK(strcmp(sid, key) != 0);
	CHECK_INT(hash_of(sid, key2), 0);
	CHECK_STR(key2, key);
	CHECK_INT(secret_new(other, key2), 0);
	CHECK(strcmp(other, sid) != 0 && strcmp(key2, key) != 0);

	CHECK_INT(hash_of("", key2), -1);
	CHECK_INT(hash_of("abc", key2), -1);
	snprintf(bad, sizeof(bad), "%sA", sid);
	CHECK_INT(hash_of(bad, key2), -1);		/* 44 characters */
	snprintf(bad, sizeof(bad), "%s", sid);
	bad[10] = '+';
	CHECK_INT(hash_of(bad, key2), -1);		/* standard alphabet */
	bad[10] = '=';
	CHECK_INT(hash_of(bad, key2), -1);
	snprintf(bad, sizeof(bad), "%.42sB", sid);		/* 'B': trailing bits not zero */
	CHECK_INT(hash_of(bad, key2), -1);
	for (i = 0; i < 5; i++) {
		snprintf(bad, sizeof(bad), "%.42s%c", sid, "AEIMQ"[i]);
		CHECK_INT(hash_of(bad, key2), 0);	/* canonical endings */
	}
}

/* The stored hash is exactly base64url(SHA-256(the 32 raw bytes)), the form Redis holds. */
static void
hash_is_sha256_of_raw(void)
{
	char s[SECRET_LEN + 1], hash[SECRET_HASH_LEN + 1], want[SECRET_HASH_LEN + 1];
	unsigned char raw[SECRET_BYTES + 3], md[32];
	size_t rawlen = 0;
	unsigned int mdlen = 0;

	CHECK_INT(secret_new(s, hash), 0);
	CHECK_INT(base64_decode(BASE64_URL, s, SECRET_LEN, raw, &rawlen), 0);
	CHECK_INT(rawlen, SECRET_BYTES);
	CHECK_INT(EVP_Digest(raw, rawlen, md, &mdlen, EVP_sha256(), NULL), 1);
	base64_encode(BASE64_URL, md, mdlen, want);
	CHECK_STR(hash, want);
	/* The length given is the length judged: one character short is refused. */
	CHECK_INT(secret_hash(s, SECRET_LEN - 1, hash), -1);
}

UNIT_MAIN(CASE(new_and_hash), CASE(hash_is_sha256_of_raw))
