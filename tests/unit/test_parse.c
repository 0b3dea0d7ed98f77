/* Unit tests for common/parse.c: good heads, and every framing trick that could make the
 * balancer and a backend disagree about where a request ends. */
#include <string.h>

#include "unit.h"
#include "parse.h"

#define REQ_MAX		8192	/* the balancer's limits */
#define RESP_MAX	16384

static struct parse_head h;

static int
req(const char *s)
{
	return parse_request(s, strlen(s), REQ_MAX, &h);
}

static int
resp(const char *s, int head)
{
	return parse_response(s, strlen(s), RESP_MAX, head, &h);
}

/* Feeds a whole chunked body in pieces of n bytes; returns the result and the payload. */
static int
chunked(const char *body, size_t piece, char *out, size_t *outlen, size_t *consumed)
{
	struct parse_chunk c;
	size_t len = strlen(body), off = 0, used, n;
	int r = PARSE_MORE, isdata;

	memset(&c, 0, sizeof(c));
	*outlen = 0;
	while (off < len && r == PARSE_MORE) {
		n = len - off < piece ? len - off : piece;
		r = parse_chunk_step(&c, body + off, n, &used, &isdata);
		if (r == PARSE_ERROR)
			break;
		if (isdata) {
			memcpy(out + *outlen, body + off, used);
			*outlen += used;
		}
		off += used;
	}
	*consumed = off;
	return r;
}

static void
good_get(void)
{
	CHECK_INT(req("GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-Thing:  v v \r\n\r\nNEXT"), PARSE_OK);
	CHECK_INT(h.methodlen, 3);
	CHECK_INT(h.targetlen, 6);
	CHECK_INT(h.minor, 1);
	CHECK_INT(h.nhdrs, 2);
	CHECK_INT(h.hdrs[1].valuelen, 3);	/* surrounding whitespace trimmed */
	CHECK(memcmp(h.hdrs[1].value, "v v", 3) == 0);
	CHECK_INT(h.headlen, strlen("GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-Thing:  v v \r\n\r\n"));
	CHECK_INT(h.framing, FRAME_NONE);
	CHECK_INT(h.hdrs[0].kind, HDR_HOST);
}

static void
good_post_length(void)
{
	CHECK_INT(req("POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 42\r\n\r\n"), PARSE_OK);
	CHECK_INT(h.framing, FRAME_LENGTH);
	CHECK_INT(h.length, 42);
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"), PARSE_OK);
	CHECK_INT(h.framing, FRAME_NONE);
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: Chunked\r\n\r\n"), PARSE_OK);
	CHECK_INT(h.framing, FRAME_CHUNKED);
}

