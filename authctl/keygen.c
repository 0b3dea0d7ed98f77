/*
 * authctl keygen: makes the key files jwt_server reads: an HS256 secret, or a PEM key pair
 * (RSA, P-256 or Ed25519), each read back as jwt_server will to print its kid.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "authctl.h"
#include "base64.h"
#include "cli.h"
#include "jwt.h"

#define SECRET_BYTES	32

static const char keygen_usage[] =
    "usage: authctl keygen hs256|rsa|es256|ed25519 --out FILE [--bits N]\n"
    "  hs256    FILE gets a random secret (32 bytes, base64url), mode 0600\n"
    "  rsa, es256, ed25519\n"
    "           FILE gets the PEM private key (mode 0600), FILE.pub the public key\n"
    "  --bits N RSA modulus size (2048 to 8192, default 3072)\n";

/* Creates path (it must not exist) with mode and writes len bytes. Returns 0, or -1 (message
 * printed; a partial file is removed). */
static int
keygen_write(const char *path, mode_t mode, const void *data, size_t len)
{
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)) == -1) {
		fprintf(stderr, "%s: cannot create %s: %s\n", cli_prog, path, strerror(errno));
		return -1;
	}
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) == -1 || close(fd) == -1) {
		fprintf(stderr, "%s: cannot write %s: %s\n", cli_prog, path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

static int
keygen_secret(const char *out)
{
	unsigned char rnd[SECRET_BYTES];
	char text[64];
	size_t n;
	int rc;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	n = base64_encode(BASE64_URL, rnd, sizeof(rnd), text);
	text[n++] = '\n';
	rc = keygen_write(out, 0600, text, n);
	OPENSSL_cleanse(rnd, sizeof(rnd));
	OPENSSL_cleanse(text, sizeof(text));
	return rc;
}

/* Writes pkey's private PEM to out (0600) and its public PEM to out.pub (0644). */
static int
keygen_pem(EVP_PKEY *pkey, const char *out)
{
	BIO *priv = BIO_new(BIO_s_mem()), *pub = BIO_new(BIO_s_mem());
	char pubpath[4096], *data;
	long n;
	int rc = -1;

	if (snprintf(pubpath, sizeof(pubpath), "%s.pub", out) >= (int)sizeof(pubpath))
		goto done;
	if (priv == NULL || pub == NULL ||
	    PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_PUBKEY(pub, pkey) != 1)
		goto done;
	n = BIO_get_mem_data(priv, &data);
	if (keygen_write(out, 0600, data, (size_t)n) == -1)
		goto done;
	n = BIO_get_mem_data(pub, &data);
	if (keygen_write(pubpath, 0644, data, (size_t)n) == -1) {
		unlink(out);
		goto done;
	}
	rc = 0;
done:
	BIO_free(priv);
	BIO_free(pub);
	return rc;
}

int
keygen_run(int argc, char **argv)
{
	enum { OPT_OUT = 1, OPT_BITS };
	static const struct option opts[] = {
		{ "out", required_argument, NULL, OPT_OUT },
		{ "bits", required_argument, NULL, OPT_BITS },
		{ NULL, 0, NULL, 0 }
	};
	const char *type, *out = NULL;
	struct jwt_key *k;
	EVP_PKEY *pkey = NULL;
	size_t bits = 3072;
	char err[512];
	int c, rc;

	cli_init("authctl keygen", keygen_usage);
	if (argc < 2)
		cli_bad("missing the key type: hs256, rsa, es256 or ed25519");
	if (strcmp(argv[1], "--help") == 0) {
		fputs(keygen_usage, stdout);
		return 0;
	}
	type = argv[1];
	while ((c = cli_next(argc - 1, argv + 1, opts)) != -1) {
		if (c == OPT_OUT)
			out = optarg;
		else
			bits = (size_t)cli_num("--bits", optarg, JWT_MIN_RSA_BITS, 8192);
	}
	if (out == NULL)
		cli_bad("--out FILE is required");
	if (optind != argc - 1)
		cli_bad("unexpected argument '%s'", argv[optind + 1]);
	if (strcmp(type, "hs256") == 0) {
		if (keygen_secret(out) == -1)
			return 1;
	} else {
		if (strcmp(type, "rsa") == 0)
			pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
		else if (strcmp(type, "es256") == 0)
			pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		else if (strcmp(type, "ed25519") == 0)
			pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		else
			cli_bad("unknown key type '%s' (hs256, rsa, es256 or ed25519)", type);
		if (pkey == NULL) {
			fprintf(stderr, "%s: cannot generate the key\n", cli_prog);
			return 1;
		}
		rc = keygen_pem(pkey, out);
		EVP_PKEY_free(pkey);
		if (rc == -1)
			return 1;
	}
	/* Read it back as jwt_server will, which also tells the kid. */
	if ((k = jwt_key_load(out, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s: %s\n", cli_prog, err);
		return 1;
	}
	printf("%s: %s key, kid %s%s\n", out, jwt_alg_name(jwt_key_alg(k)), jwt_key_kid(k),
	    jwt_key_alg(k) == JWT_HS256 ? "" : " (public key in .pub)");
	jwt_key_free(k);
	return 0;
}
