/*
 * Unit tests for balancer/route.c: the Path rewriting of a routed pool's Set-Cookie values
 * (table cases, hostile bytes, cut-short output buffers, and a generated sweep checking that no
 * input lets a cookie escape its route's prefix), prefix matching, and --route specs that must
 * be refused.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "../../balancer/lb.h"

/* main.c is not linked into unit tests; backend.c refers to the configuration. */
struct lb_config lb_conf;

static void
routes_reset(void)
{
	memset(lb_routes, 0, sizeof(lb_routes));
	memset(lb_backends, 0, sizeof(lb_backends));
	lb_nroutes = 1;
	lb_nbackends = 0;
}

static struct route *
route_with(const char *prefix)
{
	static struct route rt;

	memset(&rt, 0, sizeof(rt));
	rt.rt_prefixlen = strlen(prefix);
	memcpy(rt.rt_prefix, prefix, rt.rt_prefixlen);
	return &rt;
}

/* The rewrite of v[0..len) under prefix, NUL-terminated in a static buffer. */
static const char *
rewrite(const char *prefix, const char *v, size_t len)
{
	static char out[1024];
	size_t n;

	n = route_cookie_path(route_with(prefix), v, len, out, sizeof(out) - 1);
	if (!CHECK(n < sizeof(out) - 1))
		return "";
	out[n] = '\0';
	return out;
}

#define REWRITES(in, want)	CHECK_STR(rewrite("/app/", (in), strlen(in)), (want))

static void
cookie_path_rewritten(void)
{
	REWRITES("sid=abc; Path=/; HttpOnly; SameSite=Lax",
	    "sid=abc; Path=/app/; HttpOnly; SameSite=Lax");
	REWRITES("sid=abc; Path=/sub/dir", "sid=abc; Path=/app/sub/dir");
	REWRITES("a=b;Path=/x", "a=b;Path=/app/x");
	REWRITES("a=b; pAtH=/x", "a=b; pAtH=/app/x");
	REWRITES("a=b; Path = \t/x ;Secure", "a=b; Path = \t/app/x ;Secure");
	REWRITES("a=b;\tPath=/", "a=b;\tPath=/app/");
	/* Every valid Path is rewritten, not only the last. */
	REWRITES("t=1; Path=/a; Path=/b", "t=1; Path=/app/a; Path=/app/b");
	/* The prefix of another route never matters: the value is only prepended to. */
	CHECK_STR(rewrite("/a/b/", "x=1; Path=/a/", 13), "x=1; Path=/a/b/a/");
}

static void
cookie_path_added(void)
{
	/* No Path, or one a browser replaces by the default path: the prefix is appended. */
	REWRITES("sid=abc", "sid=abc; Path=/app/");
	REWRITES("sid=abc; HttpOnly", "sid=abc; HttpOnly; Path=/app/");
	REWRITES("t=1; Path=", "t=1; Path=; Path=/app/");
	REWRITES("t=1; Path", "t=1; Path; Path=/app/");
	REWRITES("t=1; Path  ", "t=1; Path  ; Path=/app/");
	REWRITES("t=1; Path=relative", "t=1; Path=relative; Path=/app/");
	REWRITES("t=1; Path=\"/quoted\"", "t=1; Path=\"/quoted\"; Path=/app/");
	/* The last Path counts (RFC 6265 5.3): an invalid last one means the default path. */
	REWRITES("t=1; Path=/; Path=x", "t=1; Path=/app/; Path=x; Path=/app/");
}

static void
cookie_path_only_the_attribute(void)
{
	/* The name-value pair is not an attribute, whatever it is called. */
	REWRITES("Path=/x", "Path=/x; Path=/app/");
	REWRITES("path=/; Pathological=/x", "path=/; Pathological=/x; Path=/app/");
	REWRITES("a=b; Domain=Path=/x", "a=b; Domain=Path=/x; Path=/app/");
	REWRITES("a=b; Pat=/x; Paths=/y", "a=b; Pat=/x; Paths=/y; Path=/app/");
	/* A name is all before '=', trimmed of blanks only: these are not Path attributes, and
	 * do not undo a valid Path before them. */
	REWRITES("t=1; Path=/a; Path x=/b", "t=1; Path=/app/a; Path x=/b");
	REWRITES("t=1; Path=/a; Path x", "t=1; Path=/app/a; Path x");
	REWRITES("t=1; Path\v=/a", "t=1; Path\v=/a; Path=/app/");
}

static void
cookie_path_hostile(void)
{
	static const char nul[] = "a=\0b; Path=/x\0y";
	const char *r;

	REWRITES("", "; Path=/app/");
	REWRITES(";", ";; Path=/app/");
	REWRITES(";;;;", ";;;;; Path=/app/");
	REWRITES("; Path=/", "; Path=/app/");
	/* Tricks with the value stay below the prefix: the browser matches the Path as bytes,
	 * and no request path it sends starts with /app/ unless it is meant for /app/. */
	REWRITES("a=b; Path=//evil.example/", "a=b; Path=/app//evil.example/");
	REWRITES("a=b; Path=/../other/", "a=b; Path=/app/../other/");
	REWRITES("a=b; Path=/%2e%2e/", "a=b; Path=/app/%2e%2e/");
	/* Bytes are bytes: a NUL neither ends the value nor hides an attribute. */
	r = rewrite("/app/", nul, sizeof(nul) - 1);
	CHECK_MEM(r, "a=\0b; Path=/app/x\0y", sizeof("a=\0b; Path=/app/x\0y"));
}

