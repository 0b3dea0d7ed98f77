/*
 * JWS compact tokens: signing and verification with the keys of jwt_key.c (see jwt.h). Every
 * check a verifier needs is here, in the order RFC 8725 suggests: size, shape, header, key
 * choice, signature, and only then the claims. The bugs other JWT libraries had are named
 * where they are avoided.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "base64.h"
#include "jwt.h"
#include "jwt_key_private.h"

#define JWT_MAX_KEYS		16
#define JWT_ES256_HALF		32
#define JWT_MAX_SIG		512	/* RSA-4096 */

#define JWT_CACHE_SLOTS		256	/* accepted tokens a verifier remembers */
#define JWT_CACHE_MAX_INPUT	2048	/* longer header.payload bytes are not remembered */

/*
 * An accepted token, remembered by the exact bytes of its header and payload: the key its
 * header chose and its parsed claims. Parsing the two JSON objects is most of the work of a
 * HS256 verification; the cache saves only that. The signature is still checked, and the
 * claims still judged against the clock and the verifier's rules, on every use.
 */
struct jwt_cache_slot {
	char			*cs_input;	/* header.payload as received; NULL: empty */
	size_t			 cs_len;
	const struct jwt_key	*cs_key;	/* owned by the verifier */
	json_t			*cs_claims;
};

/*
 * Each thread has a cache of its own, for one verifier at a time: no lock, and a claims object
 * never crosses threads (Jansson's reference counts are not made to be shared: the decrement
 * that frees lacks an acquire), so a hit hands out a reference instead of a copy.
 */
struct jwt_cache {
	unsigned long		 c_owner;	/* v_id of the verifier it serves */
	struct jwt_cache_slot	 c_slot[JWT_CACHE_SLOTS];	/* direct-mapped */
};

struct jwt_verifier {
	struct jwt_key		*v_keys[JWT_MAX_KEYS];
	size_t			 v_nkeys;
	char			*v_issuer;
	char			*v_audience;
	long			 v_leeway;
	size_t			 v_max_len;
	unsigned long		 v_id;		/* unique, new with every key: caches go stale */
	unsigned long		 v_hits;	/* atomic: verifications answered by a cache */
};

static pthread_key_t jwt_cache_key;
static pthread_once_t jwt_cache_once = PTHREAD_ONCE_INIT;
static int jwt_cache_usable;
static unsigned long jwt_verifier_ids;	/* atomic: the last v_id given out */

static const struct {
	const char	*code;
	const char	*text;
} jwt_reasons[JWT_NREASONS] = {
	[JWT_VALID] = { "valid", "The token is valid." },
	[JWT_TOO_LARGE] = { "too_large", "The token is too large." },
	[JWT_MALFORMED] = { "malformed", "The token is not a well-formed JWS compact token." },
	[JWT_UNSUPPORTED_HEADER] = { "unsupported_header",
	    "The token header asks for an extension or type this server does not support." },
	[JWT_ALG_NOT_ALLOWED] = { "alg_not_allowed",
	    "The token's algorithm is not the one of this server's keys." },
	[JWT_UNKNOWN_KEY] = { "unknown_key", "The token was not signed with a key this server knows." },
	[JWT_BAD_SIGNATURE] = { "bad_signature", "The token signature is invalid." },
	[JWT_BAD_CLAIMS] = { "bad_claims", "The token lacks a valid expiry or has a claim of the wrong type." },
	[JWT_EXPIRED] = { "expired", "The token has expired." },
	[JWT_NOT_YET_VALID] = { "not_yet_valid", "The token is not valid yet." },
	[JWT_WRONG_ISSUER] = { "wrong_issuer", "The token was issued by someone else." },
	[JWT_WRONG_AUDIENCE] = { "wrong_audience", "The token is meant for another audience." },
	[JWT_REVOKED] = { "revoked", "The token has been revoked." },
};

