/* Unit tests for common/bearer.c: RFC 6750 section 2.1 credentials and everything else. */
#include "unit.h"
#include "bearer.h"

/* The token bearer_parse finds in h, copied into a static buffer, or NULL. */
static const char *
token(const char *h)
{
	static char buf[BEARER_MAX_TOKEN + 1];
	const char *t;
	size_t n;

	if ((t = bearer_parse(h, &n)) == NULL)
		return NULL;
	memcpy(buf, t, n);
	buf[n] = '\0';
	return buf;
}

static void
accepts_token68(void)
{
	CHECK_STR(token("Bearer mF_9.B5f-4.1JqM"), "mF_9.B5f-4.1JqM");	/* RFC 6750 example */
	CHECK_STR(token("bearer abc"), "abc");
	CHECK_STR(token("BEARER abc"), "abc");
	CHECK_STR(token("Bearer    abc"), "abc");
	CHECK_STR(token("Bearer a+b/c~d=="), "a+b/c~d==");
	CHECK_STR(token("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig-_"),
	    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig-_");
	CHECK_STR(token("Bearer abc  "), "abc");
}

static void
rejects_other_schemes(void)
{
	CHECK(token(NULL) == NULL);
	CHECK(token("") == NULL);
	CHECK(token("Basic YWxhZGRpbjpvcGVuc2VzYW1l") == NULL);
	CHECK(token("Bearer") == NULL);
	CHECK(token("Bearer ") == NULL);
	CHECK(token("Bearerabc") == NULL);
	CHECK(token("Bearer\tabc") == NULL);
	CHECK(token(" Bearer abc") == NULL);
	CHECK(token("Token abc") == NULL);
}

static void
rejects_bad_tokens(void)
{
	CHECK(token("Bearer a b") == NULL);
	CHECK(token("Bearer a,b") == NULL);
	CHECK(token("Bearer \"abc\"") == NULL);
	CHECK(token("Bearer a=b") == NULL);	/* '=' only at the end */
	CHECK(token("Bearer =abc") == NULL);
	CHECK(token("Bearer abc\r\nX: y") == NULL);
	CHECK(token("Bearer ab\x01") == NULL);
	CHECK(token("Bearer abc\xc3\xa9") == NULL);
	CHECK(token("Bearer abc, Bearer def") == NULL);
}

static void
token_size_limit(void)
{
	static char h[BEARER_MAX_TOKEN + 16];

	memcpy(h, "Bearer ", 7);
	memset(h + 7, 'a', BEARER_MAX_TOKEN);
	h[7 + BEARER_MAX_TOKEN] = '\0';
	CHECK(token(h) != NULL);
	CHECK_INT(strlen(token(h)), BEARER_MAX_TOKEN);
	h[7 + BEARER_MAX_TOKEN] = 'a';
	h[8 + BEARER_MAX_TOKEN] = '\0';
	CHECK(token(h) == NULL);
}

UNIT_MAIN(CASE(accepts_token68), CASE(rejects_other_schemes), CASE(rejects_bad_tokens),
    CASE(token_size_limit))
