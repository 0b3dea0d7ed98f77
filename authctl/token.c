/*
 * authctl token and authctl keygen: look inside a JWT (decode, which verifies nothing), check
 * one with a key (verify, which gives the exact reason for a rejection), and make the key files
 * jwt_server reads (an HS256 secret, or a PEM key pair).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "authctl.h"
#include "base64.h"
#include "cli.h"
#include "jwt.h"

#define TOKEN_MAX_KEYS	8
#define SECRET_BYTES	32

static const char token_usage[] =
    "usage: authctl token decode TOKEN|-\n"
    "       authctl token verify (--key FILE | --secret-file FILE)... [--issuer NAME]\n"
    "                            [--audience NAME] [--leeway SECONDS] TOKEN|-\n"
    "                            (issuer and audience default to " JWT_DEFAULT_ISSUER ")\n"
    "  decode   prints header, payload (times also as dates) and the signature's size;\n"
    "           it verifies nothing\n"
    "  verify   prints \"valid\" and the claims (exit 0), or \"invalid: <reason>\" (exit 1)\n"
    "  --key FILE          PEM public or private key, JWK, or HS256 secret (repeatable)\n"
    "  --secret-file FILE  HS256 secret\n"
    "  TOKEN    the token, or - to read it from standard input\n";

static const char keygen_usage[] =
    "usage: authctl keygen hs256|rsa|es256|ed25519 --out FILE [--bits N]\n"
    "  hs256    FILE gets a random secret (32 bytes, base64url), mode 0600\n"
    "  rsa, es256, ed25519\n"
    "           FILE gets the PEM private key (mode 0600), FILE.pub the public key\n"
    "  --bits N RSA modulus size (2048 to 8192, default 3072)\n";

/* Reads the token from arg, or from standard input for "-". Returns a malloc'd string the
 * caller frees, or NULL (message printed). */
static char *
token_read(const char *arg)
{
	char buf[JWT_MAX_TOKEN + 2];
	size_t n;

	if (strcmp(arg, "-") != 0)
		return strdup(arg);
	n = fread(buf, 1, sizeof(buf) - 1, stdin);
	buf[n] = '\0';
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	if (n == 0 || n > JWT_MAX_TOKEN) {
		fprintf(stderr, "%s: no token of at most %d bytes on standard input\n", cli_prog,
		    JWT_MAX_TOKEN);
		return NULL;
	}
	return strdup(buf);
}

/* Adds "<name>_date" next to each NumericDate claim, as the jwt.io debugger shows it. */
static void
token_add_dates(json_t *payload, json_t *dates)
{
	static const char *const names[] = { "iat", "nbf", "exp" };
	char when[64];
	struct tm tm;
	json_t *j;
	time_t t;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!json_is_number(j = json_object_get(payload, names[i])))
			continue;
		t = (time_t)json_number_value(j);
		if (gmtime_r(&t, &tm) == NULL)
			continue;
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_object_set_new(dates, names[i], json_string(when));
	}
	if (json_is_number(j = json_object_get(payload, "exp")))
		json_object_set_new(dates, "expired",
		    json_boolean(json_number_value(j) <= (double)time(NULL)));
}

static int
token_decode(const char *arg)
{
	json_t *hdr, *pay, *dates = NULL, *sig = NULL, *out = NULL;
	unsigned char *raw;
	size_t rawlen;
	enum jwt_reason why;
	char *tok, *text;
	int rc = 1;

	if ((tok = token_read(arg)) == NULL)
		return 1;
	if (jwt_decode(tok, strlen(tok), &hdr, &pay, &raw, &rawlen, &why) == -1) {
		fprintf(stderr, "%s: not a JWS compact token: %s\n", cli_prog, jwt_reason_text(why));
		free(tok);
		return 1;
	}
	dates = json_object();
	token_add_dates(pay, dates);
	/* The signature is opaque bytes: show what they are, not a claim that they are good. */
	sig = json_pack("{s:O?, s:I, s:s}", "alg", json_object_get(hdr, "alg"),
	    "bytes", (json_int_t)rawlen, "verified", "no: decode checks nothing; use authctl "
	    "token verify with the key");
	out = json_pack("{s:o, s:o, s:o, s:o}", "header", hdr, "payload", pay, "dates", dates,
	    "signature", sig);
	if (out != NULL && (text = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) != NULL) {
		printf("%s\n", text);
		free(text);
		rc = 0;
	}
	json_decref(out);
	free(raw);
	free(tok);
	return rc;
}