/* Every size of output buffer: the full length is returned, nothing is written past size, and
 * what is written is the start of the full result. */
static void
cookie_path_cut_short(void)
{
	static const char *ins[] = { "sid=abc; Path=/x; HttpOnly", "sid=abc", "a=1; Path=q" };
	const char *prefix = "/a-64-byte-prefix-is-the-longest-a-route-may-have-0123456789abc/";
	char full[512], out[512 + 16];
	size_t i, k, size, n, want;

	CHECK_INT(strlen(prefix), LB_PREFIX_MAX);
	for (i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
		want = route_cookie_path(route_with(prefix), ins[i], strlen(ins[i]), full,
		    sizeof(full));
		CHECK(want < sizeof(full));
		for (size = 0; size <= want + 1; size++) {
			memset(out, '#', sizeof(out));
			n = route_cookie_path(route_with(prefix), ins[i], strlen(ins[i]), out, size);
			CHECK_INT(n, want);
			CHECK(memcmp(out, full, size < want ? size : want) == 0);
			for (k = size; k < sizeof(out); k++)
				if (!CHECK(out[k] == '#'))
					break;
		}
	}
	/* size 0 with no buffer at all: only counts. */
	CHECK_INT(route_cookie_path(route_with("/app/"), "a=b", 3, NULL, 0), 3 + 7 + 5);
}

/*
 * The cookie path a browser derives from a Set-Cookie value, per RFC 6265 5.2 and 5.3: the
 * value of the last attribute named Path (trimmed, any case), or "" when the value does not
 * start with '/' or there is no Path, the default path. Written apart from route.c on purpose.
 */
static void
browser_path(const char *v, size_t len, char *path, size_t size)
{
	const char *p = memchr(v, ';', len), *end = v + len, *e, *eq, *a, *b;

	path[0] = '\0';
	while (p != NULL && p < end) {
		p++;
		if ((e = memchr(p, ';', (size_t)(end - p))) == NULL)
			e = end;
		eq = memchr(p, '=', (size_t)(e - p));
		for (a = p, b = eq ? eq : e; a < b && (*a == ' ' || *a == '\t'); a++)
			;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (b - a == 4 && strncasecmp(a, "path", 4) == 0) {
			path[0] = '\0';
			if (eq != NULL) {
				for (a = eq + 1; a < e && (*a == ' ' || *a == '\t'); a++)
					;
				for (b = e; b > a && (b[-1] == ' ' || b[-1] == '\t'); b--)
					;
				if (a < b && *a == '/' && (size_t)(b - a) < size) {
					memcpy(path, a, (size_t)(b - a));
					path[b - a] = '\0';
				}
			}
		}
		p = e;
	}
}

/* Thousands of generated values built from the bytes that matter: whatever comes in, the path
 * the browser ends up with lies below the prefix, and the returned length is what was written. */
static void
cookie_path_never_escapes(void)
{
	static const char alphabet[] = ";;; \t==//pathPATHx\"\v";
	char v[48], out[256], path[256];
	uint32_t seed = 2463534242u;
	size_t len, n, i;
	int iter, bad = 0;

	for (iter = 0; iter < 50000 && bad < 5; iter++) {
		seed ^= seed << 13;
		seed ^= seed >> 17;
		seed ^= seed << 5;
		len = seed % sizeof(v);
		for (i = 0; i < len; i++) {
			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			v[i] = alphabet[seed % (sizeof(alphabet) - 1)];
		}
		n = route_cookie_path(route_with("/app/"), v, len, out, sizeof(out));
		if (!CHECK(n < sizeof(out))) {
			bad++;
			continue;
		}
		/* What the backend sent comes first, untouched up to its first attribute. */
		for (i = 0; i < len && v[i] != ';'; i++)
			;
		if (!CHECK(memcmp(out, v, i) == 0))
			bad++;
		browser_path(out, n, path, sizeof(path));
		if (!CHECK(strncmp(path, "/app/", 5) == 0)) {
			fprintf(stderr, "    in \"%.*s\" out \"%.*s\" path \"%s\"\n", (int)len, v,
			    (int)n, out, path);
			bad++;
		}
	}
}

