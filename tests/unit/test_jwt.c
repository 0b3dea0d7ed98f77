/*
 * Unit tests for common/jwt.c, jwt_key.c and jwk.c: the published vectors (RFC 7515 A.1 and A.3,
 * RFC 7520 4.1 and 4.4, RFC 8037 A.4, RFC 7638 3.1) and one crafted token per rejection reason,
 * including the attacks that hit other JWT libraries.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "base64.h"
#include "jwk.h"
#include "jwt.h"
#include "unit.h"

#define NOW	1700000000

/* RFC 7515 A.1: the HMAC key and the token (exp 1300819380, iss "joe"). */
static const char a1_jwk[] = "{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T"
    "-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}";
static const char a1_input[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJ"
    "leHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
static const char a1_sig[] = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/* RFC 7515 A.3: the P-256 key and an ECDSA token over the same claims. */
static const char a3_jwk_pub[] = "{\"kty\":\"EC\",\"crv\":\"P-256\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
/* A3's public key with somebody else's private scalar: must be refused. */
static const char a3_jwk_mismatch[] = "{\"kty\":\"EC\",\"crv\":\"P-256\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\","
    "\"d\":\"jpsQnnGQmL-YBIffH1136cLSG_PbRBg6YHd2CBYdkLI\"}";
static const char a3_token[] = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzOD"
    "AsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4Gawx"
    "aepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

/* RFC 7520 3.4 (Bilbo's RSA key), used by 4.1; 4.4's symmetric key. The payload of chapter 4 is
 * a line of text, not a claims set. */
static const char bilbo_jwk[] = "{\"kty\":\"RSA\",\"kid\":\"bilbo.baggins@hobbiton.example\","
    "\"n\":\"n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQ"
    "Hz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpP"
    "e7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L"
    "_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw\",\"e\":\"AQAB\","
    "\"d\":\"bWUC9B-EFRIo8kpGfh0ZuyGPvMNKvYWNtB_ikiH9k20eT-O1q_I78eiZkpXxXQ0UTEs2LsNRS-8uJbvQ-A1i"
    "rkwMSMkK1J3XTGgdrhCku9gRldY7sNA_AKZGh-Q661_42rINLRCe8W-nZ34ui_qOfkLnK9QWDDqpaIsA-bMwWWSDFu2M"
    "UBYwkHTMEzLYGqOe04noqeq1hExBTHBOBdkMXiuFhUq1BU6l-DqEiWxqg82sXt2h-LMnT3046AOYJoRioz75tSUQfGCs"
    "hWTBnP5uDjd18kKhyv07lhfSJdrPdM5Plyl21hsFf4L_mHCuoFau7gdsPfHPxxjVOcOpBrQzwQ\","
    "\"p\":\"3Slxg_DwTXJcb6095RoXygQCAZ5RnAvZlno1yhHtnUex_fp7AZ_9nRaO7HX_-SFfGQeutao2TDjDAWU4Vupk8"
    "rw9JR0AzZ0N2fvuIAmr_WCsmGpeNqQnev1T7IyEsnh8UMt-n5CafhkikzhEsrmndH6LxOrvRJlsPp6Zv8bUq0k\","
    "\"q\":\"uKE2dh-cTf6ERF4k4e_jy78GfPYUIaUyoSSJuBzp3Cubk3OCqs6grT8bR_cu0Dm1MZwWmtdqDyI95HrUeq3MP"
    "15vMMON8lHTeZu2lmKvwqW7anV5UzhM1iZ7z4yMkuUwFWoBvyY898EXvRD-hdqRxHlSqAZ192zB3pVFJ0s7pFc\","
    "\"dp\":\"B8PVvXkvJrj2L-GYQ7v3y9r6Kw5g9SahXBwsWUzp19TVlgI-YV85q1NIb1rxQtD-IsXXR3-TanevuRPRt5O"
    "BOdiMGQp8pbt26gljYfKU_E9xn-RULHz0-ed9E9gXLKD4VGngpz-PfQ_q29pk5xWHoJp009Qf1HvChixRX59ehik\","
    "\"dq\":\"CLDmDGduhylc9o7r84rEUVn7pzQ6PF83Y-iBZx5NT-TpnOZKF1pErAMVeKzFEl41DlHHqqBLSM0W1sOFbwT"
    "xYWZDm6sI6og5iTbwQGIC3gnJKbi_7k_vJgGHwHxgPaX2PnvP-zyEkDERuf-ry4c_Z11Cq9AqC2yeL6kdKT1cYF8\","
    "\"qi\":\"3PiqvXQN0zwMeE-sBvZgi289XP9XCQF3VWqPzMKnIgQp7_Tugo6-NZBKCQsMf3HaEGBjTVJs_jcK8-TRXvaK"
    "e-7ZMaQj8VfBdYkssbu0NKDDhjJ-GtiseaDVWt7dcH0cfwxgFUHpQh7FoCrjFJ6h6ZEpMF6xmujs4qMpPz8aaI4\"}";
static const char frodo_text[] = "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlv"
    "dXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhl"
    "cmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4";
static const char r41_header[] = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhh"
    "bXBsZSJ9";
static const char r41_sig[] = "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdH"
    "M1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qH"
    "RD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUA"
    "hb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg";
static const char r44_jwk[] = "{\"kty\":\"oct\",\"kid\":\"018c0ae5-4d9b-471b-bfd6-eef314bc7037\","
    "\"use\":\"sig\",\"alg\":\"HS256\",\"k\":\"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg\"}";
static const char r44_header[] = "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVl"
    "ZjMxNGJjNzAzNyJ9";
static const char r44_sig[] = "s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0";

/* RFC 8037 A.1 and A.4. */
static const char ed_jwk[] = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
    "\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\","
    "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}";
static const char ed_input[] = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
static const char ed_sig[] = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhV"
    "sPt9g7sVvpAr_MuM0KAg";

/* RFC 7638 3.1: a public key and its thumbprint. */
static const char tp_jwk[] = "{\"kty\":\"RSA\",\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\","
    "\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
    "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FD"
    "W2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh"
    "6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw\"}";
static const char tp_thumb[] = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

static const char secret[] = "0123456789abcdef0123456789abcdef-test-secret";

/* ---- helpers ---- */

static struct jwt_key *
key_jwk(const char *text)
{
	char err[256] = "";
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	struct jwt_key *k = j ? jwt_key_from_jwk(j, err, sizeof(err)) : NULL;

	if (k == NULL)
		fprintf(stderr, "jwt_key_from_jwk: %s\n", err);
	json_decref(j);
	return k;
}

static struct jwt_key *
key_secret(void)
{
	return jwt_key_from_secret(secret, strlen(secret), NULL, 0);
}

/* A verifier with one key (taken over). */
static struct jwt_verifier *
verifier_with(struct jwt_key *k)
{
	struct jwt_verifier *v = jwt_verifier_new();

	if (v != NULL && k != NULL && jwt_verifier_add_key(v, k) == -1) {
		jwt_key_free(k);
		return v;
	}
	return v;
}

/* Verifies and returns the reason (JWT_NREASONS when processing failed). */
static enum jwt_reason
verify_at(const struct jwt_verifier *v, const char *tok, time_t now)
{
	enum jwt_reason why;

	if (jwt_verify(v, tok, strlen(tok), now, &why, NULL) == -1)
		return JWT_NREASONS;
	return why;
}

/* The PEM text of pk (private or public); the caller frees it. */
static char *
pem_of(EVP_PKEY *pk, int priv)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	if (priv)
		PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
	else
		PEM_write_bio_PUBKEY(b, pk);
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

/* A fresh P-256 signing key (RFC 7515 A.3 publishes only what verifying needs). */
static struct jwt_key *
key_es256(void)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *pem = pem_of(pk, 1);
	struct jwt_key *k = jwt_key_from_pem(pem, strlen(pem), NULL, 0);

	free(pem);
	EVP_PKEY_free(pk);
	return k;
}

