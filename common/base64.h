/* Strict base64: base64url (RFC 4648 section 5) for JWTs and session ids, and the standard
 * alphabet for passlib's scrypt strings; both without padding. Decoding rejects padding,
 * characters outside the alphabet, impossible lengths and non-zero trailing bits, so every
 * byte string has exactly one accepted encoding. */
#ifndef BASE64_H
#define BASE64_H

#include <stddef.h>

enum base64_alphabet { BASE64_URL, BASE64_STD };

/* Length of the encoding of n bytes, without the NUL. */
size_t base64_encoded_len(size_t n);
/* Largest possible decoded length of n characters. */
size_t base64_decoded_max(size_t n);
/* Encodes n bytes into out (room for base64_encoded_len(n) + 1) and NUL-terminates it.
 * Returns the length written. */
size_t base64_encode(enum base64_alphabet a, const void *in, size_t n, char *out);
/* Decodes n characters into out (room for base64_decoded_max(n)). Returns 0 and sets *outlen,
 * or -1 if the input is not a canonical unpadded encoding. */
int base64_decode(enum base64_alphabet a, const char *in, size_t n, unsigned char *out,
    size_t *outlen);

#endif
