/*
 * authctl token: look inside a JWT (decode, which verifies nothing), check one with a key
 * (verify, which says why a token was refused in words for the person at the terminal), and
 * mint one offline with a key file (sign, with the claims jwt_server puts in its tokens).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "authctl.h"
#include "base64.h"
#include "cli.h"
#include "jwt.h"

#define TOKEN_MAX_KEYS	8
#define TOKEN_TTL	900		/* jwt_server's default --ttl */
#define TOKEN_MAX_TTL	(7L * 86400)	/* and its largest */
#define TOKEN_JTI_BYTES	16

static const char token_usage[] =
    "usage: authctl token decode TOKEN|-\n"
    "       authctl token verify (--key FILE | --secret-file FILE)... [--issuer NAME]\n"
    "                            [--audience NAME] [--leeway SECONDS] TOKEN|-\n"
    "       authctl token sign (--key FILE | --secret-file FILE) --sub USERNAME [--name N]\n"
    "                          [--role R] [--ttl SECONDS] [--issuer NAME] [--audience NAME]\n"
    "                          [--kid ID]\n"
    "  decode   prints header, payload (times also as dates) and the signature's size;\n"
    "           it verifies nothing\n"
    "  verify   prints \"valid\" and the claims (exit 0), or \"invalid: <reason>\" (exit 1)\n"
    "  sign     prints a new token with jwt_server's claims (sub, name, role, iss, aud, iat,\n"
    "           exp, jti); a jwt_server holding the same key accepts it\n"
    "  --key FILE          PEM public or private key, JWK, or HS256 secret (verify: repeatable;\n"
    "                      sign: a private key or a secret)\n"
    "  --secret-file FILE  HS256 secret\n"
    "  --issuer, --audience NAME\n"
    "                      iss and aud to require or to write (default " JWT_DEFAULT_ISSUER ",\n"
    "                      as jwt_server)\n"
    "  --ttl SECONDS       sign: lifetime, exp - iat (default 900, at most 7 days)\n"
    "  --kid ID            sign: the header's kid instead of the key's own id\n"
    "  TOKEN    the token, or - to read it from standard input\n"
    "Keys and secrets come only from files, never from the command line.\n";

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

/* Loads --key FILE (any format) or --secret-file FILE (a secret only). Returns a new key the
 * caller frees; a file that is not a key ends the program with exit 2. */
static struct jwt_key *
token_load_key(int is_secret, const char *path)
{
	struct jwt_key *k;
	char err[512];

	k = is_secret ? jwt_key_load_secret(path, err, sizeof(err)) :
	    jwt_key_load(path, err, sizeof(err));
	if (k == NULL)
		cli_bad("%s", err);
	return k;
}

/* Prints "; the given key: KID (ALG)", or "; the given keys: KID (ALG), ...". */
static void
token_print_keys(const struct jwt_verifier *v)
{
	const struct jwt_key *k;
	size_t i, n = jwt_verifier_nkeys(v);

	printf("; the given key%s: ", n > 1 ? "s" : "");
	for (i = 0; i < n; i++) {
		k = jwt_verifier_key(v, i);
		printf("%s%s (%s)", i ? ", " : "", jwt_key_kid(k), jwt_alg_name(jwt_key_alg(k)));
	}
	printf("\n");
}

/*
 * Prints "invalid: <code>: <sentence>" for a refused token. The reasons about keys are said in
 * the words of this command's user, who gave the keys: whether these keys signed the token,
 * and the key ids and algorithms on both sides, so a wrong key file is plain to see.
 */