static char *
b64(const void *in, size_t n)
{
	char *out = malloc(base64_encoded_len(n) + 1);

	base64_encode(BASE64_URL, in, n, out);
	return out;
}

/* Builds b64(header).b64(payload).b64(signature over both by k, or no signature when k is
 * NULL). The caller frees the result. */
static char *
craft(const char *header, const char *payload, const struct jwt_key *k)
{
	char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload)), *s = NULL;
	char *tok = malloc(strlen(h) + strlen(p) + 1000);
	unsigned char sig[512];
	size_t siglen = 0;

	sprintf(tok, "%s.%s", h, p);
	if (k != NULL && jwt_sign_input(k, tok, strlen(tok), sig, &siglen) == -1)
		fprintf(stderr, "craft: signing failed\n");
	s = b64(sig, siglen);
	strcat(tok, ".");
	strcat(tok, s);
	free(h);
	free(p);
	free(s);
	return tok;
}

/* Replaces the signature segment of tok with n bytes. */
static char *
with_signature(const char *tok, const unsigned char *sig, size_t n)
{
	const char *dot = strrchr(tok, '.');
	char *s = b64(sig, n), *out = malloc((size_t)(dot - tok) + strlen(s) + 2);

	sprintf(out, "%.*s.%s", (int)(dot - tok), tok, s);
	free(s);
	return out;
}

static const char good_claims[] = "{\"sub\":\"alice\",\"iss\":\"iss\",\"aud\":\"aud\","
    "\"iat\":1700000000,\"exp\":1700000600,\"jti\":\"j1\"}";
/* The same without iss and aud, for verifiers that check neither. */
static const char plain_claims[] = "{\"sub\":\"alice\",\"iat\":1700000000,\"exp\":1700000600}";

/* ---- published vectors ---- */

static void
rfc7515_a1_hs256(void)
{
	struct jwt_key *k = key_jwk(a1_jwk);
	struct jwt_verifier *v;
	unsigned char sig[64];
	size_t siglen;
	char tok[512], *s;
	json_t *claims = NULL;
	enum jwt_reason why;

	CHECK(k != NULL);
	if (k == NULL)
		return;
	CHECK_INT(jwt_sign_input(k, a1_input, strlen(a1_input), sig, &siglen), 0);
	s = b64(sig, siglen);
	CHECK_STR(s, a1_sig);
	free(s);
	snprintf(tok, sizeof(tok), "%s.%s", a1_input, a1_sig);
	v = verifier_with(k);
	CHECK_INT(jwt_verify(v, tok, strlen(tok), 1300819300, &why, &claims), 0);
	CHECK_INT(why, JWT_VALID);
	CHECK_STR(json_string_value(json_object_get(claims, "iss")), "joe");
	json_decref(claims);
	/* exp 1300819380 plus 30 s of leeway */
	CHECK_INT(verify_at(v, tok, 1300819409), JWT_VALID);
	CHECK_INT(verify_at(v, tok, 1300819410), JWT_EXPIRED);
	tok[strlen(tok) - 2] = 'Y';
	CHECK_INT(verify_at(v, tok, 1300819300), JWT_BAD_SIGNATURE);
	jwt_verifier_free(v);
}

static void
rfc7515_a3_es256(void)
{
	struct jwt_verifier *v = verifier_with(key_jwk(a3_jwk_pub));
	char *tok = strdup(a3_token);

	CHECK_INT(jwt_verifier_nkeys(v), 1);
	CHECK_INT(verify_at(v, tok, 1300819300), JWT_VALID);
	tok[strlen(tok) - 5] ^= 1;
	CHECK_INT(verify_at(v, tok, 1300819300), JWT_BAD_SIGNATURE);
	free(tok);
	jwt_verifier_free(v);
}

/* Chapter 4 of RFC 7520 signs a text payload: our signature must be the published one, and
 * the verifier must get past the signature and stop at the payload, which is no claims set. */