static int
token_verify(int argc, char **argv)
{
	enum { OPT_KEY = 1, OPT_SECRET, OPT_ISSUER, OPT_AUDIENCE, OPT_LEEWAY };
	static const struct option opts[] = {
		{ "key", required_argument, NULL, OPT_KEY },
		{ "secret-file", required_argument, NULL, OPT_SECRET },
		{ "issuer", required_argument, NULL, OPT_ISSUER },
		{ "audience", required_argument, NULL, OPT_AUDIENCE },
		{ "leeway", required_argument, NULL, OPT_LEEWAY },
		{ NULL, 0, NULL, 0 }
	};
	struct jwt_verifier *v;
	struct jwt_key *k;
	enum jwt_reason why;
	json_t *claims = NULL;
	char err[512], *tok = NULL, *text;
	int c, nkeys = 0, rc = 1;

	if ((v = jwt_verifier_new()) == NULL)
		return 1;
	/* The same defaults as jwt_server, so its tokens verify without flags. */
	jwt_verifier_set_issuer(v, JWT_DEFAULT_ISSUER);
	jwt_verifier_set_audience(v, JWT_DEFAULT_ISSUER);
	while ((c = cli_next(argc, argv, opts)) != -1) {
		switch (c) {
		case OPT_KEY:
		case OPT_SECRET:
			k = c == OPT_KEY ? jwt_key_load(optarg, err, sizeof(err)) :
			    jwt_key_load_secret(optarg, err, sizeof(err));
			if (k == NULL)
				cli_bad("%s", err);
			if (nkeys == TOKEN_MAX_KEYS || jwt_verifier_add_key(v, k) == -1)
				cli_bad("%s: the same key twice, or too many keys", optarg);
			nkeys++;
			break;
		case OPT_ISSUER:
			jwt_verifier_set_issuer(v, optarg);
			break;
		case OPT_AUDIENCE:
			jwt_verifier_set_audience(v, optarg);
			break;
		case OPT_LEEWAY:
			jwt_verifier_set_leeway(v, cli_num("--leeway", optarg, 0, 86400));
			break;
		}
	}
	if (nkeys == 0)
		cli_bad("verify needs --key FILE or --secret-file FILE");
	if (argc - optind != 1)
		cli_bad("verify wants exactly one TOKEN after the flags");
	if ((tok = token_read(argv[optind])) == NULL)
		goto done;
	if (jwt_verify(v, tok, strlen(tok), time(NULL), &why, &claims) == -1) {
		fprintf(stderr, "%s: the token could not be processed\n", cli_prog);
		goto done;
	}
	if (why != JWT_VALID) {
		printf("invalid: %s: %s\n", jwt_reason_code(why), jwt_reason_text(why));
		if (why == JWT_WRONG_AUDIENCE || why == JWT_WRONG_ISSUER)
			printf("(give the expected value with --audience / --issuer)\n");
		goto done;
	}
	text = json_dumps(claims, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("valid\n%s\n", text ? text : "");
	free(text);
	rc = 0;
done:
	json_decref(claims);
	free(tok);
	jwt_verifier_free(v);
	return rc;
}

int
authctl_token(int argc, char **argv)
{
	cli_init("authctl token", token_usage);
	if (argc < 2)
		cli_bad("missing decode or verify");
	if (strcmp(argv[1], "--help") == 0) {
		fputs(token_usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "decode") == 0) {
		if (argc != 3)
			cli_bad("decode wants exactly one TOKEN");
		return token_decode(argv[2]);
	}
	if (strcmp(argv[1], "verify") == 0)
		return token_verify(argc - 1, argv + 1);
	cli_bad("unknown token command '%s'", argv[1]);
}

/* ---- keygen ---- */

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
authctl_keygen(int argc, char **argv)
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
