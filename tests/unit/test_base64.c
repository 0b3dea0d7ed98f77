/* Unit tests for common/base64.c: RFC 4648 section 10 vectors in both alphabets, round trips,
 * and every way a non-canonical encoding must be refused. */
#include "unit.h"
#include "base64.h"

static const struct {
	const char	*plain;
	const char	*enc;
} vectors[] = {	/* RFC 4648 section 10, padding removed */
	{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
	{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
};

/* Decodes s (a C string) in alphabet a; returns the decode result. */
static int
decode(enum base64_alphabet a, const char *s, unsigned char *out, size_t *outlen)
{
	return base64_decode(a, s, strlen(s), out, outlen);
}

static void
rfc4648_vectors(void)
{
	enum base64_alphabet alpha[2] = { BASE64_URL, BASE64_STD };
	unsigned char dec[16];
	char enc[16];
	size_t i, k, n;

	for (k = 0; k < 2; k++) {
		for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
			n = strlen(vectors[i].plain);
			CHECK_INT(base64_encoded_len(n), strlen(vectors[i].enc));
			CHECK_INT(base64_encode(alpha[k], vectors[i].plain, n, enc),
			    strlen(vectors[i].enc));
			CHECK_STR(enc, vectors[i].enc);
			CHECK(base64_decoded_max(strlen(vectors[i].enc)) >= n);
			CHECK_INT(decode(alpha[k], vectors[i].enc, dec, &n), 0);
			CHECK_INT(n, strlen(vectors[i].plain));
			CHECK_MEM(dec, vectors[i].plain, n);
		}
	}
}

static void
alphabets_differ(void)
{
	static const unsigned char bytes[] = { 0xfb, 0xff, 0xbf };
	unsigned char dec[8];
	char enc[8];
	size_t n;

	base64_encode(BASE64_STD, bytes, 2, enc);
	CHECK_STR(enc, "+/8");
	base64_encode(BASE64_URL, bytes, 2, enc);
	CHECK_STR(enc, "-_8");
	base64_encode(BASE64_URL, bytes, 3, enc);
	CHECK_STR(enc, "-_-_");
	CHECK_INT(decode(BASE64_URL, "-_8", dec, &n), 0);
	CHECK_INT(n, 2);
	CHECK_MEM(dec, bytes, 2);
	CHECK_INT(decode(BASE64_STD, "+/8", dec, &n), 0);
	CHECK_MEM(dec, bytes, 2);
	/* Each alphabet refuses the other's two special characters. */
	CHECK_INT(decode(BASE64_URL, "+/8", dec, &n), -1);
	CHECK_INT(decode(BASE64_STD, "-_8", dec, &n), -1);
	CHECK_INT(decode(BASE64_URL, "ab+c", dec, &n), -1);
	CHECK_INT(decode(BASE64_STD, "ab_c", dec, &n), -1);
}

static void
round_trip(void)
{
	unsigned char in[64], dec[64];
	char enc[128];
	size_t n, len, outlen;

	for (n = 0; n < sizeof(in); n++)
		in[n] = (unsigned char)(n * 37 + 11);
	for (len = 0; len <= sizeof(in); len++) {
		CHECK_INT(base64_encode(BASE64_URL, in, len, enc), base64_encoded_len(len));
		CHECK_INT(base64_decoded_max(strlen(enc)), len);
		CHECK_INT(decode(BASE64_URL, enc, dec, &outlen), 0);
		CHECK_INT(outlen, len);
		CHECK_MEM(dec, in, len);
	}
}

static void
rejects_padding(void)
{
	unsigned char dec[16];
	size_t n;

	CHECK_INT(decode(BASE64_URL, "Zg==", dec, &n), -1);
	CHECK_INT(decode(BASE64_STD, "Zg==", dec, &n), -1);
	CHECK_INT(decode(BASE64_URL, "Zm8=", dec, &n), -1);
	CHECK_INT(decode(BASE64_STD, "Zm8=", dec, &n), -1);
	CHECK_INT(decode(BASE64_URL, "Zg=", dec, &n), -1);
	CHECK_INT(decode(BASE64_URL, "====", dec, &n), -1);
}

static void
rejects_bad_chars(void)
{
	static const char *bad[] = { "Zm9v YmFy", "Zm9v\nYmFy", "Zm9v.mFy", "Zm9v*mFy",
	    "Zm9v\x80mFy", "Zm9v\xffmFy", " Zm9v", "Zm9v ", "Zm:v", "Zm9v%3D" };
	unsigned char dec[16];
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(decode(BASE64_URL, bad[i], dec, &n), -1);
		CHECK_INT(decode(BASE64_STD, bad[i], dec, &n), -1);
	}
	/* An embedded NUL is a character outside the alphabet too. */
	CHECK_INT(base64_decode(BASE64_URL, "Zm\0v", 4, dec, &n), -1);
}

static void
rejects_impossible_length(void)
{
	unsigned char dec[16];
	size_t n;

	CHECK_INT(decode(BASE64_URL, "Z", dec, &n), -1);
	CHECK_INT(decode(BASE64_URL, "Zm9vY", dec, &n), -1);
	CHECK_INT(decode(BASE64_STD, "Zm9vYmFyZ", dec, &n), -1);
	CHECK_INT(base64_decoded_max(1), 0);
	CHECK_INT(base64_decoded_max(2), 1);
	CHECK_INT(base64_decoded_max(3), 2);
	CHECK_INT(base64_decoded_max(4), 3);
}

static void
rejects_trailing_bits(void)
{
	unsigned char dec[16];
	size_t n;

	/* "Zg" is "f"; "Zh".."Zv" decode to the same byte with non-zero spare bits. */
	CHECK_INT(decode(BASE64_URL, "Zh", dec, &n), -1);
	CHECK_INT(decode(BASE64_URL, "Zv", dec, &n), -1);
	CHECK_INT(decode(BASE64_STD, "Zh", dec, &n), -1);
	/* "Zm8" is "fo"; "Zm9" has its last two bits set. */
	CHECK_INT(decode(BASE64_URL, "Zm9", dec, &n), -1);
	CHECK_INT(decode(BASE64_STD, "Zm+", dec, &n), -1);
	CHECK_INT(decode(BASE64_URL, "Zm8", dec, &n), 0);
}

UNIT_MAIN(CASE(rfc4648_vectors), CASE(alphabets_differ), CASE(round_trip), CASE(rejects_padding),
    CASE(rejects_bad_chars), CASE(rejects_impossible_length), CASE(rejects_trailing_bits))