static void
check_text_vector(const char *jwk, const char *header, const char *want_sig)
{
	struct jwt_key *k = key_jwk(jwk);
	struct jwt_verifier *v;
	unsigned char sig[512];
	size_t siglen;
	char *input, *tok, *s;

	CHECK(k != NULL);
	if (k == NULL)
		return;
	input = malloc(strlen(header) + strlen(frodo_text) + strlen(want_sig) + 3);
	sprintf(input, "%s.%s", header, frodo_text);
	CHECK_INT(jwt_sign_input(k, input, strlen(input), sig, &siglen), 0);
	s = b64(sig, siglen);
	CHECK_STR(s, want_sig);
	free(s);
	tok = input;
	strcat(tok, ".");
	strcat(tok, want_sig);
	v = verifier_with(k);
	CHECK_INT(verify_at(v, tok, NOW), JWT_MALFORMED);
	tok[strlen(tok) - 3] = tok[strlen(tok) - 3] == 'A' ? 'B' : 'A';
	CHECK_INT(verify_at(v, tok, NOW), JWT_BAD_SIGNATURE);
	free(tok);
	jwt_verifier_free(v);
}

static void
rfc7520_41_rs256(void)
{
	check_text_vector(bilbo_jwk, r41_header, r41_sig);
}

static void
rfc7520_44_hs256(void)
{
	check_text_vector(r44_jwk, r44_header, r44_sig);
}

static void
rfc8037_a4_ed25519(void)
{
	struct jwt_key *k = key_jwk(ed_jwk);
	struct jwt_verifier *v;
	unsigned char sig[64];
	size_t siglen;
	char tok[256], *s;

	CHECK(k != NULL);
	if (k == NULL)
		return;
	CHECK_INT(jwt_key_alg(k), JWT_EDDSA);
	CHECK_INT(jwt_sign_input(k, ed_input, strlen(ed_input), sig, &siglen), 0);
	s = b64(sig, siglen);
	CHECK_STR(s, ed_sig);
	free(s);
	snprintf(tok, sizeof(tok), "%s.%s", ed_input, ed_sig);
	v = verifier_with(k);
	/* The payload is the text "Example of Ed25519 signing": signed, but not claims. */
	CHECK_INT(verify_at(v, tok, NOW), JWT_MALFORMED);
	tok[strlen(tok) - 3] ^= 1;
	CHECK_INT(verify_at(v, tok, NOW), JWT_BAD_SIGNATURE);
	jwt_verifier_free(v);
}

static void
rfc7638_thumbprint(void)
{
	struct jwt_key *k = key_jwk(tp_jwk);
	json_t *jwk;

	CHECK(k != NULL);
	if (k == NULL)
		return;
	CHECK_STR(jwt_key_kid(k), "2011-04-29");	/* an explicit kid wins */
	CHECK(!jwt_key_can_sign(k));
	jwk = jwt_key_jwk(k);
	CHECK_STR(json_string_value(json_object_get(jwk, "kty")), "RSA");
	CHECK_STR(json_string_value(json_object_get(jwk, "e")), "AQAB");
	CHECK(json_object_get(jwk, "d") == NULL);
	json_decref(jwk);
	jwt_key_free(k);
	/* Without a kid member, the kid is the thumbprint. */
	k = key_jwk("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
	    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}");
	CHECK(k != NULL);
	jwt_key_free(k);
	{
		json_t *j = json_loads(tp_jwk, 0, NULL);
		json_object_del(j, "kid");
		k = jwt_key_from_jwk(j, NULL, 0);
		json_decref(j);
	}
	CHECK(k != NULL);
	if (k != NULL) {
		CHECK_STR(jwt_key_kid(k), tp_thumb);
		jwt_key_free(k);
	}
}

/* jwk.c alone: JSON in, key material out, and back; no jwt_key anywhere. */
static void
jwk_codec(void)
{
	struct jwk_material m;
	json_t *j, *pub;
	char tp[JWK_THUMBPRINT_LEN + 1];
	size_t i;
	static const char *const refused[] = {
		"[]", "{\"k\":\"AAAA\"}", "{\"kty\":\"XYZ\"}", "{\"kty\":\"oct\"}",
		"{\"kty\":\"oct\",\"k\":\"AA==\"}", "{\"kty\":\"oct\",\"k\":\"AAAA\",\"kid\":7}",
		"{\"kty\":\"oct\",\"k\":\"AAAA\",\"alg\":[]}", a3_jwk_mismatch,
		"{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AAAA\",\"y\":\"AAAA\"}",
	};

	j = json_loads("{\"kty\":\"oct\",\"k\":\"AQIDBA\",\"kid\":\"k1\",\"alg\":\"HS256\"}", 0,
	    NULL);
	CHECK_INT(jwk_decode(j, &m, NULL, 0), 0);
	CHECK(m.jm_pkey == NULL && m.jm_private);
	CHECK_INT(m.jm_secretlen, 4);
	CHECK_MEM(m.jm_secret, "\1\2\3\4", 4);
	CHECK_STR(m.jm_kid, "k1");
	CHECK_STR(m.jm_alg, "HS256");
	jwk_material_clear(&m);
	CHECK(m.jm_secretlen == 0 && m.jm_secret[0] == 0);
	json_decref(j);

	j = json_loads(a3_jwk_pub, 0, NULL);
	CHECK_INT(jwk_decode(j, &m, NULL, 0), 0);
	CHECK(m.jm_pkey != NULL && !m.jm_private && m.jm_kid == NULL && m.jm_alg == NULL);
	if (m.jm_pkey != NULL) {
		pub = jwk_encode(m.jm_pkey);
		CHECK(json_equal(pub, j));
		json_decref(pub);
		CHECK_INT(jwk_thumbprint(m.jm_pkey, tp), 0);
		CHECK_INT(strlen(tp), JWK_THUMBPRINT_LEN);
	}
	jwk_material_clear(&m);
	json_decref(j);

	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char err[128] = "";

		j = json_loads(refused[i], 0, NULL);
		if (!CHECK(jwk_decode(j, &m, err, sizeof(err)) == -1))
			fprintf(stderr, "    accepted %s\n", refused[i]);
		CHECK(err[0] != '\0' && m.jm_pkey == NULL);
		json_decref(j);
	}
}

/* ---- our own tokens ---- */

