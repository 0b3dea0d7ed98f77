/* Password hashing with scrypt through OpenSSL, stored in the PHC-style string that Python's
 * passlib writes and reads: "$scrypt$ln=17,r=8,p=1$<salt>$<hash>" (standard base64, no padding).
 * Every hash carries its own cost, so old hashes keep verifying when the default changes. */
#ifndef PASSWD_H
#define PASSWD_H

#include <stddef.h>
#include <stdint.h>

#define PASSWD_DEFAULT_LN	17	/* N = 2^17, r = 8, p = 1: OWASP's minimum for scrypt */
#define PASSWD_MAX		160	/* longest hash string we write */
/* The most work (N * r * p) one verification may cost: 8 times OWASP's 2^17 * 8 * 1, i.e.
 * ln=20 at r=8, p=1 (about a second). scrypt's time grows with N * r * p, and every login pays
 * it on a worker thread, so a hash beyond this is refused rather than let one login (or one
 * unknown name, which pays the most expensive hash) hold a worker for minutes. */
#define PASSWD_MAX_WORK		((uint64_t)1 << 23)

/* The cost parameters of a hash string: N = 2^ln, block size r, parallelism p. */
struct passwd_cost {
	int		ln;
	uint32_t	r;
	uint32_t	p;
};

/* The scrypt KDF (RFC 7914). Returns 0, or -1 when OpenSSL refuses the parameters. */
int scrypt_kdf(const void *pw, size_t pwlen, const void *salt, size_t saltlen, uint64_t N,
    uint32_t r, uint32_t p, unsigned char *out, size_t outlen);

/* Hashes pw with N = 2^ln, r = 8, p = 1 and a fresh 16-byte salt into out (PASSWD_MAX bytes).
 * Returns 0, or -1 (also when that cost is over PASSWD_MAX_WORK). */
int passwd_hash(const char *pw, size_t pwlen, int ln, char *out, size_t outlen);

/* Returns 1 when pw matches hash, 0 when it does not, -1 when hash is malformed. Compares in
 * constant time. Slow by design: never call it on an event loop. */
int passwd_verify(const char *pw, size_t pwlen, const char *hash);

/* Returns 0 when hash is a well-formed scrypt string whose work is at most PASSWD_MAX_WORK,
 * -1 otherwise. */
int passwd_check(const char *hash);

/* Reads the cost of hash into c. Returns 0 when hash is well formed, whatever its cost (so a
 * caller can say why passwd_check refused it), -1 otherwise. */
int passwd_cost(const char *hash, struct passwd_cost *c);

/* N * r * p for c: what one verification costs, the measure PASSWD_MAX_WORK caps. */
uint64_t passwd_work(const struct passwd_cost *c);

#endif
