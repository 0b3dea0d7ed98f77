/* Unit tests for common/cookie.c: the Cookie headers of RFC 6265's examples, junk around the
 * cookie we want, and Set-Cookie values that must refuse what the grammar forbids. */
#include "unit.h"
#include "cookie.h"

static char out[64];

static void
rfc6265_examples(void)
{
	/* Section 3.1: "Cookie: SID=31d4d96e407aad42; lang=en-US" */
	CHECK_INT(cookie_get("SID=31d4d96e407aad42; lang=en-US", "SID", out, sizeof(out)), 16);
	CHECK_STR(out, "31d4d96e407aad42");
	CHECK_INT(cookie_get("SID=31d4d96e407aad42; lang=en-US", "lang", out, sizeof(out)), 5);
	CHECK_STR(out, "en-US");
	CHECK_INT(cookie_get("SID=31d4d96e407aad42; lang=en-US", "sid", out, sizeof(out)), -1);
	CHECK_INT(cookie_get("SID=31d4d96e407aad42", "lang", out, sizeof(out)), -1);
	/* cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE ) */
	CHECK_INT(cookie_get("a=\"quoted\"", "a", out, sizeof(out)), 6);
	CHECK_STR(out, "quoted");
	CHECK_INT(cookie_get("a=", "a", out, sizeof(out)), 0);
	CHECK_STR(out, "");
}

static void
first_occurrence_wins(void)
{
	CHECK_INT(cookie_get("sid=one; sid=two", "sid", out, sizeof(out)), 3);
	CHECK_STR(out, "one");
	/* A name that only starts or ends like ours is another cookie. */
	CHECK_INT(cookie_get("xsid=a; sidx=b; sid=c", "sid", out, sizeof(out)), 1);
	CHECK_STR(out, "c");
}

static void
tolerates_junk_elsewhere(void)
{
	/* Other cookies we never set may be anything; ours is still found. */
	CHECK_INT(cookie_get("junk; x=\"a b\"; =; ;;sid=abc", "sid", out, sizeof(out)), 3);
	CHECK_STR(out, "abc");
	CHECK_INT(cookie_get("  sid=abc  ", "sid", out, sizeof(out)), 3);
	CHECK_INT(cookie_get("a=b;sid=abc", "sid", out, sizeof(out)), 3);
	CHECK_INT(cookie_get("a=b;\tsid=abc;", "sid", out, sizeof(out)), 3);
}

static void
rejects_malformed_value(void)
{
	CHECK_INT(cookie_get("sid=a b", "sid", out, sizeof(out)), -1);
	CHECK_INT(cookie_get("sid=a,b", "sid", out, sizeof(out)), -1);
	CHECK_INT(cookie_get("sid=a\"b", "sid", out, sizeof(out)), -1);
	CHECK_INT(cookie_get("sid=\"ab", "sid", out, sizeof(out)), -1);
	CHECK_INT(cookie_get("sid=a\\b", "sid", out, sizeof(out)), -1);
	CHECK_INT(cookie_get("sid=a\x01" "b", "sid", out, sizeof(out)), -1);
	CHECK_INT(cookie_get("sid=a\x7f", "sid", out, sizeof(out)), -1);
	CHECK_INT(cookie_get("sid=caf\xc3\xa9", "sid", out, sizeof(out)), -1);
	CHECK_INT(cookie_get("sid=\"a b\"", "sid", out, sizeof(out)), -1);
	CHECK_INT(cookie_get(NULL, "sid", out, sizeof(out)), -1);
	CHECK_INT(cookie_get("", "sid", out, sizeof(out)), -1);
	CHECK_INT(cookie_get("sid", "sid", out, sizeof(out)), -1);
	CHECK_INT(cookie_get("sid=abc", "", out, sizeof(out)), -1);
}

static void
value_too_long(void)
{
	char small[4];

	CHECK_INT(cookie_get("sid=abc", "sid", small, sizeof(small)), 3);
	CHECK_STR(small, "abc");
	CHECK_INT(cookie_get("sid=abcd", "sid", small, sizeof(small)), -1);
}

static void
build_session_cookie(void)
{
	struct cookie_attrs a = { .max_age = -1, .http_only = 1, .same_site = "Lax" };
	char buf[256];

	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "abc123", &a), 0);
	CHECK_STR(buf, "sid=abc123; Path=/; HttpOnly; SameSite=Lax");
	a.secure = 1;
	a.max_age = 3600;
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "abc123", &a), 0);
	CHECK_STR(buf, "sid=abc123; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax");
	/* Deleting: empty value, Max-Age=0. */
	a.max_age = 0;
	a.path = "/api";
	a.same_site = NULL;
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "", &a), 0);
	CHECK_STR(buf, "sid=; Path=/api; Max-Age=0; Secure; HttpOnly");
	/* What we build, we read back. */
	CHECK_INT(cookie_get(buf, "sid", out, sizeof(out)), 0);
}

static void
build_rejects_forbidden(void)
{
	struct cookie_attrs a = { .max_age = -1, .same_site = "Lax" };
	char buf[256];

	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "a;b", &a), -1);
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "a b", &a), -1);
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "a,b", &a), -1);
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "\"ab\"", &a), -1);
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "a\\b", &a), -1);
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "a\r\nSet-Cookie: x=y", &a), -1);
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "caf\xc3\xa9", &a), -1);
	CHECK_INT(cookie_build(buf, sizeof(buf), "s id", "v", &a), -1);
	CHECK_INT(cookie_build(buf, sizeof(buf), "s=id", "v", &a), -1);
	CHECK_INT(cookie_build(buf, sizeof(buf), "", "v", &a), -1);
	a.path = "/a;b";
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "v", &a), -1);
	a.path = "/a\nb";
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "v", &a), -1);
	a.path = NULL;
	a.same_site = "lax; Domain=evil";
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "v", &a), -1);
	a.same_site = "None";	/* browsers drop SameSite=None without Secure */
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "v", &a), -1);
	a.secure = 1;
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "v", &a), 0);
	CHECK_STR(buf, "sid=v; Path=/; Secure; SameSite=None");
	a.max_age = -2;
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "v", &a), -1);
}

static void
build_too_small(void)
{
	struct cookie_attrs a = { .max_age = -1 };
	char buf[14];

	/* "sid=v; Path=/" is 13 characters: it just fits with its NUL. */
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "v", &a), 0);
	CHECK_STR(buf, "sid=v; Path=/");
	CHECK_INT(cookie_build(buf, sizeof(buf), "sid", "vv", &a), -1);
}

UNIT_MAIN(CASE(rfc6265_examples), CASE(first_occurrence_wins), CASE(tolerates_junk_elsewhere),
    CASE(rejects_malformed_value), CASE(value_too_long), CASE(build_session_cookie),
    CASE(build_rejects_forbidden), CASE(build_too_small))