static void
roundtrip(struct jwt_key *k, enum jwt_alg alg)
{
	struct jwt_verifier *v;
	json_t *claims = json_loads(good_claims, 0, NULL), *got = NULL, *hdr, *pay;
	unsigned char *sig;
	size_t siglen;
	enum jwt_reason why;
	char *tok;

	CHECK(k != NULL);
	if (k == NULL)
		return;
	CHECK_INT(jwt_key_alg(k), alg);
	tok = jwt_sign(k, claims);
	CHECK(tok != NULL);
	v = verifier_with(k);
	jwt_verifier_set_issuer(v, "iss");
	jwt_verifier_set_audience(v, "aud");
	CHECK_INT(jwt_verify(v, tok, strlen(tok), NOW + 10, &why, &got), 0);
	CHECK_INT(why, JWT_VALID);
	CHECK(json_equal(got, claims));
	CHECK_INT(jwt_decode(tok, strlen(tok), &hdr, &pay, &sig, &siglen, &why), 0);
	CHECK_STR(json_string_value(json_object_get(hdr, "alg")), jwt_alg_name(alg));
	CHECK_STR(json_string_value(json_object_get(hdr, "typ")), "JWT");
	CHECK_STR(json_string_value(json_object_get(hdr, "kid")), jwt_key_kid(k));
	CHECK(siglen == (alg == JWT_RS256 ? 256u : alg == JWT_HS256 ? 32u : 64u));
	json_decref(hdr);
	json_decref(pay);
	free(sig);
	json_decref(got);
	json_decref(claims);
	free(tok);
	jwt_verifier_free(v);
}

static void
roundtrip_all(void)
{
	roundtrip(key_secret(), JWT_HS256);
	roundtrip(key_jwk(bilbo_jwk), JWT_RS256);
	roundtrip(key_es256(), JWT_ES256);
	roundtrip(key_jwk(ed_jwk), JWT_EDDSA);
}

/* Key types, sizes, PEM private and public keys, and a mismatched private JWK. */
static void
keys_pem_and_limits(void)
{
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp384r1");
	EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *pem, err[256];
	struct jwt_key *priv, *pub;

	pem = pem_of(small, 1);
	CHECK(jwt_key_from_pem(pem, strlen(pem), err, sizeof(err)) == NULL);
	CHECK(strstr(err, "2048") != NULL);
	free(pem);
	pem = pem_of(p384, 0);
	CHECK(jwt_key_from_pem(pem, strlen(pem), err, sizeof(err)) == NULL);
	free(pem);
	pem = pem_of(p256, 1);
	priv = jwt_key_from_pem(pem, strlen(pem), err, sizeof(err));
	free(pem);
	pem = pem_of(p256, 0);
	pub = jwt_key_from_pem(pem, strlen(pem), err, sizeof(err));
	CHECK(priv != NULL && pub != NULL);
	if (priv != NULL && pub != NULL) {
		CHECK(jwt_key_can_sign(priv));
		CHECK(!jwt_key_can_sign(pub));
		CHECK_STR(jwt_key_kid(priv), jwt_key_kid(pub));
		json_t *empty = json_object();

		CHECK(jwt_sign(pub, empty) == NULL);
		json_decref(empty);
	}
	/* The key-confusion attack starts with a PEM accepted as an HMAC secret. */
	CHECK(jwt_key_from_secret(pem, strlen(pem), err, sizeof(err)) == NULL);
	CHECK(jwt_key_from_secret(secret, 31, err, sizeof(err)) == NULL);
	CHECK(jwt_key_from_pem("garbage", 7, err, sizeof(err)) == NULL);
	CHECK(key_jwk(a3_jwk_mismatch) == NULL);
	free(pem);
	jwt_key_free(priv);
	jwt_key_free(pub);
	EVP_PKEY_free(small);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(p256);
}

static void
secret_kid_hides_secret(void)
{
	struct jwt_key *a = key_secret(), *b = key_secret();
	struct jwt_key *c = jwt_key_from_secret("another secret of at least 32 bytes", 35, NULL, 0);

	CHECK_STR(jwt_key_kid(a), jwt_key_kid(b));
	CHECK(strcmp(jwt_key_kid(a), jwt_key_kid(c)) != 0);
	CHECK(strstr(jwt_key_kid(a), "0123") == NULL);
	CHECK(jwt_key_jwk(a) == NULL);	/* secrets are never published */
	jwt_key_free(a);
	jwt_key_free(b);
	jwt_key_free(c);
}

/* ---- rejections ---- */

static void
reject_alg_none(void)
{
	static const char *const spellings[] = { "none", "None", "NONE", "nOnE", "hs256", "HS512", "" };
	struct jwt_key *k = key_secret();
	struct jwt_verifier *v = verifier_with(k);
	char hdr[128], *tok;
	size_t i;

	for (i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", spellings[i]);
		tok = craft(hdr, plain_claims, NULL);
		CHECK_INT(verify_at(v, tok, NOW), JWT_ALG_NOT_ALLOWED);
		free(tok);
		/* Even with a valid HMAC appended. */
		tok = craft(hdr, plain_claims, k);
		CHECK_INT(verify_at(v, tok, NOW), JWT_ALG_NOT_ALLOWED);
		free(tok);
	}
	tok = craft("{\"typ\":\"JWT\"}", plain_claims, k);
	CHECK_INT(verify_at(v, tok, NOW), JWT_MALFORMED);
	free(tok);
	tok = craft("{\"alg\":null}", plain_claims, k);
	CHECK_INT(verify_at(v, tok, NOW), JWT_MALFORMED);
	free(tok);
	jwt_verifier_free(v);
}

