/* loadgen's command line (each parse runs in a child, since bad flags exit 2 with one line on
 * stderr), the URL parser, the credentials file, and the HTTP response parser. */
#include <sys/wait.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "unit.h"
#include "../../loadgen/loadgen.h"

typedef int (*check_fn)(const struct lg_config *);

/* Parses argv in a child. Returns its exit status; the child's stderr goes to err. */
static int
parse_in_child(const char **argv, check_fn check, char *err, size_t errlen)
{
	int fds[2], status, argc = 0;
	pid_t pid;
	ssize_t n;
	size_t off = 0;
	struct lg_config cfg;

	while (argv[argc] != NULL)
		argc++;
	if (pipe(fds) == -1)
		return -1;
	if ((pid = fork()) == 0) {
		close(fds[0]);
		dup2(fds[1], 2);
		if (freopen("/dev/null", "w", stdout) == NULL)
			_exit(99);
		config_parse(&cfg, argc, (char **)argv);
		_exit(check ? check(&cfg) : 0);
	}
	close(fds[1]);
	while (off + 1 < errlen && (n = read(fds[0], err + off, errlen - off - 1)) > 0)
		off += (size_t)n;
	err[off] = '\0';
	close(fds[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define ARGV(...)	((const char *[]){ "loadgen", __VA_ARGS__, NULL })

static void
expect_bad(const char **argv, const char *why)
{
	char err[1024];
	char *nl;

	CHECK_INT(parse_in_child(argv, NULL, err, sizeof(err)), 2);
	if (!CHECK(strstr(err, why) != NULL))
		fprintf(stderr, "    stderr was: %s\n", err);
	nl = strchr(err, '\n');
	CHECK(nl != NULL && nl[1] == '\0');	/* exactly one line */
}

static int
check_defaults(const struct lg_config *c)
{
	return !(c->flow == FLOW_JWT && c->users == 10 && c->concurrency == 10 &&
	    c->threads == 1 && c->duration == 10 && c->requests == 0 && c->rate == 0 &&
	    c->timeout == 5 && c->max_error_rate < 0 && c->max_p99_ms < 0 &&
	    strcmp(c->path, "/profile") == 0 && c->url.u_port == 8443 && c->url.u_tls);
}

static int
check_full(const struct lg_config *c)
{
	return !(c->flow == FLOW_SESSION && c->users == 4 && c->concurrency == 8 &&
	    c->threads == 2 && c->requests == 500 && c->duration == 600 && c->rate == 250.5 &&
	    c->timeout == 0.5 && c->max_error_rate == 0.25 && c->max_p99_ms == 12 &&
	    strcmp(c->json, "out.json") == 0 && strcmp(c->url.u_base, "/api") == 0);
}

static int
check_users_sets_conc(const struct lg_config *c)
{
	/* --users alone: one connection each; more threads than users is pointless. */
	return !(c->users == 3 && c->concurrency == 3 && c->threads == 3);
}

static void
args_good(void)
{
	char err[1024];

	CHECK_INT(parse_in_child(ARGV("--url", "https://127.0.0.1:8443", "--flow", "jwt",
	    "--credentials", "c.txt"), check_defaults, err, sizeof(err)), 0);
	CHECK_INT(parse_in_child(ARGV("--url", "http://localhost:80/api/", "--flow", "session",
	    "--credentials", "c", "--users", "4", "--concurrency", "8", "--threads", "2",
	    "--requests", "500", "--rate", "250.5", "--timeout", "0.5", "--json", "out.json",
	    "--max-error-rate", "0.25", "--max-p99-ms", "12"), check_full, err, sizeof(err)), 0);
	CHECK_INT(parse_in_child(ARGV("--url", "http://[::1]:9", "--flow", "none", "--users", "3",
	    "--threads", "8"), check_users_sets_conc, err, sizeof(err)), 0);
	CHECK_INT(parse_in_child(ARGV("--help"), NULL, err, sizeof(err)), 0);
}

static void
args_bad(void)
{
	expect_bad(ARGV("--flow", "jwt", "--credentials", "c"), "--url is required");
	expect_bad(ARGV("--url", "ftp://x:1", "--flow", "jwt", "--credentials", "c"), "--url");
	expect_bad(ARGV("--url", "http://127.0.0.1:1", "--flow", "oauth", "--credentials", "c"),
	    "--flow");
	expect_bad(ARGV("--url", "http://127.0.0.1:1", "--flow", "jwt"), "--credentials");
	expect_bad(ARGV("--url", "http://127.0.0.1:1", "--flow", "none", "--users", "0"),
	    "--users");
	expect_bad(ARGV("--url", "http://127.0.0.1:1", "--flow", "none", "--concurrency", "x"),
	    "--concurrency");
	expect_bad(ARGV("--url", "http://127.0.0.1:1", "--flow", "none", "--users", "5",
	    "--concurrency", "2"), "at least as many connections");
	expect_bad(ARGV("--url", "http://127.0.0.1:1", "--flow", "none", "--duration", "-1"),
	    "--duration");
	expect_bad(ARGV("--url", "http://127.0.0.1:1", "--flow", "none", "--rate", "nan"),
	    "--rate");
	expect_bad(ARGV("--url", "http://127.0.0.1:1", "--flow", "none", "--max-error-rate",
	    "1.5"), "--max-error-rate");
	expect_bad(ARGV("--url", "http://127.0.0.1:1", "--flow", "none", "--cacert", "ca.pem"),
	    "https");
	expect_bad(ARGV("--url", "http://127.0.0.1:1", "--flow", "none", "--path", "profile"),
	    "--path");
	expect_bad(ARGV("--url", "http://127.0.0.1:1", "--flow", "none", "--bogus"),
	    "unknown option");
	expect_bad(ARGV("--url", "http://127.0.0.1:1", "--flow", "none", "extra"),
	    "unexpected argument");
	expect_bad(ARGV("--url"), "needs a value");
}

static void
args_url(void)
{
	struct lg_url u;

	CHECK_INT(config_url("http://127.0.0.1:8080", &u), 0);
	CHECK_STR(u.u_host, "127.0.0.1");
	CHECK_INT(u.u_port, 8080);
	CHECK_INT(u.u_tls, 0);
	CHECK_STR(u.u_base, "");
	CHECK_STR(u.u_authority, "127.0.0.1:8080");
	CHECK_INT(config_url("HTTPS://localhost/x/y/", &u), 0);
	CHECK_INT(u.u_port, 443);
	CHECK_INT(u.u_tls, 1);
	CHECK_STR(u.u_base, "/x/y");
	CHECK_INT(config_url("https://[::1]:8443/", &u), 0);
	CHECK_STR(u.u_host, "::1");
	CHECK_STR(u.u_authority, "[::1]:8443");
	CHECK_INT(config_url("http://[::1]", &u), 0);
	CHECK_INT(u.u_port, 80);
	CHECK_INT(config_url("127.0.0.1:80", &u), -1);
	CHECK_INT(config_url("http://", &u), -1);
	CHECK_INT(config_url("http://host:99999", &u), -1);
	CHECK_INT(config_url("http://host:0", &u), -1);
	CHECK_INT(config_url("http://user@host:80", &u), -1);
	CHECK_INT(config_url("http://::1:80", &u), -1);
	CHECK_INT(config_url("http://h:80/a b", &u), -1);
	CHECK_INT(config_url("http://h:80/a?q=1", &u), -1);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
}

static void
args_credentials(void)
{
	char path[] = "/tmp/test_loadgen_credsXXXXXX", why[256], longline[2100];
	struct lg_cred *c;
	long n;
	int fd = mkstemp(path);

	close(fd);
	write_file(path, "# demo users\nalice:alice-password\n\nbob:pass:with:colons\r\n");
	n = config_creds_load(path, &c, why, sizeof(why));
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_STR(c[0].cr_user, "alice");
		CHECK_STR(c[0].cr_pass, "alice-password");
		CHECK_STR(c[1].cr_user, "bob");
		CHECK_STR(c[1].cr_pass, "pass:with:colons");
		config_creds_free(c, n);
	}
	write_file(path, "alice\n");
	CHECK_INT(config_creds_load(path, &c, why, sizeof(why)), -1);
	CHECK(strstr(why, ":1: want username:password") != NULL);
	write_file(path, ":nouser\n");
	CHECK_INT(config_creds_load(path, &c, why, sizeof(why)), -1);
	write_file(path, "# only comments\n\n");
	CHECK_INT(config_creds_load(path, &c, why, sizeof(why)), -1);
	CHECK(strstr(why, "no username:password") != NULL);
	memset(longline, 'a', sizeof(longline) - 2);
	longline[5] = ':';
	longline[sizeof(longline) - 2] = '\n';
	longline[sizeof(longline) - 1] = '\0';
	write_file(path, longline);
	CHECK_INT(config_creds_load(path, &c, why, sizeof(why)), -1);
	CHECK(strstr(why, "too long") != NULL);
	unlink(path);
	CHECK_INT(config_creds_load(path, &c, why, sizeof(why)), -1);
	CHECK(strstr(why, "No such file") != NULL);
}

/* Feeds text to a fresh parser split into pieces of step bytes; returns the last result. */
static int
feed(const char *text, size_t len, size_t step, struct resp *r, struct evbuffer *body)
{
	struct evbuffer *in = evbuffer_new();
	size_t off = 0, n;
	int rc = 0;

	resp_reset(r, NULL, body);
	while (off < len && rc == 0) {
		n = len - off < step ? len - off : step;
		evbuffer_add(in, text + off, n);
		off += n;
		rc = resp_feed(r, in);
	}
	if (rc == 1 && evbuffer_get_length(in) != 0)
		rc = 2;		/* left bytes behind */
	evbuffer_free(in);
	return rc;
}

static void
resp_framing(void)
{
	static const char cl[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Served-By: app1\r\n\r\nhello";
	static const char ch[] = "HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: close\r\n\r\n3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n";
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 204 No Content\r\n\r\n";
	struct evbuffer *body = evbuffer_new();
	struct resp r;
	size_t step;

	for (step = 1; step <= sizeof(ch); step++) {
		evbuffer_drain(body, evbuffer_get_length(body));
		CHECK_INT(feed(cl, sizeof(cl) - 1, step, &r, body), 1);
		CHECK_INT(r.r_status, 200);
		CHECK_INT(r.r_close, 0);
		CHECK_STR(r.r_served_by, "app1");
		CHECK_INT(evbuffer_get_length(body), 5);
		evbuffer_drain(body, evbuffer_get_length(body));
		CHECK_INT(feed(ch, sizeof(ch) - 1, step, &r, body), 1);
		CHECK_INT(r.r_status, 401);
		CHECK_INT(r.r_close, 1);
		CHECK_INT(evbuffer_get_length(body), 19);
		CHECK(memcmp(evbuffer_pullup(body, -1), "abc0123456789abcdef", 19) == 0);
		CHECK_INT(feed(cont, sizeof(cont) - 1, step, &r, NULL), 1);
		CHECK_INT(r.r_status, 204);
		CHECK_INT(r.r_close, 1);	/* HTTP/1.0 */
	}
	/* No length: the body runs to EOF. */
	CHECK_INT(feed("HTTP/1.1 200 OK\r\n\r\nabc", 22, 4, &r, NULL), 0);
	CHECK_INT(r.r_state, RESP_BODY_EOF);
	CHECK_INT(resp_eof(&r), 1);
	CHECK_INT(feed("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", 41, 4, &r, NULL), 0);
	CHECK_INT(resp_eof(&r), -1);	/* truncated */
	evbuffer_free(body);
}

static void
resp_bad(void)
{
	static const char *bad[] = {
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 700 Weird\r\n\r\n",
		"garbage\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 0\n\n\r\n\r\n",
		"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
	};
	struct resp r;
	char *huge;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!CHECK(feed(bad[i], strlen(bad[i]), 7, &r, NULL) == -1))
			fprintf(stderr, "    accepted: %s\n", bad[i]);
	/* A head that never ends is cut at the limit, not buffered forever. */
	huge = malloc(RESP_MAX_HEAD + 100);
	memcpy(huge, "HTTP/1.1 200 OK\r\nX: ", 20);
	memset(huge + 20, 'a', RESP_MAX_HEAD + 80);
	CHECK_INT(feed(huge, RESP_MAX_HEAD + 100, 4096, &r, NULL), -1);
	free(huge);
	/* A kept body is bounded too. */
	huge = malloc(RESP_MAX_BODY + 200);
	i = (size_t)snprintf(huge, 100, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
	    RESP_MAX_BODY + 1);
	memset(huge + i, 'b', RESP_MAX_BODY + 1);
	{
		struct evbuffer *body = evbuffer_new();
		CHECK_INT(feed(huge, i + RESP_MAX_BODY + 1, 8192, &r, body), -1);
		evbuffer_free(body);
	}
	free(huge);
}

UNIT_MAIN(CASE(args_good), CASE(args_bad), CASE(args_url), CASE(args_credentials),
    CASE(resp_framing), CASE(resp_bad))
