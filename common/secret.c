/* Bearer secrets and the hashes stored in their place (see secret.h). */
#include <pthread.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base64.h"
#include "secret.h"

/* SHA-256 fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up on every digest,
 * which costs more than hashing 32 bytes. */
static EVP_MD *secret_md;
static pthread_once_t secret_once = PTHREAD_ONCE_INIT;

static void
secret_init(void)
{
	secret_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int
secret_hash_raw(const unsigned char *raw, size_t len, char *hash)
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (pthread_once(&secret_once, secret_init) != 0 || secret_md == NULL ||
	    EVP_Digest(raw, len, md, &mdlen, secret_md, NULL) != 1 || mdlen != sizeof(md))
		return -1;
	base64_encode(BASE64_URL, md, sizeof(md), hash);
	return 0;
}

int
secret_new(char *secret, char *hash)
{
	unsigned char raw[SECRET_BYTES];
	int rv = -1;

	if (RAND_bytes(raw, sizeof(raw)) == 1) {
		base64_encode(BASE64_URL, raw, sizeof(raw), secret);
		rv = secret_hash_raw(raw, sizeof(raw), hash);
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	return rv;
}

int
secret_hash(const char *secret, size_t len, char *hash)
{
	unsigned char raw[SECRET_BYTES + 3];	/* base64_decoded_max(SECRET_LEN) */
	size_t rawlen = 0;
	int rv = -1;

	if (len == SECRET_LEN && base64_decode(BASE64_URL, secret, len, raw, &rawlen) == 0 &&
	    rawlen == SECRET_BYTES)
		rv = secret_hash_raw(raw, rawlen, hash);
	OPENSSL_cleanse(raw, sizeof(raw));
	return rv;
}