static void
reject_key_confusion(void)
{
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	char *pem = pem_of(rsa, 0), hdr[256], *h, *p, *s, input[2048], tok[4096];
	struct jwt_key *pub = jwt_key_from_pem(pem, strlen(pem), NULL, 0);
	struct jwt_verifier *v;
	unsigned char mac[32];
	unsigned int maclen = 0;
	int i;

	CHECK(pub != NULL);
	if (pub == NULL)
		return;
	v = verifier_with(pub);
	for (i = 0; i < 2; i++) {
		/* The attacker signs HS256 with the public PEM, with and without our kid. */
		if (i == 0)
			snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
		else
			snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\",\"kid\":\"%s\"}", jwt_key_kid(pub));
		h = b64(hdr, strlen(hdr));
		p = b64(plain_claims, strlen(plain_claims));
		snprintf(input, sizeof(input), "%s.%s", h, p);
		HMAC(EVP_sha256(), pem, (int)strlen(pem), (unsigned char *)input, strlen(input), mac,
		    &maclen);
		s = b64(mac, maclen);
		snprintf(tok, sizeof(tok), "%s.%s", input, s);
		CHECK_INT(verify_at(v, tok, NOW), JWT_ALG_NOT_ALLOWED);
		free(h);
		free(p);
		free(s);
	}
	free(pem);
	EVP_PKEY_free(rsa);
	jwt_verifier_free(v);
}

static void
reject_bad_signatures(void)
{
	struct jwt_key *hs = key_secret(), *es = key_es256(), *ed = key_jwk(ed_jwk);
	struct jwt_verifier *v = jwt_verifier_new();
	unsigned char big[65], der[80], *dp;
	char *tok, *t2, hdr[256];
	ECDSA_SIG *esig;
	BIGNUM *r, *s;
	int n;

	CHECK(hs && es && ed);
	jwt_verifier_add_key(v, hs);
	jwt_verifier_add_key(v, es);
	jwt_verifier_add_key(v, ed);
	/* HS256: empty and truncated signatures. */
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\",\"kid\":\"%s\"}", jwt_key_kid(hs));
	tok = craft(hdr, plain_claims, hs);
	CHECK_INT(verify_at(v, tok, NOW), JWT_VALID);
	t2 = with_signature(tok, (const unsigned char *)"", 0);
	CHECK_INT(verify_at(v, t2, NOW), JWT_BAD_SIGNATURE);
	free(t2);
	{
		/* The right MAC, cut short. */
		const char *dot = strrchr(tok, '.') + 1;
		unsigned char mac[32];
		size_t maclen;

		CHECK_INT(base64_decode(BASE64_URL, dot, strlen(dot), mac, &maclen), 0);
		t2 = with_signature(tok, mac, 31);
		CHECK_INT(verify_at(v, t2, NOW), JWT_BAD_SIGNATURE);
		free(t2);
		t2 = with_signature(tok, mac, 16);
		CHECK_INT(verify_at(v, t2, NOW), JWT_BAD_SIGNATURE);
		free(t2);
	}
	free(tok);
	/* ES256: wrong lengths, DER form, zero and oversized R and S. */
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", jwt_key_kid(es));
	tok = craft(hdr, plain_claims, es);
	CHECK_INT(verify_at(v, tok, NOW), JWT_VALID);
	memset(big, 0xff, sizeof(big));
	t2 = with_signature(tok, big, 63);
	CHECK_INT(verify_at(v, t2, NOW), JWT_BAD_SIGNATURE);
	free(t2);
	t2 = with_signature(tok, big, 65);
	CHECK_INT(verify_at(v, t2, NOW), JWT_BAD_SIGNATURE);
	free(t2);
	t2 = with_signature(tok, big, 64);	/* R, S >= n */
	CHECK_INT(verify_at(v, t2, NOW), JWT_BAD_SIGNATURE);
	free(t2);
	memset(big, 0, sizeof(big));
	t2 = with_signature(tok, big, 64);	/* R = S = 0 */
	CHECK_INT(verify_at(v, t2, NOW), JWT_BAD_SIGNATURE);
	free(t2);
	{
		/* The right signature, DER-encoded as OpenSSL would hand it out. */
		const char *dot = strrchr(tok, '.') + 1;
		unsigned char raw[64];
		size_t rawlen;

		CHECK_INT(base64_decode(BASE64_URL, dot, strlen(dot), raw, &rawlen), 0);
		esig = ECDSA_SIG_new();
		r = BN_bin2bn(raw, 32, NULL);
		s = BN_bin2bn(raw + 32, 32, NULL);
		ECDSA_SIG_set0(esig, r, s);
		dp = der;
		n = i2d_ECDSA_SIG(esig, &dp);
		ECDSA_SIG_free(esig);
		t2 = with_signature(tok, der, (size_t)n);
		CHECK_INT(verify_at(v, t2, NOW), JWT_BAD_SIGNATURE);
		free(t2);
	}
	free(tok);
	/* EdDSA: a flipped bit and a short signature. */
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", jwt_key_kid(ed));
	tok = craft(hdr, plain_claims, ed);
	CHECK_INT(verify_at(v, tok, NOW), JWT_VALID);
	t2 = with_signature(tok, big, 32);
	CHECK_INT(verify_at(v, t2, NOW), JWT_BAD_SIGNATURE);
	free(t2);
	tok[strlen(tok) - 4] ^= 1;
	CHECK_INT(verify_at(v, tok, NOW), JWT_BAD_SIGNATURE);
	free(tok);
	jwt_verifier_free(v);
}

