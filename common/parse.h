/*
 * The one strict HTTP/1.1 parser (RFC 9110, RFC 9112) of every program: request and response
 * heads parsed in place, an incremental chunked-body decoder, and the limits. The balancer, both
 * login servers and loadgen read framing with it, so no two of them can disagree about where a
 * message ends.
 */
#ifndef PARSE_H
#define PARSE_H

#include <stddef.h>
#include <stdint.h>

#define PARSE_MAX_HEADERS	100	/* header fields per head; more is 431 */
#define PARSE_CHUNK_LINE_MAX	256	/* chunk-size line with extensions, one trailer line */
#define PARSE_TRAILERS_MAX	4096
#define PARSE_REQID_MAX		64

enum parse_result { PARSE_ERROR = -1, PARSE_OK = 0, PARSE_MORE = 1 };

enum parse_framing { FRAME_NONE, FRAME_LENGTH, FRAME_CHUNKED, FRAME_CLOSE };

/* What the proxy does with a header field when it forwards the head. */
enum parse_kind {
	HDR_OTHER, HDR_HOP, HDR_CL, HDR_TE, HDR_HOST, HDR_COOKIE, HDR_XFF, HDR_XFP, HDR_XRID
};

struct parse_hdr {
	const char	*name;
	size_t		 namelen;
	const char	*value;		/* without surrounding whitespace */
	size_t		 valuelen;
	enum parse_kind	 kind;
};

/* A parsed head. Pointers point into the caller's buffer and live as long as it does. */
struct parse_head {
	const char	*method;	/* request */
	size_t		 methodlen;
	const char	*target;
	size_t		 targetlen;
	int		 status;	/* response */
	const char	*reason;
	size_t		 reasonlen;
	int		 minor;		/* HTTP/1.<minor> */
	struct parse_hdr hdrs[PARSE_MAX_HEADERS];
	size_t		 nhdrs;
	size_t		 headlen;	/* bytes up to and including the empty line */
	enum parse_framing framing;
	uint64_t	 length;	/* Content-Length, when framing is FRAME_LENGTH */
	int		 conn_close;	/* Connection: close */
	int		 conn_keepalive;/* Connection: keep-alive */
	int		 err_status;	/* on PARSE_ERROR: the status to answer (400, 431, 505) */
	const char	*err;		/* ... and why, a constant string */
};

/*
 * Parses a request head from buf[0..len). Returns PARSE_OK (h->headlen set), PARSE_MORE when
 * the head is incomplete and shorter than max, or PARSE_ERROR with h->err_status and h->err.
 */
int parse_request(const char *buf, size_t len, size_t max, struct parse_head *h);
/* The same for a response head; head_request tells that the request was HEAD (no body). */
int parse_response(const char *buf, size_t len, size_t max, int head_request,
    struct parse_head *h);

/* Incremental decoder of a chunked body; zero it before the first byte. */
struct parse_chunk {
	int		 pc_state;
	uint64_t	 pc_left;	/* data bytes left in this chunk */
	size_t		 pc_line;	/* bytes of the current size or trailer line */
	size_t		 pc_digits;
	uint64_t	 pc_total;	/* sum of the chunk sizes announced so far */
	size_t		 pc_trailers;
};
/*
 * Consumes a prefix of p[0..n) and sets *used to its length and *isdata to whether those bytes
 * are payload (1) or framing (0). Returns PARSE_MORE, PARSE_OK when the body ended with the
 * consumed bytes, or PARSE_ERROR on bad framing (the decoder is then spent).
 */
int parse_chunk_step(struct parse_chunk *c, const char *p, size_t n, size_t *used, int *isdata);

/* Whether s[0..len) is a sane X-Request-Id: 1..64 of [A-Za-z0-9._-]. */
int parse_reqid_ok(const char *s, size_t len);
/* Finds cookie name in a Cookie header value; returns its value (borrowed) or NULL. */
const char *parse_cookie(const char *v, size_t vlen, const char *name, size_t *outlen);

#endif
