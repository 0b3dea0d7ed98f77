/* Strict unpadded base64 in the url-safe (RFC 4648 section 5) and the standard alphabet. Strict
 * means one accepted encoding per byte string: a verifier that compares encodings (JWT
 * signatures, session ids) cannot be fooled by padding or by bits that decoding would drop. */
#include "base64.h"

static const char base64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char base64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
base64_encoded_len(size_t n)
{
	static const size_t tail[3] = { 0, 2, 3 };

	return n / 3 * 4 + tail[n % 3];
}

size_t
base64_decoded_max(size_t n)
{
	/* 2 characters carry 1 byte, 3 carry 2; a single leftover character is never valid. */
	return n / 4 * 3 + (n % 4 > 1 ? n % 4 - 1 : 0);
}

size_t
base64_encode(enum base64_alphabet a, const void *in, size_t n, char *out)
{
	const char *abc = a == BASE64_URL ? base64_url : base64_std;
	const unsigned char *p = in;
	size_t i, o = 0;
	unsigned long v;

	for (i = 0; i + 3 <= n; i += 3) {
		v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8 | p[i + 2];
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
		out[o++] = abc[v & 63];
	}
	if (n - i == 1) {
		v = (unsigned long)p[i] << 16;
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8;
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

/* The 6-bit value of character c in the alphabet, or -1. */
static int
base64_value(enum base64_alphabet a, unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (a == BASE64_URL ? '-' : '+'))
		return 62;
	if (c == (a == BASE64_URL ? '_' : '/'))
		return 63;
	return -1;
}

int
base64_decode(enum base64_alphabet a, const char *in, size_t n, unsigned char *out,
    size_t *outlen)
{
	unsigned long v = 0;
	size_t i, o = 0;
	int bits = 0, d;

	if (n % 4 == 1)
		return -1;
	for (i = 0; i < n; i++) {
		if ((d = base64_value(a, (unsigned char)in[i])) == -1)
			return -1;
		v = (v << 6 | (unsigned long)d) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(v >> bits);
		}
	}
	/* The 2 or 4 bits left over by a short final group must be zero, or two strings would
	 * decode to the same bytes. */
	if (bits > 0 && (v & ((1UL << bits) - 1)) != 0)
		return -1;
	*outlen = o;
	return 0;
}