static void
reject_malformed(void)
{
	struct jwt_key *k = key_secret();
	struct jwt_verifier *v = verifier_with(k);
	char *tok, *t2, *h, buf[4096];
	const char *sig;

	tok = craft("{\"alg\": \"HS256\"}", plain_claims, k);
	CHECK_INT(verify_at(v, tok, NOW), JWT_VALID);
	sig = strrchr(tok, '.') + 1;
	/* Segment counts. */
	CHECK_INT(verify_at(v, "", NOW), JWT_MALFORMED);
	CHECK_INT(verify_at(v, "..", NOW), JWT_MALFORMED);
	snprintf(buf, sizeof(buf), "%.*s", (int)(sig - 1 - tok), tok);
	CHECK_INT(verify_at(v, buf, NOW), JWT_MALFORMED);
	snprintf(buf, sizeof(buf), "%s.", tok);
	CHECK_INT(verify_at(v, buf, NOW), JWT_MALFORMED);
	snprintf(buf, sizeof(buf), "%s.%s.x", tok, sig);
	CHECK_INT(verify_at(v, buf, NOW), JWT_MALFORMED);
	/* Non-canonical base64url: padding, the standard alphabet, spaces, dropped bits. */
	h = b64("{\"alg\": \"HS256\"}", 16);
	CHECK(strlen(h) % 4 != 0);
	snprintf(buf, sizeof(buf), "%s=%s", h, strchr(tok, '.'));
	CHECK_INT(verify_at(v, buf, NOW), JWT_MALFORMED);
	snprintf(buf, sizeof(buf), "%s %s", h, strchr(tok, '.'));
	CHECK_INT(verify_at(v, buf, NOW), JWT_MALFORMED);
	t2 = strdup(tok);
	t2[strlen(h) - 1] = t2[strlen(h) - 1] + 1;	/* same bytes, other trailing bits */
	CHECK_INT(verify_at(v, t2, NOW), JWT_MALFORMED);
	free(t2);
	t2 = strdup(tok);
	t2[strlen(t2) - 1] = '+';
	CHECK_INT(verify_at(v, t2, NOW), JWT_MALFORMED);
	free(t2);
	free(h);
	/* JSON: duplicate members, non-objects, garbage after the object. */
	t2 = craft("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", plain_claims, k);
	CHECK_INT(verify_at(v, t2, NOW), JWT_MALFORMED);
	free(t2);
	t2 = craft("{\"alg\":\"HS256\"}", "{\"sub\":\"bob\",\"sub\":\"alice\",\"exp\":1700000600}", k);
	CHECK_INT(verify_at(v, t2, NOW), JWT_MALFORMED);
	free(t2);
	t2 = craft("[\"HS256\"]", plain_claims, k);
	CHECK_INT(verify_at(v, t2, NOW), JWT_MALFORMED);
	free(t2);
	t2 = craft("{\"alg\":\"HS256\"}", "[1,2]", k);
	CHECK_INT(verify_at(v, t2, NOW), JWT_MALFORMED);
	free(t2);
	t2 = craft("{\"alg\":\"HS256\"} x", plain_claims, k);
	CHECK_INT(verify_at(v, t2, NOW), JWT_MALFORMED);
	free(t2);
	/* Too large. */
	jwt_verifier_set_max_len(v, strlen(tok) - 1);
	CHECK_INT(verify_at(v, tok, NOW), JWT_TOO_LARGE);
	free(tok);
	jwt_verifier_free(v);
}

static void
reject_header_extensions(void)
{
	struct jwt_key *k = key_secret();
	struct jwt_verifier *v = verifier_with(k);
	char *tok;

	tok = craft("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", plain_claims, k);
	CHECK_INT(verify_at(v, tok, NOW), JWT_UNSUPPORTED_HEADER);
	free(tok);
	tok = craft("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", plain_claims, k);
	CHECK_INT(verify_at(v, tok, NOW), JWT_UNSUPPORTED_HEADER);
	free(tok);
	tok = craft("{\"alg\":\"HS256\",\"typ\":\"JOSE+JSON\"}", plain_claims, k);
	CHECK_INT(verify_at(v, tok, NOW), JWT_UNSUPPORTED_HEADER);
	free(tok);
	tok = craft("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", plain_claims, k);
	CHECK_INT(verify_at(v, tok, NOW), JWT_VALID);
	free(tok);
	jwt_verifier_free(v);
}

static void
reject_kid_elsewhere(void)
{
	struct jwt_key *hs = key_secret(), *es = key_es256();
	struct jwt_key *hs2 = jwt_key_from_secret("a second secret, also 32 bytes long", 35, NULL, 0);
	struct jwt_verifier *v = jwt_verifier_new();
	char hdr[256], *tok;

	jwt_verifier_add_key(v, hs);
	jwt_verifier_add_key(v, es);
	CHECK_INT(jwt_verifier_add_key(v, hs), -1);	/* kids are unique */
	tok = craft("{\"alg\":\"HS256\",\"kid\":\"nobody\"}", plain_claims, hs);
	CHECK_INT(verify_at(v, tok, NOW), JWT_UNKNOWN_KEY);
	free(tok);
	tok = craft("{\"alg\":\"HS256\",\"kid\":\"../../../dev/null\"}", plain_claims, hs);
	CHECK_INT(verify_at(v, tok, NOW), JWT_UNKNOWN_KEY);
	free(tok);
	tok = craft("{\"alg\":\"HS256\",\"kid\":42}", plain_claims, hs);
	CHECK_INT(verify_at(v, tok, NOW), JWT_MALFORMED);
	free(tok);
	/* The kid of the EC key with an HS256 token: the kid cannot change the algorithm. */
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\",\"kid\":\"%s\"}", jwt_key_kid(es));
	tok = craft(hdr, plain_claims, hs);
	CHECK_INT(verify_at(v, tok, NOW), JWT_ALG_NOT_ALLOWED);
	free(tok);
	/* A token signed by the second secret, naming the first: bad signature. */
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\",\"kid\":\"%s\"}", jwt_key_kid(hs));
	tok = craft(hdr, plain_claims, hs2);
	CHECK_INT(verify_at(v, tok, NOW), JWT_BAD_SIGNATURE);
	free(tok);
	/* Rotation: both secrets; no kid is then ambiguous, and keys are never tried in turn. */
	jwt_verifier_add_key(v, hs2);
	tok = craft("{\"alg\":\"HS256\"}", plain_claims, hs2);
	CHECK_INT(verify_at(v, tok, NOW), JWT_UNKNOWN_KEY);
	free(tok);
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\",\"kid\":\"%s\"}", jwt_key_kid(hs2));
	tok = craft(hdr, plain_claims, hs2);
	CHECK_INT(verify_at(v, tok, NOW), JWT_VALID);
	free(tok);
	jwt_verifier_free(v);
}

/* jwk, jku, x5u and x5c in a header are never used: a token signed by the attacker's key and
 * carrying that key fails against ours. */
