/* libFuzzer harness for common/base64.c: any input must decode without touching memory it
 * should not, and the strictness promise of base64.h must hold both ways: whatever decodes
 * re-encodes to exactly the same text, and every byte string round-trips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Decodes data in alphabet a; when accepted, re-encoding must give back the very same text. */
static void
fuzz_decode(enum base64_alphabet a, const uint8_t *data, size_t size)
{
	unsigned char *out;
	char *again;
	size_t outlen = (size_t)-1;

	/* Exact-size buffers so ASan catches a write one past the promised maximum. */
	if ((out = malloc(base64_decoded_max(size) + 1)) == NULL)
		abort();
	if (base64_decode(a, (const char *)data, size, out, &outlen) == 0) {
		if (outlen > base64_decoded_max(size))
			abort();
		if ((again = malloc(base64_encoded_len(outlen) + 1)) == NULL)
			abort();
		if (base64_encode(a, out, outlen, again) != size ||
		    memcmp(again, data, size) != 0)
			abort();	/* two encodings for one byte string */
		free(again);
	}
	free(out);
}

/* Encodes data and decodes it back: must be the identity, in both alphabets. */
static void
fuzz_roundtrip(enum base64_alphabet a, const uint8_t *data, size_t size)
{
	size_t elen = base64_encoded_len(size), outlen = (size_t)-1;
	unsigned char *out;
	char *enc;

	if ((enc = malloc(elen + 1)) == NULL ||
	    (out = malloc(base64_decoded_max(elen) + 1)) == NULL)
		abort();
	if (base64_encode(a, data, size, enc) != elen || enc[elen] != '\0' ||
	    strlen(enc) != elen)
		abort();
	if (base64_decode(a, enc, elen, out, &outlen) != 0 || outlen != size ||
	    (size > 0 && memcmp(out, data, size) != 0))
		abort();
	free(enc);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_decode(BASE64_URL, data, size);
	fuzz_decode(BASE64_STD, data, size);
	fuzz_roundtrip(BASE64_URL, data, size);
	fuzz_roundtrip(BASE64_STD, data, size);
	return 0;
}
