/*
 * libFuzzer harness for the shared HTTP/1.1 parser (common/parse.c), in request and response
 * mode as the servers, the balancer and loadgen use it. The first input
 * byte picks what the rest is: a request head, a response head (to a GET or a HEAD), a chunked
 * body, or a Cookie / X-Request-Id value. Besides memory safety it checks the properties the
 * proxy relies on: a parsed head lies inside the bytes given; a head that parses also parses,
 * to the same length, when it arrives in two pieces (every shorter prefix is PARSE_MORE, never
 * an error); and the chunked decoder gives the same answer fed at once or byte by byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

#define REQ_MAX		16384
#define RESP_MAX	16384

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct parse_head fuzz_head, fuzz_part;

/* Every pointer of a parsed head must lie in buf[0..headlen). */
static void
fuzz_inside(const char *buf, const struct parse_head *h, int request)
{
	size_t i;

	if (h->headlen == 0 || h->nhdrs > PARSE_MAX_HEADERS)
		abort();
	if (request && (h->method < buf || h->method + h->methodlen > buf + h->headlen ||
	    h->target < buf || h->target + h->targetlen > buf + h->headlen))
		abort();
	for (i = 0; i < h->nhdrs; i++)
		if (h->hdrs[i].name < buf || h->hdrs[i].namelen == 0 ||
		    h->hdrs[i].name + h->hdrs[i].namelen > buf + h->headlen ||
		    h->hdrs[i].value < buf ||
		    h->hdrs[i].value + h->hdrs[i].valuelen > buf + h->headlen)
			abort();
}

/* Parses a head of n bytes (request or response), then again from a prefix of cut bytes. */
static void
fuzz_head_case(const char *buf, size_t n, int what, size_t cut)
{
	size_t max = what == 0 ? REQ_MAX : RESP_MAX;
	int r, r2;

	r = what == 0 ? parse_request(buf, n, max, &fuzz_head) :
	    parse_response(buf, n, max, what == 2, &fuzz_head);
	if (r == PARSE_ERROR) {
		if (fuzz_head.err == NULL || fuzz_head.err_status < 400 ||
		    fuzz_head.err_status > 505)
			abort();
		return;
	}
	if (r == PARSE_MORE) {
		if (n >= max)
			abort();	/* a full buffer must be decided */
		return;
	}
	if (r != PARSE_OK || fuzz_head.headlen > n || fuzz_head.headlen > max)
		abort();
	fuzz_inside(buf, &fuzz_head, what == 0);
	if (fuzz_head.framing == FRAME_LENGTH && fuzz_head.length == 0)
		abort();
	/* The same head cut short, as a slow client sends it, must only ask for more. */
	cut %= fuzz_head.headlen;
	r2 = what == 0 ? parse_request(buf, cut, max, &fuzz_part) :
	    parse_response(buf, cut, max, what == 2, &fuzz_part);
	if (r2 != PARSE_MORE)
		abort();
	/* ... and with exactly its bytes it ends at the same place. */
	r2 = what == 0 ? parse_request(buf, fuzz_head.headlen, max, &fuzz_part) :
	    parse_response(buf, fuzz_head.headlen, max, what == 2, &fuzz_part);
	if (r2 != PARSE_OK || fuzz_part.headlen != fuzz_head.headlen ||
	    fuzz_part.nhdrs != fuzz_head.nhdrs || fuzz_part.framing != fuzz_head.framing ||
	    fuzz_part.length != fuzz_head.length)
		abort();
}

/* Runs the chunked decoder over buf, in steps of at most step bytes. Returns the result and
 * sets *consumed and *data to the bytes used and the payload bytes among them. */
static int
fuzz_chunks(const char *buf, size_t n, size_t step, size_t *consumed, size_t *data)
{
	struct parse_chunk c;
	size_t off = 0, used, avail;
	int r = PARSE_MORE, isdata;

	memset(&c, 0, sizeof(c));
	*data = 0;
	while (off < n) {
		avail = n - off < step ? n - off : step;
		r = parse_chunk_step(&c, buf + off, avail, &used, &isdata);
		if (used > avail)
			abort();
		off += used;
		if (isdata)
			*data += used;
		if (r != PARSE_MORE)
			break;
		if (used == 0 && avail > 0)
			abort();	/* no progress: the proxy would spin */
	}
	*consumed = off;
	return r;
}

static void
fuzz_chunk_case(const char *buf, size_t n)
{
	size_t used1, data1, used2, data2;
	int r1, r2;

	r1 = fuzz_chunks(buf, n, n, &used1, &data1);
	r2 = fuzz_chunks(buf, n, 1, &used2, &data2);
	if (r1 != r2 || (r1 != PARSE_ERROR && (used1 != used2 || data1 != data2)))
		abort();
}

static void
fuzz_value_case(const char *buf, size_t n)
{
	const char *v;
	size_t vlen = (size_t)-1;

	if (parse_reqid_ok(buf, n) && (n == 0 || n > PARSE_REQID_MAX))
		abort();
	if ((v = parse_cookie(buf, n, "lb", &vlen)) != NULL &&
	    (v < buf || vlen > n || v + vlen > buf + n))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf;
	size_t n;
	int what;

	if (size < 2)
		return 0;
	what = data[0] % 5;
	/* An exact-size copy: the parsers get a length, and ASan sees any read past it. */
	n = size - 2;
	if ((buf = malloc(n > 0 ? n : 1)) == NULL)
		abort();
	memcpy(buf, data + 2, n);
	if (what <= 2)
		fuzz_head_case(buf, n, what, (size_t)data[1] * 37);
	else if (what == 3)
		fuzz_chunk_case(buf, n);
	else
		fuzz_value_case(buf, n);
	free(buf);
	return 0;
}
