/* Unit tests for common/passwd.c: the RFC 7914 section 12 scrypt vectors, strings written by
 * passlib and by Python's hashlib, hashing then verifying, and malformed hash strings. */
#include "unit.h"
#include "passwd.h"

#include <time.h>

/* Hex of n bytes into a static buffer. */
static const char *
hex(const unsigned char *b, size_t n)
{
	static char out[2 * 128 + 1];
	size_t i;

	for (i = 0; i < n && i < 128; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return out;
}

static void
rfc7914_vectors(void)
{
	/* Section 12; the fourth vector (N = 2^20, 1 GiB) is left out to keep the suite fast. */
	static const struct {
		const char	*pw, *salt;
		uint64_t	 N;
		uint32_t	 r, p;
		const char	*dk;
	} v[] = {
		{ "", "", 16, 1, 1,
		    "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
		    "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906" },
		{ "password", "NaCl", 1024, 8, 16,
		    "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
		    "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640" },
		{ "pleaseletmein", "SodiumChloride", 16384, 8, 1,
		    "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
		    "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887" },
	};
	unsigned char dk[64];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		memset(dk, 0, sizeof(dk));
		CHECK_INT(scrypt_kdf(v[i].pw, strlen(v[i].pw), v[i].salt, strlen(v[i].salt),
		    v[i].N, v[i].r, v[i].p, dk, sizeof(dk)), 0);
		CHECK_STR(hex(dk, sizeof(dk)), v[i].dk);
	}
}

static void
kdf_refuses_bad_parameters(void)
{
	unsigned char dk[32];

	CHECK_INT(scrypt_kdf("a", 1, "salt", 4, 1000, 8, 1, dk, sizeof(dk)), -1);	/* not 2^k */
	CHECK_INT(scrypt_kdf("a", 1, "salt", 4, 1, 8, 1, dk, sizeof(dk)), -1);
	CHECK_INT(scrypt_kdf("a", 1, "salt", 4, 16, 0, 1, dk, sizeof(dk)), -1);
	CHECK_INT(scrypt_kdf("a", 1, "salt", 4, 16, 1, 0, dk, sizeof(dk)), -1);
	/* 2^22 * 128 * 32 bytes = 16 GiB: refused up front, not attempted. */
	CHECK_INT(scrypt_kdf("a", 1, "salt", 4, (uint64_t)1 << 22, 32, 1, dk, sizeof(dk)), -1);
	CHECK_INT(scrypt_kdf("a", 1, "salt", 4, UINT64_MAX / 2 + 1, 8, 1, dk, sizeof(dk)), -1);
}

static void
default_cost_is_allowed(void)
{
	unsigned char dk[32];

	/* N = 2^17, r = 8 needs 128 MiB, more than OpenSSL's 32 MiB default maxmem. */
	CHECK_INT(scrypt_kdf("a", 1, "salt", 4, (uint64_t)1 << PASSWD_DEFAULT_LN, 8, 1, dk,
	    sizeof(dk)), 0);
}

static void
hash_then_verify(void)
{
	char h1[PASSWD_MAX], h2[PASSWD_MAX];

	CHECK_INT(passwd_hash("correct horse", 13, 4, h1, sizeof(h1)), 0);
	CHECK_INT(strncmp(h1, "$scrypt$ln=4,r=8,p=1$", 21), 0);
	/* 16-byte salt and 32-byte hash, standard base64 unpadded: 22 and 43 characters. */
	CHECK_INT(strlen(h1), 21 + 22 + 1 + 43);
	CHECK(strchr(h1 + 21, '=') == NULL);
	CHECK_INT(passwd_check(h1), 0);
	CHECK_INT(passwd_verify("correct horse", 13, h1), 1);
	CHECK_INT(passwd_verify("correct horsf", 13, h1), 0);
	CHECK_INT(passwd_verify("correct hors", 12, h1), 0);
	CHECK_INT(passwd_verify("", 0, h1), 0);
	/* A fresh salt every time. */
	CHECK_INT(passwd_hash("correct horse", 13, 4, h2, sizeof(h2)), 0);
	CHECK(strcmp(h1, h2) != 0);
	CHECK_INT(passwd_verify("correct horse", 13, h2), 1);
	/* Bytes after a NUL count: the length is the password's, not strlen's. */
	CHECK_INT(passwd_hash("a\0b", 3, 4, h1, sizeof(h1)), 0);
	CHECK_INT(passwd_verify("a\0b", 3, h1), 1);
	CHECK_INT(passwd_verify("a\0c", 3, h1), 0);
	CHECK_INT(passwd_verify("a", 1, h1), 0);
}

static void
hash_refuses(void)
{
	char h[PASSWD_MAX];

	CHECK_INT(passwd_hash("x", 1, 0, h, sizeof(h)), -1);
	CHECK_INT(passwd_hash("x", 1, 23, h, sizeof(h)), -1);
	CHECK_INT(passwd_hash("x", 1, 4, h, 40), -1);
}

static void
verifies_other_implementations(void)
{
	/* Written by passlib (its documentation's scrypt example, password "password"). */
	static const char passlib[] =
	    "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E";
	/* Made with Python: hashlib.scrypt(b"hunter2 \xc3\xa9", salt=bytes(range(16)), n=32, r=4,
	 * p=2, dklen=32), both parts base64.b64encode()d with "=" stripped. */
	static const char hashlib[] =
	    "$scrypt$ln=5,r=4,p=2$AAECAwQFBgcICQoLDA0ODw$22tmw7TO8hLX4foyTe+1G4BqDUFxxBmYej5x8fpaxI8";

	CHECK_INT(passwd_verify("password", 8, passlib), 1);
	CHECK_INT(passwd_verify("Password", 8, passlib), 0);
	CHECK_INT(passwd_verify("hunter2 \xc3\xa9", 10, hashlib), 1);
	CHECK_INT(passwd_verify("hunter2 e", 9, hashlib), 0);
}