const char *
jwt_reason_code(enum jwt_reason r)
{
	return r < JWT_NREASONS ? jwt_reasons[r].code : "unknown";
}

const char *
jwt_reason_text(enum jwt_reason r)
{
	return r < JWT_NREASONS ? jwt_reasons[r].text : "The token was rejected.";
}

/* ---- ECDSA signature forms ---- */

/* JWS wants R||S, 32 bytes each; OpenSSL speaks DER. Converts DER to raw, refusing any
 * integer that does not fit (the overflow HAProxy's converter had). */
static int
jwt_es256_from_der(const unsigned char *der, size_t len, unsigned char *raw)
{
	const unsigned char *p = der;
	const BIGNUM *r, *s;
	ECDSA_SIG *sig;
	int ok;

	if ((sig = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL)
		return -1;
	ECDSA_SIG_get0(sig, &r, &s);
	ok = p == der + len &&
	    BN_bn2binpad(r, raw, JWT_ES256_HALF) == JWT_ES256_HALF &&
	    BN_bn2binpad(s, raw + JWT_ES256_HALF, JWT_ES256_HALF) == JWT_ES256_HALF;
	ECDSA_SIG_free(sig);
	return ok ? 0 : -1;
}

/* Converts 64 raw bytes to DER. Returns the length written into der (room for 80), or -1. */
static int
jwt_es256_to_der(const unsigned char *raw, unsigned char *der)
{
	ECDSA_SIG *sig;
	BIGNUM *r, *s;
	unsigned char *p = der;
	int len = -1;

	if ((sig = ECDSA_SIG_new()) == NULL)
		return -1;
	r = BN_bin2bn(raw, JWT_ES256_HALF, NULL);
	s = BN_bin2bn(raw + JWT_ES256_HALF, JWT_ES256_HALF, NULL);
	if (r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		goto done;
	}
	if (i2d_ECDSA_SIG(sig, NULL) <= 80)
		len = i2d_ECDSA_SIG(sig, &p);
done:
	ECDSA_SIG_free(sig);
	return len;
}

/* ---- Signing ---- */

int
jwt_sign_input(const struct jwt_key *k, const char *input, size_t len, unsigned char *sig,
    size_t *siglen)
{
	EVP_MD_CTX *md = NULL;
	unsigned char der[JWT_MAX_SIG];
	size_t n = sizeof(der);
	int rc = -1;

	if (!k->k_private)
		return -1;
	if (k->k_alg == JWT_HS256) {
		if (jwt_key_hmac(k, input, len, sig) == -1)
			return -1;
		*siglen = JWT_HS256_LEN;
		return 0;
	}
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit_ex(md, NULL, k->k_alg == JWT_EDDSA ? NULL : "SHA256", NULL, NULL,
	    k->k_pkey, NULL) != 1 ||
	    EVP_DigestSign(md, NULL, &n, (const unsigned char *)input, len) != 1 ||
	    n > sizeof(der) ||
	    EVP_DigestSign(md, der, &n, (const unsigned char *)input, len) != 1)
		goto done;
	if (k->k_alg == JWT_ES256) {
		if (jwt_es256_from_der(der, n, sig) == -1)
			goto done;
		*siglen = 2 * JWT_ES256_HALF;
	} else {
		memcpy(sig, der, n);
		*siglen = n;
	}
	rc = 0;
done:
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return rc;
}

/* Appends the base64url of n bytes to out at *pos (room checked by the caller). */
static void
jwt_append_b64(char *out, size_t *pos, const void *in, size_t n)
{
	*pos += base64_encode(BASE64_URL, in, n, out + *pos);
}

