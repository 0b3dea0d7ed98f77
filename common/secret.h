/*
 * Bearer secrets the servers hand out and must recognise later: session ids and refresh tokens.
 * A secret is 256 bits from the OpenSSL CSPRNG, base64url (43 characters), and only its hash,
 * base64url(SHA-256(secret)), is ever stored: a dump of Redis or of the process then holds
 * nothing a client could present, and comparing hashes leaks nothing useful through timing.
 */
#ifndef SECRET_H
#define SECRET_H

#include <stddef.h>

#define SECRET_BYTES		32	/* 256 random bits */
#define SECRET_LEN		43	/* their base64url, no padding */
#define SECRET_HASH_LEN		43	/* base64url of a SHA-256 */

/* Makes a new secret (SECRET_LEN + 1 bytes, NUL-terminated) and its hash (SECRET_HASH_LEN + 1).
 * Returns 0, or -1 when the CSPRNG or the digest fails. Thread-safe. */
int secret_new(char *secret, char *hash);
/* The hash of a presented secret of len bytes. Returns 0, or -1 when it is not the canonical
 * base64url of exactly SECRET_BYTES bytes (so no store is asked about garbage). Thread-safe. */
int secret_hash(const char *secret, size_t len, char *hash);

#endif
