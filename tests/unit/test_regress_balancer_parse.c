/*
 * Regression test for a bug fuzz_balancer_parse found: a request line that had not fully
 * arrived yet ("GET /profile HTT", as a slow client or a split TCP segment delivers it) was
 * answered 400 "malformed request line", because the early check for junk allowed only token
 * characters and spaces, and the target's '/' is not one. Every prefix of a good head must be
 * PARSE_MORE; only the complete head may be PARSE_OK.
 *
 * The Makefile links a program's modules only into tests named test_<program>*, so this test
 * compiles the parser in directly.
 */
#include <string.h>

#include "unit.h"
#include "../../balancer/lb.h"

static struct parse_head h;

/* Checks that every proper prefix of head asks for more and the whole head parses. */
static void
check_prefixes(const char *head, int response)
{
	size_t n = strlen(head), i;
	int r;

	for (i = 0; i < n; i++) {
		r = response ? parse_response(head, i, LB_RESP_HEAD_MAX, 0, &h) :
		    parse_request(head, i, LB_REQ_HEAD_MAX, &h);
		if (r != PARSE_MORE) {
			fprintf(stderr, "    prefix of %zu bytes: %d (%s)\n", i, r,
			    h.err != NULL ? h.err : "");
			CHECK(r == PARSE_MORE);
			return;
		}
	}
	r = response ? parse_response(head, n, LB_RESP_HEAD_MAX, 0, &h) :
	    parse_request(head, n, LB_REQ_HEAD_MAX, &h);
	CHECK_INT(r, PARSE_OK);
	CHECK_INT(h.headlen, n);
}

/* The input the fuzzer saved, cut where it cut it (16 bytes). */
static void
request_line_in_pieces(void)
{
	const char *head = "GET /profile HTTP/1.1\r\nHost: a\r\n"
	    "Cookie: sid=abc; lb=0123456789abcdef\r\n\r\n";

	CHECK_INT(parse_request(head, 16, LB_REQ_HEAD_MAX, &h), PARSE_MORE);
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
	CHECK_INT(parse_request("\x16\x03\x01\x02", 4, LB_REQ_HEAD_MAX, &h), PARSE_ERROR);
	CHECK_INT(parse_request("GET /\x01", 6, LB_REQ_HEAD_MAX, &h), PARSE_ERROR);
}

UNIT_MAIN(CASE(request_line_in_pieces), CASE(target_characters_in_pieces),
    CASE(response_in_pieces), CASE(junk_still_refused_early))