static void
incomplete_is_more(void)
{
	CHECK_INT(req(""), PARSE_MORE);
	CHECK_INT(req("GET / HT"), PARSE_MORE);
	CHECK_INT(req("GET / HTTP/1.1\r\nHost: x\r\n"), PARSE_MORE);
	CHECK_INT(req("GET / HTTP/1.1\r\nHost: x\r\n\r"), PARSE_MORE);
	/* Leading empty lines are skipped (RFC 9112 2.2). */
	CHECK_INT(req("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), PARSE_OK);
}

static void
connection_and_version(void)
{
	CHECK_INT(req("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), PARSE_OK);
	CHECK(h.conn_close);
	CHECK_INT(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), PARSE_OK);
	CHECK(h.conn_keepalive);
	CHECK_INT(h.minor, 0);
	/* Fields named by Connection are hop-by-hop too. */
	CHECK_INT(req("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nConnection: x-a, close\r\n\r\n"),
	    PARSE_OK);
	CHECK_INT(h.hdrs[1].kind, HDR_HOP);
	CHECK_INT(req("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(h.err_status, 505);
	CHECK_INT(req("GET / HTTP/1.1x\r\nHost: x\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(h.err_status, 400);
	CHECK_INT(req("GET / http/1.1\r\nHost: x\r\n\r\n"), PARSE_ERROR);
}

static void
smuggling_cl_te(void)
{
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(h.err_status, 400);
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Length: 5\r\n\r\n"), PARSE_ERROR);
}

static void
smuggling_duplicate_cl(void)
{
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
	    "Content-Length: 6\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
	    "Content-Length: 5\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1234567890123456789\r\n\r\n"),
	    PARSE_ERROR);
	CHECK_STR(h.err, "invalid Content-Length");
}

static void
smuggling_te_variants(void)
{
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n"),
	    PARSE_ERROR);
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
	    PARSE_ERROR);
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"),
	    PARSE_ERROR);
	/* "Transfer-Encoding : chunked" must not be read as some other field. */
	CHECK_INT(req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n"),
	    PARSE_ERROR);
	CHECK_INT(req("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), PARSE_ERROR);
}

static void
line_endings_and_bytes(void)
{
	CHECK_INT(req("GET / HTTP/1.1\nHost: x\n\n"), PARSE_ERROR);
	CHECK_STR(h.err, "line ends with a bare LF");
	CHECK_INT(req("GET / HTTP/1.1\r\nHost: x\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(parse_request("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", 36,
	    REQ_MAX, &h), PARSE_ERROR);
	CHECK_STR(h.err, "control character in a header value");
	CHECK_INT(req("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"), PARSE_ERROR);
	CHECK_STR(h.err, "obsolete line folding");
	CHECK_INT(req("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("GET http://evil/ HTTP/1.1\r\nHost: x\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("\x16\x03\x01\x02\x00\x01"), PARSE_ERROR);	/* TLS on the plain port */
	CHECK_INT(req("GET / HTTP/1.1\r\n: novalue\r\nHost: x\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(h.err_status, 405);
	CHECK_INT(req("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), PARSE_OK);
}

static void
host_rules(void)
{
	CHECK_INT(req("GET / HTTP/1.1\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("GET / HTTP/1.0\r\n\r\n"), PARSE_OK);
}

static void
limits(void)
{
	static char big[REQ_MAX + 64];
	size_t n, i;

	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(big + n, 'a', sizeof(big) - n - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_INT(req(big), PARSE_ERROR);
	CHECK_INT(h.err_status, 431);
	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: x\r\n");
	for (i = 0; i < PARSE_MAX_HEADERS; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X-%zu: v\r\n", i);
	snprintf(big + n, sizeof(big) - n, "\r\n");
	CHECK_INT(req(big), PARSE_ERROR);
	CHECK_INT(h.err_status, 431);
	CHECK_STR(h.err, "too many header fields");
	/* A long request line alone also ends in 431, not in waiting forever. */
	memset(big, 'a', sizeof(big) - 1);
	memcpy(big, "GET /", 5);
	CHECK_INT(req(big), PARSE_ERROR);
	CHECK_INT(h.err_status, 431);
}

static void
responses(void)
{
	CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 0), PARSE_OK);
	CHECK_INT(h.status, 200);
	CHECK_INT(h.framing, FRAME_LENGTH);
	CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", 1), PARSE_OK);
	CHECK_INT(h.framing, FRAME_NONE);	/* answer to HEAD */
	CHECK_INT(resp("HTTP/1.1 204 No Content\r\n\r\n", 0), PARSE_OK);
	CHECK_INT(h.framing, FRAME_NONE);
	CHECK_INT(resp("HTTP/1.1 200 OK\r\n\r\n", 0), PARSE_OK);
	CHECK_INT(h.framing, FRAME_CLOSE);
	CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0), PARSE_OK);
	CHECK_INT(h.framing, FRAME_NONE);
	CHECK_INT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0), PARSE_OK);
	CHECK_INT(h.framing, FRAME_CHUNKED);
	CHECK_INT(resp("HTTP/1.1 100 Continue\r\n\r\n", 0), PARSE_OK);
	CHECK_INT(h.status, 100);
	CHECK_INT(resp("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", 0), PARSE_OK);
	CHECK_INT(resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0),
	    PARSE_ERROR);
	CHECK_INT(h.err_status, 502);
	CHECK_INT(resp("HTTP/1.1 20 OK\r\n\r\n", 0), PARSE_ERROR);
	CHECK_INT(resp("SSH-2.0-OpenSSH\r\n\r\n", 0), PARSE_ERROR);
	CHECK_INT(resp("HTTP/1.1 200 OK\r\n", 0), PARSE_MORE);
}

static void
chunked_good(void)
{
	const char *body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
	char out[64];
	size_t outlen, consumed, piece;

	for (piece = 1; piece <= 64; piece *= 2) {
		CHECK_INT(chunked(body, piece, out, &outlen, &consumed), PARSE_OK);
		CHECK_INT(outlen, 11);
		CHECK(memcmp(out, "hello world", 11) == 0);
		CHECK_INT(consumed, strlen(body) - 4);	/* stops before the next message */
	}
	CHECK_INT(chunked("A\r\n0123456789\r\n0\r\n\r\n", 7, out, &outlen, &consumed), PARSE_OK);
	CHECK_INT(outlen, 10);
}

static void
chunked_bad(void)
{
	char out[256];
	size_t outlen, consumed;

	CHECK_INT(chunked("5\r\nhelloX\r\n0\r\n\r\n", 4, out, &outlen, &consumed), PARSE_ERROR);
	CHECK_INT(chunked("5\nhello\r\n0\r\n\r\n", 4, out, &outlen, &consumed), PARSE_ERROR);
	CHECK_INT(chunked("-5\r\nhello\r\n0\r\n\r\n", 4, out, &outlen, &consumed), PARSE_ERROR);
	CHECK_INT(chunked("0x5\r\nhello\r\n0\r\n\r\n", 4, out, &outlen, &consumed), PARSE_ERROR);
	CHECK_INT(chunked(" 5\r\nhello\r\n0\r\n\r\n", 4, out, &outlen, &consumed), PARSE_ERROR);
	CHECK_INT(chunked("\r\nhello\r\n0\r\n\r\n", 4, out, &outlen, &consumed), PARSE_ERROR);
	/* Sizes that overflow 64 bits are the classic way to desynchronise parsers. */
	CHECK_INT(chunked("10000000000000005\r\nhello\r\n", 4, out, &outlen, &consumed),
	    PARSE_ERROR);
	CHECK_INT(chunked("0\r\nX: a\nb\r\n\r\n", 4, out, &outlen, &consumed), PARSE_ERROR);
	CHECK_INT(chunked("5;\x01\r\nhello\r\n0\r\n\r\n", 4, out, &outlen, &consumed),
	    PARSE_ERROR);
}

static void
chunked_total(void)
{
	struct parse_chunk c;
	size_t used;
	int isdata;

	memset(&c, 0, sizeof(c));
	CHECK_INT(parse_chunk_step(&c, "fffff\r\n", 7, &used, &isdata), PARSE_MORE);
	CHECK_INT(c.pc_total, 0xfffff);	/* known before the data arrives: early 413 */
}

static void
reqid_and_cookie(void)
{
	const char *v;
	size_t n;

	CHECK(parse_reqid_ok("abc-DEF_1.2", 11));
	CHECK(!parse_reqid_ok("", 0));
	CHECK(!parse_reqid_ok("a b", 3));
	CHECK(!parse_reqid_ok("a\"b", 3));
	CHECK(!parse_reqid_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 65));
	v = parse_cookie("sid=1; lb=abcd; x=2", 19, "lb", &n);
	CHECK(v != NULL && n == 4 && memcmp(v, "abcd", 4) == 0);
	CHECK(parse_cookie("xlb=abcd", 8, "lb", &n) == NULL);
	CHECK(parse_cookie("sid=lb=1", 8, "lb", &n) == NULL);
}

/* Checks that every proper prefix of head asks for more and the whole head parses. */
static void
check_prefixes(const char *head, int response)
{
	size_t n = strlen(head), i;
	int r;

	for (i = 0; i < n; i++) {
		r = response ? parse_response(head, i, RESP_MAX, 0, &h) :
		    parse_request(head, i, REQ_MAX, &h);
		if (r != PARSE_MORE) {
			fprintf(stderr, "    prefix of %zu bytes: %d (%s)\n", i, r,
			    h.err != NULL ? h.err : "");
			CHECK(r == PARSE_MORE);
			return;
		}
	}
	r = response ? parse_response(head, n, RESP_MAX, 0, &h) :
	    parse_request(head, n, REQ_MAX, &h);
	CHECK_INT(r, PARSE_OK);
	CHECK_INT(h.headlen, n);
}

/*
 * Regression for a bug the fuzzer found: a request line that had not fully arrived yet ("GET
 * /profile HTT", as a slow client or a split TCP segment delivers it) was answered 400, because
 * the early check for junk allowed only token characters and spaces. Every prefix of a good head
 * must be PARSE_MORE; only the complete head may be PARSE_OK. The input the fuzzer saved, cut
 * where it cut it (16 bytes).
 */
static void
request_line_in_pieces(void)
{
	const char *head = "GET /profile HTTP/1.1\r\nHost: a\r\n"
	    "Cookie: sid=abc; lb=0123456789abcdef\r\n\r\n";

	CHECK_INT(parse_request(head, 16, REQ_MAX, &h), PARSE_MORE);
	check_prefixes(head, 0);
}

/* Targets with every kind of character origin-form allows. */
static void
target_characters_in_pieces(void)
{
	check_prefixes("POST /login?next=%2Fprofile&a=b;c=d@e:f,g(h)!$'*+~ HTTP/1.1\r\n"
	    "Host: 127.0.0.1:8080\r\nContent-Length: 2\r\n\r\n", 0);
	check_prefixes("OPTIONS * HTTP/1.0\r\n\r\n", 0);
	check_prefixes("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 0);
}

static void
response_in_pieces(void)
{
	check_prefixes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Served-By: a\r\n\r\n", 1);
	check_prefixes("HTTP/1.1 204\r\n\r\n", 1);
}

/* The early check must still refuse a request line that can never become valid. */
static void
junk_still_refused_early(void)
{
	CHECK_INT(parse_request("\x16\x03\x01\x02", 4, REQ_MAX, &h), PARSE_ERROR);
	CHECK_INT(parse_request("GET /\x01", 6, REQ_MAX, &h), PARSE_ERROR);
}

/* A body on HEAD or TRACE is refused: a server that ignores it would read it as a second
 * request (smuggling). An empty Content-Length is no body. */
static void
body_on_head_or_trace(void)
{
	CHECK_INT(req("HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(h.err_status, 400);
	CHECK_INT(req("TRACE / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"), PARSE_ERROR);
	CHECK_INT(req("HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
	    PARSE_ERROR);
	CHECK_INT(req("HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), PARSE_OK);
	CHECK_INT(req("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"), PARSE_OK);
}

UNIT_MAIN(CASE(good_get), CASE(good_post_length), CASE(incomplete_is_more),
    CASE(connection_and_version), CASE(smuggling_cl_te), CASE(smuggling_duplicate_cl),
    CASE(smuggling_te_variants), CASE(line_endings_and_bytes), CASE(host_rules), CASE(limits),
    CASE(responses), CASE(chunked_good), CASE(chunked_bad), CASE(chunked_total),
    CASE(reqid_and_cookie), CASE(request_line_in_pieces),
    CASE(target_characters_in_pieces), CASE(response_in_pieces), CASE(junk_still_refused_early),
    CASE(body_on_head_or_trace))
