/* loadgen's cookie jar: keeps every cookie like a browser, replaces, deletes on Max-Age=0 or a
 * past Expires, refuses malformed and oversized cookies, and builds the Cookie header. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "unit.h"
#include "../../loadgen/loadgen.h"

#define SET(j, s)	jar_set((j), (s), strlen(s))

static void
jar_keeps_all_cookies(void)
{
	struct jar j;
	char out[256];

	jar_init(&j);
	CHECK_INT(SET(&j, "sid=abc123; Path=/; HttpOnly; SameSite=Lax"), 1);
	CHECK_INT(SET(&j, "LBSTICKY=app2; Path=/; HttpOnly"), 1);
	CHECK_INT(SET(&j, "access_token=eyJ.x.y; Path=/; Secure"), 1);
	CHECK_INT(j.j_n, 3);
	CHECK_STR(jar_get(&j, "sid"), "abc123");
	CHECK_STR(jar_get(&j, "LBSTICKY"), "app2");
	CHECK_STR(jar_get(&j, "access_token"), "eyJ.x.y");
	CHECK_INT(jar_header(&j, out, sizeof(out)), strlen("sid=abc123; LBSTICKY=app2; access_token=eyJ.x.y"));
	CHECK_STR(out, "sid=abc123; LBSTICKY=app2; access_token=eyJ.x.y");
	jar_free(&j);
	CHECK_INT(j.j_n, 0);
}

static void
jar_replace_and_unchanged(void)
{
	struct jar j;

	jar_init(&j);
	CHECK_INT(SET(&j, "sid=one"), 1);
	CHECK_INT(SET(&j, "sid=one; Path=/"), 0);	/* same value: nothing to rebuild */
	CHECK_INT(SET(&j, "sid=two"), 1);
	CHECK_STR(jar_get(&j, "sid"), "two");
	CHECK_INT(j.j_n, 1);
	CHECK_INT(SET(&j, " spaced = \"quoted\" ; HttpOnly"), 1);
	CHECK_STR(jar_get(&j, "spaced"), "quoted");
	CHECK_INT(SET(&j, "empty="), 1);
	CHECK_STR(jar_get(&j, "empty"), "");
	jar_free(&j);
}

static void
jar_deletes(void)
{
	struct jar j;

	jar_init(&j);
	CHECK_INT(SET(&j, "sid=abc"), 1);
	CHECK_INT(SET(&j, "other=1"), 1);
	CHECK_INT(SET(&j, "sid=; Max-Age=0; Path=/"), 1);
	CHECK(jar_get(&j, "sid") == NULL);
	CHECK_STR(jar_get(&j, "other"), "1");
	CHECK_INT(SET(&j, "other=; Expires=Thu, 01 Jan 1970 00:00:00 GMT"), 1);
	CHECK(jar_get(&j, "other") == NULL);
	CHECK_INT(j.j_n, 0);
	CHECK_INT(SET(&j, "gone=x; Max-Age=-5"), 0);	/* deleting what is absent */
	/* A future Expires keeps it; Max-Age wins over Expires. */
	CHECK_INT(SET(&j, "keep=1; Expires=Fri, 01 Jan 2100 00:00:00 GMT"), 1);
	CHECK_INT(SET(&j, "keep=2; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT"), 1);
	CHECK_STR(jar_get(&j, "keep"), "2");
	jar_free(&j);
}

static void
jar_rejects_bad(void)
{
	struct jar j;
	char big[JAR_MAX_VALUE + 16], name[32], small[8];
	int i;

	jar_init(&j);
	CHECK_INT(SET(&j, "novalue"), -1);
	CHECK_INT(SET(&j, "=value"), -1);
	CHECK_INT(SET(&j, "bad name=1"), -1);
	CHECK_INT(SET(&j, "a=b\r\nX-Injected: 1"), -1);	/* no header injection */
	CHECK_INT(SET(&j, "a=has space"), -1);
	CHECK_INT(SET(&j, "a=semi\"quote"), -1);
	memset(big, 'v', sizeof(big));
	memcpy(big, "big=", 4);
	big[sizeof(big) - 1] = '\0';
	CHECK_INT(SET(&j, big), -1);
	CHECK_INT(j.j_n, 0);
	for (i = 0; i < JAR_MAX_COOKIES; i++) {
		snprintf(name, sizeof(name), "c%d=1", i);
		CHECK_INT(SET(&j, name), 1);
	}
	CHECK_INT(SET(&j, "onemore=1"), -1);		/* the jar is bounded */
	CHECK_INT(j.j_n, JAR_MAX_COOKIES);
	CHECK_INT(jar_header(&j, small, sizeof(small)), -1);
	jar_free(&j);
	CHECK_INT(jar_header(&j, small, sizeof(small)), 0);
	CHECK_STR(small, "");
}

/* Set-Cookie reaches the jar through the response parser, also when not NUL-terminated. */
static void
jar_through_resp(void)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nSet-Cookie: sid=s1; HttpOnly\r\n"
	    "set-cookie: LB=app3\r\nX-Served-By: app3\r\nContent-Length: 0\r\n\r\n";
	struct evbuffer *in = evbuffer_new();
	struct jar j;
	struct resp r;

	jar_init(&j);
	resp_reset(&r, &j, NULL);
	evbuffer_add(in, head, sizeof(head) - 1);
	CHECK_INT(resp_feed(&r, in), 1);
	CHECK_INT(r.r_jar_changed, 1);
	CHECK_STR(jar_get(&j, "sid"), "s1");
	CHECK_STR(jar_get(&j, "LB"), "app3");
	CHECK_STR(r.r_served_by, "app3");
	/* A failed answer's cookies are ignored: the user keeps its session (no re-login). */
	static const char fail[] = "HTTP/1.1 401 Unauthorized\r\nSet-Cookie: sid=; Max-Age=0\r\n"
	    "Content-Length: 0\r\n\r\n";
	resp_reset(&r, &j, NULL);
	evbuffer_add(in, fail, sizeof(fail) - 1);
	CHECK_INT(resp_feed(&r, in), 1);
	CHECK_INT(r.r_jar_changed, 0);
	CHECK_STR(jar_get(&j, "sid"), "s1");
	jar_free(&j);
	evbuffer_free(in);
}

UNIT_MAIN(CASE(jar_keeps_all_cookies), CASE(jar_replace_and_unchanged), CASE(jar_deletes),
    CASE(jar_rejects_bad), CASE(jar_through_resp))
