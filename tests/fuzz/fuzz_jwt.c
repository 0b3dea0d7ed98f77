/*
 * libFuzzer harness for the JWT verifier (common/jwt.c) with one HS256 and one ES256 key, as
 * jwt_server may have them. The first input byte picks a mode:
 *   0: the rest is a token, verified as received and decoded for display (the seeds hold
 *      tokens really signed with these keys, so mutations start from valid ones);
 *   1: the rest is "<header JSON>\n<payload JSON>", signed here with the HS256 key, so the
 *      fuzzer reaches the header and claims checks behind the signature;
 *   2: the same, signed with the ES256 key;
 *   3: the same, HMAC'd with the ES256 public key PEM as secret (key confusion): never valid.
 * Whatever verifies must carry the alg of the key that signed it and an exp not yet past, and
 * verifying again (through the verifier's cache of accepted tokens) must give the same answer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base64.h"
#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_NOW	1700000000	/* the clock every seed token is made for */

/* Throw-away test keys, made for this harness with openssl genpkey; they guard nothing. */
static const char fuzz_secret[] = "fuzz-secret-fuzz-secret-fuzz-secret-0123456789";
static const char fuzz_es_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9VqH6bZGnDWNMLfW\n"
    "zpgF7tV5giT9qexw5r4Aas9pugyhRANCAAQL7LlJos1qtSgU5gqVWewxx6Ky0/Og\n"
    "M5d8LE7hs5Vog1wFQoeOfg1jZffSU9lE1aWGgyN1vJI53OFzjnsK10zT\n"
    "-----END PRIVATE KEY-----\n";
static const char fuzz_es_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC+y5SaLNarUoFOYKlVnsMceistPz\n"
    "oDOXfCxO4bOVaINcBUKHjn4NY2X30lPZRNWlhoMjdbySOdzhc457CtdM0w==\n"
    "-----END PUBLIC KEY-----\n";

static struct jwt_verifier	*fuzz_verifier;
static struct jwt_key		*fuzz_hs, *fuzz_es;	/* owned by the verifier */

static void
fuzz_init(void)
{
	char err[256];

	if ((fuzz_verifier = jwt_verifier_new()) == NULL ||
	    (fuzz_hs = jwt_key_from_secret(fuzz_secret, sizeof(fuzz_secret) - 1, err,
	    sizeof(err))) == NULL ||
	    (fuzz_es = jwt_key_from_pem(fuzz_es_pem, sizeof(fuzz_es_pem) - 1, err,
	    sizeof(err))) == NULL ||
	    jwt_verifier_add_key(fuzz_verifier, fuzz_hs) == -1 ||
	    jwt_verifier_add_key(fuzz_verifier, fuzz_es) == -1)
		abort();
}

/* Verifies token and checks what a valid answer promises. want_alg is the only algorithm that
 * may verify (NULL: none may, because nobody holding a key signed it; "": either key's). */
static void
fuzz_verify(const char *token, size_t len, const char *want_alg)
{
	enum jwt_reason why = JWT_NREASONS, again, shape;
	json_t *claims = NULL, *hdr, *pay, *exp;
	const char *alg;
	unsigned char *sig;
	size_t siglen;
	int rc;

	rc = jwt_verify(fuzz_verifier, token, len, FUZZ_NOW, &why, &claims);
	if (rc == -1 || why >= JWT_NREASONS)
		abort();	/* nothing here is a library failure */
	if (why == JWT_VALID) {
		if (claims == NULL || want_alg == NULL ||
		    !json_is_number(exp = json_object_get(claims, "exp")) ||
		    json_number_value(exp) + JWT_DEFAULT_LEEWAY <= FUZZ_NOW)
			abort();
		json_decref(claims);
		/* Verified means decodable, with the header saying the key's algorithm. */
		if (jwt_decode(token, len, &hdr, &pay, &sig, &siglen, &shape) == -1 ||
		    (alg = json_string_value(json_object_get(hdr, "alg"))) == NULL)
			abort();
		if (*want_alg != '\0' ? strcmp(alg, want_alg) != 0 :
		    strcmp(alg, "HS256") != 0 && strcmp(alg, "ES256") != 0)
			abort();
		json_decref(hdr);
		json_decref(pay);
		free(sig);
	} else if (claims != NULL) {
		abort();
	}
	/* A second look gives the same answer, from the cache when the token was accepted. */
	if (jwt_verify(fuzz_verifier, token, len, FUZZ_NOW, &again, NULL) == -1 || again != why)
		abort();
	/* Also strings for display and log lines must exist for every reason. */
	if (jwt_reason_code(why) == NULL || jwt_reason_text(why) == NULL)
		abort();
}

/* Encodes "<header>\n<payload>" from data as the first two segments of a token and signs
 * them with mode's key. Returns a new token the caller frees, with its length in *len. */
static char *
fuzz_make(int mode, const uint8_t *data, size_t size, size_t *len)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t hlen = nl != NULL ? (size_t)(nl - data) : size;
	size_t plen = nl != NULL ? size - hlen - 1 : 0;
	unsigned char sig[512];
	unsigned int maclen;
	size_t siglen = 0, n;
	char *t;

	n = base64_encoded_len(hlen) + base64_encoded_len(plen) + base64_encoded_len(sizeof(sig)) + 3;
	if ((t = malloc(n)) == NULL)
		abort();
	n = base64_encode(BASE64_URL, data, hlen, t);
	t[n++] = '.';
	n += base64_encode(BASE64_URL, nl != NULL ? nl + 1 : data, plen, t + n);
	if (mode == 1 || mode == 2) {
		if (jwt_sign_input(mode == 1 ? fuzz_hs : fuzz_es, t, n, sig, &siglen) == -1)
			abort();
	} else {
		if (HMAC(EVP_sha256(), fuzz_es_pub, (int)sizeof(fuzz_es_pub) - 1,
		    (const unsigned char *)t, n, sig, &maclen) == NULL)
			abort();
		siglen = maclen;
	}
	t[n++] = '.';
	n += base64_encode(BASE64_URL, sig, siglen, t + n);
	*len = n;
	return t;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const want[4] = { "", "HS256", "ES256", NULL };
	json_t *hdr, *pay;
	unsigned char *sig;
	enum jwt_reason why;
	size_t len, siglen;
	char *t;
	int mode;

	if (fuzz_verifier == NULL)
		fuzz_init();
	if (size < 1)
		return 0;
	mode = data[0] & 3;
	data++;
	size--;
	if (mode == 0) {
		/* An exact-size copy without a NUL: the verifier must respect len. */
		if ((t = malloc(size > 0 ? size : 1)) == NULL)
			abort();
		memcpy(t, data, size);
		len = size;
		if (jwt_decode(t, len, &hdr, &pay, &sig, &siglen, &why) == 0) {
			if (!json_is_object(hdr) || !json_is_object(pay))
				abort();
			json_decref(hdr);
			json_decref(pay);
			free(sig);
		}
	} else {
		t = fuzz_make(mode, data, size, &len);
	}
	fuzz_verify(t, len, want[mode]);
	free(t);
	return 0;
}