char *
jwt_sign(const struct jwt_key *k, json_t *claims)
{
	json_t *hdr = NULL;
	char *h = NULL, *p = NULL, *tok = NULL;
	unsigned char sig[JWT_MAX_SIG];
	size_t hl, pl, siglen, pos = 0, cap;

	hdr = json_pack("{s:s, s:s, s:s}", "alg", jwt_alg_name(k->k_alg), "typ", "JWT",
	    "kid", k->k_kid);
	if (hdr == NULL || (h = json_dumps(hdr, JSON_COMPACT)) == NULL ||
	    (p = json_dumps(claims, JSON_COMPACT)) == NULL)
		goto fail;
	hl = strlen(h);
	pl = strlen(p);
	cap = base64_encoded_len(hl) + base64_encoded_len(pl) + base64_encoded_len(JWT_MAX_SIG) + 3;
	if ((tok = malloc(cap)) == NULL)
		goto fail;
	jwt_append_b64(tok, &pos, h, hl);
	tok[pos++] = '.';
	jwt_append_b64(tok, &pos, p, pl);
	if (jwt_sign_input(k, tok, pos, sig, &siglen) == -1)
		goto fail;
	tok[pos++] = '.';
	jwt_append_b64(tok, &pos, sig, siglen);
	tok[pos] = '\0';
	json_decref(hdr);
	free(h);
	free(p);
	return tok;
fail:
	json_decref(hdr);
	free(h);
	free(p);
	free(tok);
	return NULL;
}

/* ---- Parsing ---- */

/* The three segments of a compact token. */
struct jwt_parts {
	const char	*hdr, *pay, *sig;
	size_t		 hdrlen, paylen, siglen;
};

/* Exactly two dots: three segments (a JWE's five, or anything else, is malformed). */
static int
jwt_split(const char *t, size_t len, struct jwt_parts *p)
{
	const char *d1, *d2;

	if ((d1 = memchr(t, '.', len)) == NULL ||
	    (d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - t))) == NULL ||
	    memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - t)) != NULL)
		return -1;
	p->hdr = t;
	p->hdrlen = (size_t)(d1 - t);
	p->pay = d1 + 1;
	p->paylen = (size_t)(d2 - p->pay);
	p->sig = d2 + 1;
	p->siglen = len - (size_t)(p->sig - t);
	return 0;
}

/* Strict base64url of a JSON object without duplicate members. Returns a new reference or
 * NULL. */