static void
malformed_strings(void)
{
	static const char salt[] = "AAECAwQFBgcICQoLDA0ODw";
	static const char hash[] = "22tmw7TO8hLX4foyTe+1G4BqDUFxxBmYej5x8fpaxI8";
	static const char *bad[] = {
		"", "$scrypt$", "$scrypt$ln=5,r=4,p=2$", "$scrypt$ln=5,r=4,p=2$%s",
		"$7$ln=5,r=4,p=2$%s$%s", "$scrypt$ln=5,r=4$%s$%s", "$scrypt$r=4,ln=5,p=2$%s$%s",
		"$scrypt$ln=0,r=4,p=2$%s$%s", "$scrypt$ln=23,r=4,p=2$%s$%s",
		"$scrypt$ln=05,r=4,p=2$%s$%s", "$scrypt$ln=-5,r=4,p=2$%s$%s",
		"$scrypt$ln=+5,r=4,p=2$%s$%s", "$scrypt$ln=5 ,r=4,p=2$%s$%s",
		"$scrypt$ln=99999999999999999999999,r=4,p=2$%s$%s",
		"$scrypt$ln=5,r=0,p=2$%s$%s", "$scrypt$ln=5,r=33,p=2$%s$%s",
		"$scrypt$ln=5,r=4,p=0$%s$%s", "$scrypt$ln=5,r=4,p=17$%s$%s",
		"$scrypt$ln=5,r=4,p=2,x=1$%s$%s", "$SCRYPT$ln=5,r=4,p=2$%s$%s",
		"$scrypt$ln=5,r=4,p=2$%s==$%s", "$scrypt$ln=5,r=4,p=2$%s$%s=",
		"$scrypt$ln=5,r=4,p=2$%s$%s$", "$scrypt$ln=5,r=4,p=2$%s$%sA",
		"$scrypt$ln=5,r=4,p=2$%s$%.42s", "$scrypt$ln=5,r=4,p=2$%s$ %s",
		"$scrypt$ln=5,r=4,p=2$AAECAw%.0s$%s",		/* 4-byte salt */
		"$scrypt$ln=5,r=4,p=2$%s$%s\n",
		"$scrypt$ln=22,r=32,p=16$%s$%s",		/* 16 GiB */
	};
	char buf[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* The format strings are this test's own table. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		snprintf(buf, sizeof(buf), bad[i], salt, hash);
#pragma GCC diagnostic pop
		if (passwd_check(buf) != -1 || passwd_verify("hunter2 \xc3\xa9", 10, buf) != -1)
			fprintf(stderr, "    accepted: %s\n", buf);
		CHECK_INT(passwd_check(buf), -1);
		CHECK_INT(passwd_verify("hunter2 \xc3\xa9", 10, buf), -1);
	}
	/* The same table's good entry, so the loop above fails for the right reason. */
	snprintf(buf, sizeof(buf), "$scrypt$ln=5,r=4,p=2$%s$%s", salt, hash);
	CHECK_INT(passwd_check(buf), 0);
	CHECK_INT(passwd_verify("hunter2 \xc3\xa9", 10, buf), 1);
}

static void
huge_cost_is_refused_fast(void)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	CHECK_INT(passwd_verify("x", 1, "$scrypt$ln=22,r=32,p=16$AAECAwQFBgcICQoLDA0ODw$"
	    "22tmw7TO8hLX4foyTe+1G4BqDUFxxBmYej5x8fpaxI8"), -1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	CHECK(b.tv_sec - a.tv_sec < 1);
}

static void
work_is_capped(void)
{
	static const char tail[] = "$AAECAwQFBgcICQoLDA0ODw$22tmw7TO8hLX4foyTe+1G4BqDUFxxBmYej5x8fpaxI8";
	struct passwd_cost c;
	char buf[160], h[PASSWD_MAX];

	/* ln=20, r=15, p=16 fits scrypt's memory cap (2 GiB) but is 240 times OWASP's work. */
	snprintf(buf, sizeof(buf), "$scrypt$ln=20,r=15,p=16%s", tail);
	CHECK_INT(passwd_check(buf), -1);
	CHECK_INT(passwd_verify("x", 1, buf), -1);
	CHECK_INT(passwd_cost(buf, &c), 0);	/* well formed: a caller can say why */
	CHECK(c.ln == 20 && c.r == 15 && c.p == 16);
	CHECK(passwd_work(&c) > PASSWD_MAX_WORK);
	/* The cap itself (ln=20, r=8, p=1) is allowed; one step more is not. */
	snprintf(buf, sizeof(buf), "$scrypt$ln=20,r=8,p=1%s", tail);
	CHECK_INT(passwd_check(buf), 0);
	snprintf(buf, sizeof(buf), "$scrypt$ln=19,r=8,p=4%s", tail);
	CHECK_INT(passwd_check(buf), -1);
	CHECK_INT(passwd_hash("x", 1, 21, h, sizeof(h)), -1);
	CHECK_INT(passwd_cost("$scrypt$ln=5,r=4$x$y", &c), -1);
}

UNIT_MAIN(CASE(rfc7914_vectors), CASE(kdf_refuses_bad_parameters), CASE(default_cost_is_allowed),
    CASE(hash_then_verify), CASE(hash_refuses), CASE(verifies_other_implementations),
    CASE(malformed_strings), CASE(huge_cost_is_refused_fast), CASE(work_is_capped))