static void
reject_embedded_keys(void)
{
	struct jwt_key *ours = key_jwk(a3_jwk_pub);
	EVP_PKEY *evil = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *pem = pem_of(evil, 1), hdr[1024], *tok, *jwkstr;
	struct jwt_key *attacker = jwt_key_from_pem(pem, strlen(pem), NULL, 0);
	struct jwt_verifier *v = verifier_with(ours);
	json_t *jwk = jwt_key_jwk(attacker);

	jwkstr = json_dumps(jwk, JSON_COMPACT);
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"jwk\":%s}", jwkstr);
	tok = craft(hdr, plain_claims, attacker);
	CHECK_INT(verify_at(v, tok, NOW), JWT_BAD_SIGNATURE);
	free(tok);
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"jwk\":%s}",
	    jwt_key_kid(attacker), jwkstr);
	tok = craft(hdr, plain_claims, attacker);
	CHECK_INT(verify_at(v, tok, NOW), JWT_UNKNOWN_KEY);
	free(tok);
	tok = craft("{\"alg\":\"ES256\",\"jku\":\"http://127.0.0.1:1/jwks.json\","
	    "\"x5u\":\"http://127.0.0.1:1/x.pem\",\"x5c\":[\"MIIB\"]}", plain_claims, attacker);
	CHECK_INT(verify_at(v, tok, NOW), JWT_BAD_SIGNATURE);
	free(tok);
	free(jwkstr);
	json_decref(jwk);
	free(pem);
	jwt_key_free(attacker);
	EVP_PKEY_free(evil);
	jwt_verifier_free(v);
}