static json_t *
jwt_segment_json(const char *s, size_t n)
{
	unsigned char *buf;
	size_t len;
	json_t *j = NULL;

	if (n == 0 || (buf = malloc(base64_decoded_max(n))) == NULL)
		return NULL;
	if (base64_decode(BASE64_URL, s, n, buf, &len) == 0)
		j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
	free(buf);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

int
jwt_decode(const char *token, size_t len, json_t **header, json_t **payload,
    unsigned char **sig, size_t *siglen, enum jwt_reason *why)
{
	struct jwt_parts p;

	*header = *payload = NULL;
	*sig = NULL;
	if (len > JWT_MAX_TOKEN) {
		*why = JWT_TOO_LARGE;
		return -1;
	}
	*why = JWT_MALFORMED;
	if (jwt_split(token, len, &p) == -1 ||
	    (*header = jwt_segment_json(p.hdr, p.hdrlen)) == NULL ||
	    (*payload = jwt_segment_json(p.pay, p.paylen)) == NULL ||
	    (*sig = malloc(base64_decoded_max(p.siglen) + 1)) == NULL ||
	    base64_decode(BASE64_URL, p.sig, p.siglen, *sig, siglen) == -1)
		goto fail;
	return 0;
fail:
	json_decref(*header);
	json_decref(*payload);
	free(*sig);
	*header = *payload = NULL;
	*sig = NULL;
	return -1;
}

/* ---- Verification ---- */

/* Empties slot cs. */
static void
jwt_cache_clear(struct jwt_cache_slot *cs)
{
	free(cs->cs_input);
	json_decref(cs->cs_claims);
	memset(cs, 0, sizeof(*cs));
}

/* Frees a thread's cache: the thread is ending, or its verifier is. */
static void
jwt_cache_free(void *arg)
{
	struct jwt_cache *c = arg;
	size_t i;

	for (i = 0; i < JWT_CACHE_SLOTS; i++)
		jwt_cache_clear(&c->c_slot[i]);
	free(c);
}

static void
jwt_cache_init(void)
{
	jwt_cache_usable = pthread_key_create(&jwt_cache_key, jwt_cache_free) == 0;
}

/* The calling thread's cache, emptied first when it served another verifier; NULL when out of
 * memory (the verification then simply goes without). */
static struct jwt_cache *
jwt_cache_of(const struct jwt_verifier *v)
{
	struct jwt_cache *c;
	unsigned long id = __atomic_load_n(&v->v_id, __ATOMIC_RELAXED);
	size_t i;

	if (pthread_once(&jwt_cache_once, jwt_cache_init) != 0 || !jwt_cache_usable)
		return NULL;
	if ((c = pthread_getspecific(jwt_cache_key)) == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			return NULL;
		if (pthread_setspecific(jwt_cache_key, c) != 0) {
			free(c);
			return NULL;
		}
	}
	if (c->c_owner != id) {
		for (i = 0; i < JWT_CACHE_SLOTS; i++)
			jwt_cache_clear(&c->c_slot[i]);
		c->c_owner = id;
	}
	return c;
}

struct jwt_verifier *
jwt_verifier_new(void)
{
	struct jwt_verifier *v;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return NULL;
	v->v_leeway = JWT_DEFAULT_LEEWAY;
	v->v_max_len = JWT_MAX_TOKEN;
	v->v_id = __atomic_add_fetch(&jwt_verifier_ids, 1, __ATOMIC_RELAXED);
	return v;
}

void
jwt_verifier_free(struct jwt_verifier *v)
{
	struct jwt_cache *c;
	size_t i;

	if (v == NULL)
		return;
	/* The other threads' caches go stale (no verifier has this id again) and go with them. */
	if (jwt_cache_usable && (c = pthread_getspecific(jwt_cache_key)) != NULL &&
	    c->c_owner == v->v_id) {
		pthread_setspecific(jwt_cache_key, NULL);
		jwt_cache_free(c);
	}
	for (i = 0; i < v->v_nkeys; i++)
		jwt_key_free(v->v_keys[i]);
	free(v->v_issuer);
	free(v->v_audience);
	free(v);
}

int
jwt_verifier_add_key(struct jwt_verifier *v, struct jwt_key *k)
{
	size_t i;

	if (v->v_nkeys == JWT_MAX_KEYS)
		return -1;
	for (i = 0; i < v->v_nkeys; i++)
		if (strcmp(v->v_keys[i]->k_kid, k->k_kid) == 0)
			return -1;
	v->v_keys[v->v_nkeys++] = k;
	/* Another key can change which key a remembered header chooses: every cache goes stale. */
	__atomic_store_n(&v->v_id, __atomic_add_fetch(&jwt_verifier_ids, 1, __ATOMIC_RELAXED),
	    __ATOMIC_RELAXED);
	return 0;
}

size_t
jwt_verifier_nkeys(const struct jwt_verifier *v)
{
	return v->v_nkeys;
}

const struct jwt_key *
jwt_verifier_key(const struct jwt_verifier *v, size_t i)
{
	return i < v->v_nkeys ? v->v_keys[i] : NULL;
}

unsigned long
jwt_verifier_cache_hits(const struct jwt_verifier *v)
{
	return __atomic_load_n(&v->v_hits, __ATOMIC_RELAXED);
}

static int
jwt_set_string(char **dst, const char *s)
{
	char *copy = NULL;

	if (s != NULL && (copy = strdup(s)) == NULL)
		return -1;
	free(*dst);
	*dst = copy;
	return 0;
}

int
jwt_verifier_set_issuer(struct jwt_verifier *v, const char *issuer)
{
	return jwt_set_string(&v->v_issuer, issuer);
}

int
jwt_verifier_set_audience(struct jwt_verifier *v, const char *audience)
{
	return jwt_set_string(&v->v_audience, audience);
}

void
jwt_verifier_set_leeway(struct jwt_verifier *v, long seconds)
{
	v->v_leeway = seconds < 0 ? 0 : seconds;
}

void
jwt_verifier_set_max_len(struct jwt_verifier *v, size_t max)
{
	v->v_max_len = max;
}

/*
 * Chooses the key from the header. The algorithm must be spelled exactly as one of ours
 * ("none", "None", "nOnE" and "hs256" are all simply unknown), must be the algorithm of a
 * configured key, and the kid, when present, must name that very key: so a public key can
 * never be used as an HMAC secret.
 */
static enum jwt_reason
jwt_choose_key(const struct jwt_verifier *v, json_t *hdr, const struct jwt_key **out)
{
	const struct jwt_key *k, *found = NULL;
	json_t *alg, *kid, *typ;
	enum jwt_alg a;
	size_t i, nalg = 0;

	if (json_object_get(hdr, "crit") != NULL)
		return JWT_UNSUPPORTED_HEADER;	/* we understand no extension */
	typ = json_object_get(hdr, "typ");
	if (typ != NULL && (!json_is_string(typ) || (strcasecmp(json_string_value(typ), "JWT") != 0 &&
	    strcasecmp(json_string_value(typ), "application/jwt") != 0)))
		return JWT_UNSUPPORTED_HEADER;
	if (!json_is_string(alg = json_object_get(hdr, "alg")))
		return JWT_MALFORMED;
	for (a = JWT_HS256; a <= JWT_EDDSA; a++)
		if (strcmp(json_string_value(alg), jwt_alg_name(a)) == 0)
			break;
	if (a > JWT_EDDSA)
		return JWT_ALG_NOT_ALLOWED;
	for (i = 0; i < v->v_nkeys; i++)
		if (v->v_keys[i]->k_alg == a) {
			nalg++;
			found = v->v_keys[i];
		}
	if (nalg == 0)
		return JWT_ALG_NOT_ALLOWED;
	kid = json_object_get(hdr, "kid");
	if (kid == NULL) {
		/* Without a kid only an unambiguous choice is made; we never try keys in turn. */
		if (nalg > 1)
			return JWT_UNKNOWN_KEY;
		*out = found;
		return JWT_VALID;
	}
	if (!json_is_string(kid))
		return JWT_MALFORMED;
	for (i = 0; i < v->v_nkeys; i++) {
		k = v->v_keys[i];
		if (strcmp(k->k_kid, json_string_value(kid)) != 0)
			continue;
		if (k->k_alg != a)
			return JWT_ALG_NOT_ALLOWED;
		*out = k;
		return JWT_VALID;
	}
	return JWT_UNKNOWN_KEY;
}

/* Returns 1 for a good signature, 0 for a bad one, -1 when it could not be checked. */
static int
jwt_check_signature(const struct jwt_key *k, const char *input, size_t len,
    const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *md = NULL;
	unsigned char mac[JWT_HS256_LEN], der[80];
	const unsigned char *s = sig;
	int n, rc;

	switch (k->k_alg) {
	case JWT_HS256:
		if (siglen != JWT_HS256_LEN)
			return 0;
		if (jwt_key_hmac(k, input, len, mac) == -1)
			return -1;
		/* Constant time: a byte-by-byte compare leaks the MAC (CVE-2024-25189). */
		return CRYPTO_memcmp(mac, sig, JWT_HS256_LEN) == 0;
	case JWT_RS256:
		if (siglen != (size_t)EVP_PKEY_get_size(k->k_pkey))
			return 0;
		break;
	case JWT_ES256:
		/* Only the 64-byte JWS form; a DER signature is not a JWS ES256 signature. */
		if (siglen != 2 * JWT_ES256_HALF)
			return 0;
		if ((n = jwt_es256_to_der(sig, der)) <= 0)
			return -1;
		s = der;
		siglen = (size_t)n;
		break;
	case JWT_EDDSA:
		if (siglen != 64)
			return 0;
		break;
	}
	if ((md = EVP_MD_CTX_new()) == NULL || (k->k_verify != NULL ?
	    EVP_MD_CTX_copy_ex(md, k->k_verify) != 1 :
	    EVP_DigestVerifyInit_ex(md, NULL, NULL, NULL, NULL, k->k_pkey, NULL) != 1)) {
		rc = -1;
		goto done;
	}
	rc = EVP_DigestVerify(md, s, siglen, (const unsigned char *)input, len) == 1;
done:
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return rc;
}

/* A NumericDate: a JSON number. Returns 1 when present (value in *t), 0 when absent, -1 when
 * of the wrong type. */
static int
jwt_claim_time(json_t *claims, const char *name, double *t)
{
	json_t *j = json_object_get(claims, name);

	if (j == NULL)
		return 0;
	if (!json_is_number(j))
		return -1;
	*t = json_number_value(j);
	return 1;
}

static int
jwt_audience_ok(json_t *aud, const char *want)
{
	json_t *a;
	size_t i;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (!json_is_array(aud))
		return 0;
	json_array_foreach(aud, i, a)
		if (json_is_string(a) && strcmp(json_string_value(a), want) == 0)
			return 1;
	return 0;
}

static enum jwt_reason
jwt_check_claims(const struct jwt_verifier *v, json_t *c, time_t now)
{
	double exp, nbf, iat, t = (double)now, lw = (double)v->v_leeway;
	json_t *iss, *aud, *s;
	int has_nbf, has_iat;

	if (jwt_claim_time(c, "exp", &exp) != 1 ||
	    (has_nbf = jwt_claim_time(c, "nbf", &nbf)) == -1 ||
	    (has_iat = jwt_claim_time(c, "iat", &iat)) == -1)
		return JWT_BAD_CLAIMS;
	if (((s = json_object_get(c, "jti")) != NULL && !json_is_string(s)) ||
	    ((s = json_object_get(c, "sub")) != NULL && !json_is_string(s)))
		return JWT_BAD_CLAIMS;
	if (t >= exp + lw)
		return JWT_EXPIRED;
	if ((has_nbf && t + lw < nbf) || (has_iat && t + lw < iat))
		return JWT_NOT_YET_VALID;
	iss = json_object_get(c, "iss");
	if (v->v_issuer != NULL && (!json_is_string(iss) ||
	    strcmp(json_string_value(iss), v->v_issuer) != 0))
		return JWT_WRONG_ISSUER;
	/* RFC 7519 4.1.3: a token with an audience is refused by anyone not in it. */
	aud = json_object_get(c, "aud");
	if (v->v_audience != NULL ? !jwt_audience_ok(aud, v->v_audience) : aud != NULL)
		return JWT_WRONG_AUDIENCE;
	return JWT_VALID;
}

/* The slot of cache c for a signing input: FNV-1a over 8-byte words, folded. Only tokens with a
 * good signature get in, so nobody can aim many inputs at one slot without signed tokens, and
 * then they only evict each other. */
static struct jwt_cache_slot *
jwt_cache_slot(struct jwt_cache *c, const char *in, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL, w;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, in + i, 8);
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ (unsigned char)in[i]) * 0x100000001b3ULL;
	h ^= h >> 32;
	return &c->c_slot[(h ^ (h >> 16)) % JWT_CACHE_SLOTS];
}