static void
token_explain(const struct jwt_verifier *v, const char *tok, enum jwt_reason why)
{
	json_t *hdr = NULL, *pay = NULL;
	unsigned char *sig = NULL;
	const char *kid = NULL, *alg = NULL;
	enum jwt_reason ignored;
	size_t siglen, n = jwt_verifier_nkeys(v);

	if (jwt_decode(tok, strlen(tok), &hdr, &pay, &sig, &siglen, &ignored) == 0) {
		kid = json_string_value(json_object_get(hdr, "kid"));
		alg = json_string_value(json_object_get(hdr, "alg"));
	}
	printf("invalid: %s: ", jwt_reason_code(why));
	switch (why) {
	case JWT_UNKNOWN_KEY:
		printf("the given key%s did not sign this token: ", n > 1 ? "s" : "");
		if (kid != NULL)
			printf("it names key id %s", kid);
		else
			printf("it names no key id, and more than one given key could check it");
		token_print_keys(v);
		break;
	case JWT_BAD_SIGNATURE:
		printf("the signature does not match: the given key did not sign this token, or the "
		    "token was changed after signing\n");
		break;
	case JWT_ALG_NOT_ALLOWED:
		printf("the given key%s cannot have signed this token: it says alg %s%s%s",
		    n > 1 ? "s" : "", alg != NULL ? alg : "?",
		    kid != NULL ? ", key id " : "", kid != NULL ? kid : "");
		token_print_keys(v);
		break;
	case JWT_UNSUPPORTED_HEADER:
		printf("the header asks for an extension (crit) or a type (typ) this command does "
		    "not support\n");
		break;
	default:
		printf("%s\n", jwt_reason_text(why));
		if (why == JWT_WRONG_AUDIENCE || why == JWT_WRONG_ISSUER)
			printf("(give the expected value with --audience / --issuer)\n");
		break;
	}
	json_decref(hdr);
	json_decref(pay);
	free(sig);
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
	char *tok = NULL, *text;
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
			k = token_load_key(c == OPT_SECRET, optarg);
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
		token_explain(v, tok, why);
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

/* The claims jwt_server writes at login (main.c), so that a server holding the same key takes
 * the token as one of its own. Returns a new reference, or NULL. */
static json_t *
token_claims(const char *sub, const char *name, const char *role, const char *iss,
    const char *aud, long ttl)
{
	unsigned char rnd[TOKEN_JTI_BYTES];
	char jti[32];
	time_t now = time(NULL);

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return NULL;
	base64_encode(BASE64_URL, rnd, sizeof(rnd), jti);
	/* s* leaves out name and role when not given. */
	return json_pack("{s:s, s:s*, s:s*, s:s, s:s, s:I, s:I, s:s}", "sub", sub, "name", name,
	    "role", role, "iss", iss, "aud", aud, "iat", (json_int_t)now,
	    "exp", (json_int_t)(now + ttl), "jti", jti);
}

/* Returns the flag's value when it is 1 to 256 bytes long, or ends the program with exit 2. */
static const char *
token_text_flag(const char *flag, const char *s)
{
	if (*s == '\0' || strlen(s) > 256)
		cli_bad("%s: 1 to 256 bytes", flag);
	return s;
}

static int
token_sign(int argc, char **argv)
{
	enum { OPT_KEY = 1, OPT_SECRET, OPT_SUB, OPT_NAME, OPT_ROLE, OPT_ISSUER, OPT_AUDIENCE,
	    OPT_TTL, OPT_KID };
	static const struct option opts[] = {
		{ "key", required_argument, NULL, OPT_KEY },
		{ "secret-file", required_argument, NULL, OPT_SECRET },
		{ "sub", required_argument, NULL, OPT_SUB },
		{ "name", required_argument, NULL, OPT_NAME },
		{ "role", required_argument, NULL, OPT_ROLE },
		{ "issuer", required_argument, NULL, OPT_ISSUER },
		{ "audience", required_argument, NULL, OPT_AUDIENCE },
		{ "ttl", required_argument, NULL, OPT_TTL },
		{ "kid", required_argument, NULL, OPT_KID },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = NULL, *sub = NULL, *name = NULL, *role = NULL, *kid = NULL;
	const char *iss = JWT_DEFAULT_ISSUER, *aud = JWT_DEFAULT_ISSUER;
	struct jwt_key *k;
	json_t *claims;
	char *tok = NULL;
	long ttl = TOKEN_TTL;
	int c, is_secret = 0;

	while ((c = cli_next(argc, argv, opts)) != -1) {
		switch (c) {
		case OPT_KEY:
		case OPT_SECRET:
			if (path != NULL)
				cli_bad("sign takes one key");
			path = optarg;
			is_secret = c == OPT_SECRET;
			break;
		case OPT_SUB:
			sub = token_text_flag("--sub", optarg);
			break;
		case OPT_NAME:
			name = token_text_flag("--name", optarg);
			break;
		case OPT_ROLE:
			role = token_text_flag("--role", optarg);
			break;
		case OPT_ISSUER:
			iss = token_text_flag("--issuer", optarg);
			break;
		case OPT_AUDIENCE:
			aud = token_text_flag("--audience", optarg);
			break;
		case OPT_TTL:
			ttl = cli_num("--ttl", optarg, 1, TOKEN_MAX_TTL);
			break;
		case OPT_KID:
			kid = optarg;
			break;
		}
	}
	if (path == NULL)
		cli_bad("sign needs --key FILE or --secret-file FILE");
	if (sub == NULL)
		cli_bad("sign needs --sub USERNAME");
	if (optind != argc)
		cli_bad("unexpected argument '%s'", argv[optind]);
	k = token_load_key(is_secret, path);
	if (kid != NULL && jwt_key_set_kid(k, kid) == -1)
		cli_bad("--kid: 1 to %d bytes", JWT_KID_MAX);
	if (!jwt_key_can_sign(k)) {
		fprintf(stderr, "%s: %s is a public key: it can verify tokens, not sign them\n",
		    cli_prog, path);
		jwt_key_free(k);
		return 1;
	}
	if ((claims = token_claims(sub, name, role, iss, aud, ttl)) != NULL)
		tok = jwt_sign(k, claims);
	json_decref(claims);
	jwt_key_free(k);
	if (tok == NULL) {
		fprintf(stderr, "%s: cannot sign the token\n", cli_prog);
		return 1;
	}
	printf("%s\n", tok);
	free(tok);
	return fflush(stdout) == EOF ? 1 : 0;
}

int
token_run(int argc, char **argv)
{
	cli_init("authctl token", token_usage);
	if (argc < 2)
		cli_bad("missing decode, verify or sign");
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
	if (strcmp(argv[1], "sign") == 0)
		return token_sign(argc - 1, argv + 1);
	cli_bad("unknown token command '%s'", argv[1]);
}