static void
reject_claims(void)
{
	static const struct {
		const char	*claims;
		enum jwt_reason	 want;
	} cases[] = {
		{ "{\"sub\":\"a\",\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_BAD_CLAIMS },
		{ "{\"exp\":\"1700000600\",\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_BAD_CLAIMS },
		{ "{\"exp\":null,\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_BAD_CLAIMS },
		{ "{\"exp\":1700000600,\"nbf\":\"0\",\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_BAD_CLAIMS },
		{ "{\"exp\":1700000600,\"jti\":7,\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_BAD_CLAIMS },
		{ "{\"exp\":1700000600,\"sub\":[],\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_BAD_CLAIMS },
		{ "{\"exp\":1699999969,\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_EXPIRED },
		{ "{\"exp\":1699999970,\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_EXPIRED },
		{ "{\"exp\":1699999971,\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_VALID },
		{ "{\"exp\":1699999970.5,\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_VALID },
		{ "{\"exp\":1e300,\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_VALID },
		{ "{\"exp\":1700000600,\"nbf\":1700000031,\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_NOT_YET_VALID },
		{ "{\"exp\":1700000600,\"nbf\":1700000030,\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_VALID },
		{ "{\"exp\":1700000600,\"iat\":1700000100,\"iss\":\"iss\",\"aud\":\"aud\"}", JWT_NOT_YET_VALID },
		{ "{\"exp\":1700000600,\"aud\":\"aud\"}", JWT_WRONG_ISSUER },
		{ "{\"exp\":1700000600,\"iss\":\"other\",\"aud\":\"aud\"}", JWT_WRONG_ISSUER },
		{ "{\"exp\":1700000600,\"iss\":[\"iss\"],\"aud\":\"aud\"}", JWT_WRONG_ISSUER },
		{ "{\"exp\":1700000600,\"iss\":\"iss\"}", JWT_WRONG_AUDIENCE },
		{ "{\"exp\":1700000600,\"iss\":\"iss\",\"aud\":\"other\"}", JWT_WRONG_AUDIENCE },
		{ "{\"exp\":1700000600,\"iss\":\"iss\",\"aud\":[\"x\",\"y\"]}", JWT_WRONG_AUDIENCE },
		{ "{\"exp\":1700000600,\"iss\":\"iss\",\"aud\":7}", JWT_WRONG_AUDIENCE },
		{ "{\"exp\":1700000600,\"iss\":\"iss\",\"aud\":[\"x\",\"aud\"]}", JWT_VALID },
	};
	struct jwt_key *k = key_secret();
	struct jwt_verifier *v = verifier_with(k), *noaud;
	size_t i;
	char *tok;

	jwt_verifier_set_issuer(v, "iss");
	jwt_verifier_set_audience(v, "aud");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tok = craft("{\"alg\":\"HS256\"}", cases[i].claims, k);
		if (verify_at(v, tok, NOW) != cases[i].want)
			fprintf(stderr, "    claims %s\n", cases[i].claims);
		CHECK_INT(verify_at(v, tok, NOW), cases[i].want);
		free(tok);
	}
	/* RFC 7519 4.1.3: a verifier without an audience refuses tokens that name one. */
	noaud = verifier_with(key_secret());
	tok = craft("{\"alg\":\"HS256\"}", "{\"exp\":1700000600,\"aud\":\"aud\"}", k);
	CHECK_INT(verify_at(noaud, tok, NOW), JWT_WRONG_AUDIENCE);
	free(tok);
	tok = craft("{\"alg\":\"HS256\"}", "{\"exp\":1700000600}", k);
	CHECK_INT(verify_at(noaud, tok, NOW), JWT_VALID);
	jwt_verifier_set_leeway(noaud, 0);
	CHECK_INT(verify_at(noaud, tok, 1700000600), JWT_EXPIRED);
	CHECK_INT(verify_at(noaud, tok, 1700000599), JWT_VALID);
	free(tok);
	jwt_verifier_free(noaud);
	jwt_verifier_free(v);
}

/* ---- the verifier's cache of accepted tokens ---- */

struct verify_once {
	const struct jwt_verifier	*v;
	const char			*tok;
};

static void *
verify_once(void *arg)
{
	struct verify_once *o = arg;

	CHECK_INT(verify_at(o->v, o->tok, NOW + 300), JWT_VALID);
	return NULL;
}

/* A remembered token saves only the parsing: its signature is checked and its claims are
 * judged (clock, issuer, audience) on every use, and a new key empties the cache. */
static void
cache_checks_every_use(void)
{
	struct verify_once once;
	pthread_t th;
	struct jwt_key *k = key_secret();
	struct jwt_verifier *v = verifier_with(k);
	char *tok = craft("{\"alg\":\"HS256\"}", "{\"exp\":1700000600,\"nbf\":1700000100}", k);
	unsigned char zero[32] = { 0 };
	char *forged = with_signature(tok, zero, sizeof(zero));
	enum jwt_reason why;
	json_t *a = NULL, *b = NULL;

	jwt_verifier_set_leeway(v, 0);
	CHECK_INT(verify_at(v, tok, NOW + 200), JWT_VALID);
	CHECK_INT(jwt_verifier_cache_hits(v), 0);
	CHECK_INT(jwt_verify(v, tok, strlen(tok), NOW + 300, &why, &a), 0);
	CHECK_INT(why, JWT_VALID);
	CHECK_INT(jwt_verifier_cache_hits(v), 1);	/* the second time came from the cache */
	/* A hit hands out the cache's own object (read-only, for this thread), not a copy. */
	CHECK_INT(jwt_verify(v, tok, strlen(tok), NOW + 300, &why, &b), 0);
	CHECK_INT(why, JWT_VALID);
	CHECK(a == b && json_integer_value(json_object_get(b, "exp")) == 1700000600);
	json_decref(a);
	json_decref(b);
	/* The same header and payload under a wrong signature. */
	CHECK_INT(verify_at(v, forged, NOW + 300), JWT_BAD_SIGNATURE);
	CHECK_INT(verify_at(v, forged, NOW + 300), JWT_BAD_SIGNATURE);
	/* The clock moves on; and it may be set back before nbf. */
	CHECK_INT(verify_at(v, tok, NOW + 600), JWT_EXPIRED);
	CHECK_INT(verify_at(v, tok, NOW + 99), JWT_NOT_YET_VALID);
	/* The verifier's rules are applied again. */
	jwt_verifier_set_issuer(v, "iss");
	CHECK_INT(verify_at(v, tok, NOW + 300), JWT_WRONG_ISSUER);
	jwt_verifier_set_issuer(v, NULL);
	CHECK_INT(verify_at(v, tok, NOW + 300), JWT_VALID);
	CHECK_INT(jwt_verifier_cache_hits(v), 8);	/* every look after the first */
	/* Another thread has a cache of its own: its first look parses. */
	once.v = v;
	once.tok = tok;
	CHECK_INT(pthread_create(&th, NULL, verify_once, &once), 0);
	pthread_join(th, NULL);
	CHECK_INT(jwt_verifier_cache_hits(v), 8);
	CHECK_INT(verify_at(v, tok, NOW + 300), JWT_VALID);
	CHECK_INT(jwt_verifier_cache_hits(v), 9);
	/* A second HS256 key makes a header without kid ambiguous: the cache must not answer. */
	CHECK_INT(jwt_verifier_add_key(v, jwt_key_from_secret(
	    "another-secret-another-secret-another", 37, NULL, 0)), 0);
	CHECK_INT(verify_at(v, tok, NOW + 300), JWT_UNKNOWN_KEY);
	free(forged);
	free(tok);
	jwt_verifier_free(v);
}

#define CACHE_TOKENS	600	/* more than the cache's slots: evictions happen */
#define CACHE_THREADS	4

struct cache_run {
	const struct jwt_verifier	*v;
	char				**toks, **forged;
	int				 bad;
};

static void *
cache_thread(void *arg)
{
	struct cache_run *r = arg;
	size_t round, i;

	for (round = 0; round < 3; round++)
		for (i = 0; i < CACHE_TOKENS; i++) {
			if (verify_at(r->v, r->toks[i], NOW) != JWT_VALID ||
			    verify_at(r->v, r->forged[i], NOW) != JWT_BAD_SIGNATURE)
				__atomic_add_fetch(&r->bad, 1, __ATOMIC_RELAXED);
		}
	return NULL;
}

/* Several threads verify the same tokens at once, through hits, misses and evictions (run it
 * under ASan or TSan: each thread's cache must stay its own). */
static void
cache_threads(void)
{
	struct jwt_key *k = key_secret();
	struct jwt_verifier *v = verifier_with(k);
	static char *toks[CACHE_TOKENS], *forged[CACHE_TOKENS];
	struct cache_run run = { v, toks, forged, 0 };
	pthread_t th[CACHE_THREADS];
	unsigned char zero[32] = { 0 };
	char claims[128];
	size_t i;

	for (i = 0; i < CACHE_TOKENS; i++) {
		snprintf(claims, sizeof(claims), "{\"sub\":\"u%zu\",\"exp\":1700000600}", i);
		toks[i] = craft("{\"alg\":\"HS256\"}", claims, k);
		forged[i] = with_signature(toks[i], zero, sizeof(zero));
	}
	for (i = 0; i < CACHE_THREADS; i++)
		CHECK_INT(pthread_create(&th[i], NULL, cache_thread, &run), 0);
	for (i = 0; i < CACHE_THREADS; i++)
		pthread_join(th[i], NULL);
	CHECK_INT(run.bad, 0);
	CHECK(jwt_verifier_cache_hits(v) > 0);
	for (i = 0; i < CACHE_TOKENS; i++) {
		free(toks[i]);
		free(forged[i]);
	}
	jwt_verifier_free(v);
}

static void
reason_table(void)
{
	int r;

	for (r = 0; r < JWT_NREASONS; r++) {
		CHECK(jwt_reason_code((enum jwt_reason)r) != NULL);
		CHECK(strlen(jwt_reason_text((enum jwt_reason)r)) > 5);
	}
	CHECK_STR(jwt_reason_code(JWT_EXPIRED), "expired");
	CHECK_STR(jwt_reason_code(JWT_REVOKED), "revoked");
}

UNIT_MAIN(CASE(rfc7515_a1_hs256), CASE(rfc7515_a3_es256), CASE(rfc7520_41_rs256),
    CASE(rfc7520_44_hs256), CASE(rfc8037_a4_ed25519), CASE(rfc7638_thumbprint), CASE(jwk_codec),
    CASE(roundtrip_all), CASE(keys_pem_and_limits), CASE(secret_kid_hides_secret),
    CASE(reject_alg_none), CASE(reject_key_confusion), CASE(reject_bad_signatures),
    CASE(reject_malformed), CASE(reject_header_extensions), CASE(reject_kid_elsewhere),
    CASE(reject_embedded_keys), CASE(reject_claims), CASE(cache_checks_every_use), CASE(cache_threads),
    CASE(reason_table))