/* The claims remembered for exactly these n bytes of signing input (a new reference), with *k
 * set to the key the header chose; or NULL. */
static json_t *
jwt_cache_get(const struct jwt_verifier *v, const char *in, size_t n, const struct jwt_key **k)
{
	struct jwt_cache *c;
	struct jwt_cache_slot *cs;

	if (n > JWT_CACHE_MAX_INPUT || (c = jwt_cache_of(v)) == NULL)
		return NULL;
	cs = jwt_cache_slot(c, in, n);
	if (cs->cs_input == NULL || cs->cs_len != n || memcmp(cs->cs_input, in, n) != 0)
		return NULL;
	/* The one field that changes in a verifier the threads share as const (it was allocated
	 * writable, so the cast is sound): a counter. */
	__atomic_add_fetch((unsigned long *)&v->v_hits, 1, __ATOMIC_RELAXED);
	*k = cs->cs_key;
	return json_incref(cs->cs_claims);
}

/* Remembers an accepted token's signing input, key and claims (a new reference), replacing
 * whatever had its slot. Out of memory, it simply remembers nothing. */
static void
jwt_cache_put(const struct jwt_verifier *v, const char *in, size_t n, const struct jwt_key *k,
    json_t *claims)
{
	struct jwt_cache *c;
	struct jwt_cache_slot *cs;
	char *copy;

	if (n > JWT_CACHE_MAX_INPUT || (c = jwt_cache_of(v)) == NULL || (copy = malloc(n)) == NULL)
		return;
	memcpy(copy, in, n);
	cs = jwt_cache_slot(c, in, n);
	jwt_cache_clear(cs);
	cs->cs_input = copy;
	cs->cs_len = n;
	cs->cs_key = k;
	cs->cs_claims = json_incref(claims);
}