static void
match_longest_prefix(void)
{
	routes_reset();
	route_add("/a/=127.0.0.1:1");
	route_add("/a/b/=sticky:127.0.0.1:2");
	/* Added longer first: order must not matter. */
	route_add("/z/y/=127.0.0.1:3");
	route_add("/z/=127.0.0.1:4,127.0.0.1:5");
	CHECK_INT(lb_nroutes, 5);
	CHECK(lb_routes[2].rt_sticky && !lb_routes[1].rt_sticky);
	CHECK_INT(lb_routes[4].rt_nbe, 2);
	CHECK_INT(lb_backends[lb_routes[4].rt_be[1]].be_route, 4);

	CHECK_INT(route_match("/a/", 3), 1);
	CHECK_INT(route_match("/a/x", 4), 1);
	CHECK_INT(route_match("/a/b/x?q=/a/b/", 14), 2);
	CHECK_INT(route_match("/a/b/", 5), 2);
	CHECK_INT(route_match("/a/b", 4), 1);
	CHECK_INT(route_match("/a/bc/", 6), 1);
	CHECK_INT(route_match("/z/y/1", 6), 3);
	CHECK_INT(route_match("/z/x", 4), 4);
	/* Only len bytes count, even when more follow. */
	CHECK_INT(route_match("/a/b/x", 3), 1);
	CHECK_INT(route_match("/a/b/x", 2), 0);
}

static void
match_is_exact_bytes(void)
{
	routes_reset();
	route_add("/app/=127.0.0.1:1");
	/* No prefix of a prefix, no other case, no decoding, no normalising: such paths go to
	 * the default pool, which never sees /app/'s cookies (their Path is /app/...). */
	CHECK_INT(route_match("/app", 4), 0);
	CHECK_INT(route_match("/APP/x", 6), 0);
	CHECK_INT(route_match("/%61pp/x", 8), 0);
	CHECK_INT(route_match("//app/x", 7), 0);
	CHECK_INT(route_match("/x/../app/", 10), 0);
	CHECK_INT(route_match("*", 1), 0);
	CHECK_INT(route_match("", 0), 0);
	CHECK_INT(route_match("/app\0/", 6), 0);
	/* What follows the prefix is the backend's business. */
	CHECK_INT(route_match("/app/../admin", 13), 1);
	/* Without routes everything is the default pool. */
	routes_reset();
	CHECK_INT(route_match("/app/x", 6), 0);
}

/* Whether route_add(spec) exits with status 2 (a child process takes the exit). */
static int
refused(const char *spec, int before)
{
	pid_t pid;
	int status, i;

	fflush(NULL);
	if ((pid = fork()) == -1)
		return 0;
	if (pid == 0) {
		if (freopen("/dev/null", "w", stderr) == NULL)
			_exit(3);
		for (i = 0; i < before; i++) {
			char ok[32];

			snprintf(ok, sizeof(ok), "/r%d/=127.0.0.1:%d", i, i + 1);
			route_add(ok);
		}
		route_add(spec);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return 0;
	return WIFEXITED(status) && WEXITSTATUS(status) == 2;
}

static void
bad_specs_refused(void)
{
	static const char *bad[] = {
		"/app/", "=127.0.0.1:1", "app/=127.0.0.1:1", "/app=127.0.0.1:1",
		"/=127.0.0.1:1", "//=127.0.0.1:1", "/a//b/=127.0.0.1:1", "/./=127.0.0.1:1",
		"/a/../=127.0.0.1:1", "/a/./b/=127.0.0.1:1", "/../=127.0.0.1:1",
		"/a b/=127.0.0.1:1", "/a\r\nSet-Cookie: x/=127.0.0.1:1", "/a\"/=127.0.0.1:1",
		"/a;/=127.0.0.1:1", "/a%2f/=127.0.0.1:1", "/\xc3\xa9/=127.0.0.1:1",
		"/a?b/=127.0.0.1:1", "/a/=", "/a/=sticky:", "/a/=,", "/a/=127.0.0.1",
		"/a/=127.0.0.1:99999", "/a/=sticky:sticky:127.0.0.1:1",
		"/a-65-byte-prefix-is-one-longer-than-a-route-may-have-0123456789ab/=127.0.0.1:1",
	};
	size_t i;

	routes_reset();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!CHECK(refused(bad[i], 0)))
			fprintf(stderr, "    accepted \"%s\"\n", bad[i]);
	/* The same prefix twice, and a 17th route. */
	CHECK(refused("/r0/=127.0.0.1:9", 1));
	CHECK(refused("/r16/=127.0.0.1:9", LB_MAX_ROUTES - 1));
	CHECK(!refused("/r15/=127.0.0.1:9", LB_MAX_ROUTES - 2));
	/* The longest allowed, and the odd but plain characters, are fine. */
	CHECK(!refused("/a-64-byte-prefix-is-the-longest-a-route-may-have-0123456789abc/="
	    "127.0.0.1:1", 0));
	CHECK(!refused("/a.b~c_d-e/.../=127.0.0.1:1", 0));
}

UNIT_MAIN(CASE(cookie_path_rewritten), CASE(cookie_path_added),
    CASE(cookie_path_only_the_attribute), CASE(cookie_path_hostile), CASE(cookie_path_cut_short),
    CASE(cookie_path_never_escapes), CASE(match_longest_prefix), CASE(match_is_exact_bytes),
    CASE(bad_specs_refused))
