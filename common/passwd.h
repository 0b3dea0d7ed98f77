/* Password hashing with scrypt through OpenSSL, stored in the PHC-style string that Python's
 * passlib writes and reads: "$scrypt$ln=17,r=8,p=1$<salt>$<hash>" (standard base64, no padding).
 * Every hash carries its own cost, so old hashes keep verifying when the default changes. */
#ifndef PASSWD_H
#define PASSWD_H

#include <stddef.h>
#include <stdint.h>

#define PASSWD_DEFAULT_LN	17	/* N = 2^17, r = 8, p = 1: OWASP's minimum for scrypt */
#define PASSWD_MAX		160	/* longest hash string we write */

/* The scrypt KDF (RFC 7914). Returns 0, or -1 when OpenSSL refuses the parameters. */
int scrypt_kdf(const void *pw, size_t pwlen, const void *salt, size_t saltlen, uint64_t N,
    uint32_t r, uint32_t p, unsigned char *out, size_t outlen);

/* Hashes pw with N = 2^ln, r = 8, p = 1 and a fresh 16-byte salt into out (PASSWD_MAX bytes).
 * Returns 0 or -1. */
int passwd_hash(const char *pw, size_t pwlen, int ln, char *out, size_t outlen);

/* Returns 1 when pw matches hash, 0 when it does not, -1 when hash is malformed. Compares in
 * constant time. Slow by design: never call it on an event loop. */
int passwd_verify(const char *pw, size_t pwlen, const char *hash);

/* Returns 0 when hash is a well-formed scrypt string with sane parameters, -1 otherwise. */
int passwd_check(const char *hash);

#endif