int
jwt_verify(const struct jwt_verifier *v, const char *token, size_t len, time_t now,
    enum jwt_reason *why, json_t **claims)
{
	struct jwt_parts p;
	const struct jwt_key *k = NULL;
	json_t *hdr = NULL, *pay = NULL;
	unsigned char *sig = NULL;
	size_t siglen, inlen;
	int rc = 0, ok, cached;

	if (claims != NULL)
		*claims = NULL;
	*why = JWT_TOO_LARGE;
	if (len > v->v_max_len)
		goto done;
	*why = JWT_MALFORMED;
	if (jwt_split(token, len, &p) == -1)
		goto done;
	/* The signing input is the first two segments exactly as received. */
	inlen = (size_t)(p.sig - 1 - token);
	/* The same bytes were parsed and judged before: the same header chooses the same key. */
	cached = (pay = jwt_cache_get(v, token, inlen, &k)) != NULL;
	if (!cached) {
		if ((hdr = jwt_segment_json(p.hdr, p.hdrlen)) == NULL)
			goto done;
		if ((*why = jwt_choose_key(v, hdr, &k)) != JWT_VALID)
			goto done;
	}
	*why = JWT_MALFORMED;
	if ((sig = malloc(base64_decoded_max(p.siglen) + 1)) == NULL) {
		rc = -1;
		goto done;
	}
	if (base64_decode(BASE64_URL, p.sig, p.siglen, sig, &siglen) == -1)
		goto done;
	if ((ok = jwt_check_signature(k, token, inlen, sig, siglen)) == -1) {
		rc = -1;
		goto done;
	}
	*why = JWT_BAD_SIGNATURE;
	if (!ok)
		goto done;
	/* Only signed bytes reach the claims parser. */
	*why = JWT_MALFORMED;
	if (!cached && (pay = jwt_segment_json(p.pay, p.paylen)) == NULL)
		goto done;
	/* Judged on every use: time passes, and exp or nbf with it. */
	if ((*why = jwt_check_claims(v, pay, now)) != JWT_VALID)
		goto done;
	if (!cached)
		jwt_cache_put(v, token, inlen, k, pay);
	if (claims != NULL) {
		*claims = pay;
		pay = NULL;
	}
done:
	json_decref(hdr);
	json_decref(pay);
	free(sig);
	return rc;
}
