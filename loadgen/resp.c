/*
 * HTTP/1.1 responses read straight from a bufferevent's input buffer with the shared strict
 * parser (common/parse.c): the head is parsed in place once complete (no allocation per
 * header), the body is framed by Content-Length, chunked encoding, or the end of the
 * connection, and is kept only when asked. Every size the server controls is limited.
 */
#include "loadgen.h"

#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#define RESP_PULL	4096	/* a chunked body is decoded this much at a time */

/* Scratch for one head at a time per thread: it is used at once, then dropped. */
static _Thread_local struct parse_head resp_ph;

void
resp_reset(struct resp *r, struct jar *jar, struct evbuffer *body)
{
	r->r_state = RESP_HEAD;
	r->r_status = 0;
	r->r_close = 0;
	r->r_jar_changed = 0;
	r->r_left = 0;
	r->r_kept = 0;
	r->r_served_by[0] = '\0';
	r->r_jar = jar;
	r->r_body = body;
}

/* Takes what loadgen wants from a parsed head: status, keep-alive, X-Served-By, cookies. */
static void
resp_fields(struct resp *r, const struct parse_head *h)
{
	size_t i, n;

	r->r_status = h->status;
	r->r_close = h->minor == 0 ? !h->conn_keepalive : h->conn_close;
	for (i = 0; i < h->nhdrs; i++) {
		const struct parse_hdr *f = &h->hdrs[i];

		if (f->namelen == 11 && strncasecmp(f->name, "X-Served-By", 11) == 0) {
			n = f->valuelen < sizeof(r->r_served_by) ? f->valuelen :
			    sizeof(r->r_served_by) - 1;
			memcpy(r->r_served_by, f->value, n);
			r->r_served_by[n] = '\0';
		} else if (f->namelen == 10 && strncasecmp(f->name, "Set-Cookie", 10) == 0 &&
		    r->r_jar != NULL && r->r_status < 400) {
			/* Cookies from failed answers are not applied: a 401 that clears the
			 * session would log the user out for good, and every later request
			 * would fail too. loadgen counts per-request failures, not that
			 * cascade (no re-login, the session cookie is kept). */
			if (jar_set(r->r_jar, f->value, f->valuelen) == 1)
				r->r_jar_changed = 1;
		}
	}
}

/* Reads a response head from in. Returns 1 when one was taken, 0 for more, -1 on error. */
static int
resp_head(struct resp *r, struct evbuffer *in)
{
	struct parse_head *h = &resp_ph;
	size_t len = evbuffer_get_length(in), n;
	const char *p;
	int rc;

	n = len < RESP_MAX_HEAD ? len : RESP_MAX_HEAD;
	if (n == 0)
		return 0;
	if ((p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n)) == NULL)
		return -1;
	if ((rc = parse_response(p, n, RESP_MAX_HEAD, 0, h)) != PARSE_OK)
		return rc == PARSE_MORE ? 0 : -1;
	resp_fields(r, h);
	evbuffer_drain(in, h->headlen);
	switch (h->framing) {
	case FRAME_NONE:
		r->r_state = RESP_DONE;
		break;
	case FRAME_LENGTH:
		r->r_left = h->length;
		r->r_state = RESP_BODY_LENGTH;
		break;
	case FRAME_CHUNKED:
		memset(&r->r_chunk, 0, sizeof(r->r_chunk));
		r->r_state = RESP_CHUNKED;
		break;
	case FRAME_CLOSE:
		r->r_state = RESP_BODY_EOF;
		r->r_close = 1;
		break;
	}
	return 1;
}

/* Moves n body bytes from in to the kept body, or drops them. Returns 0, or -1 over the limit. */
static int
resp_take(struct resp *r, struct evbuffer *in, size_t n)
{
	if (r->r_body == NULL)
		return evbuffer_drain(in, n) == 0 ? 0 : -1;
	if (r->r_kept + n > RESP_MAX_BODY)
		return -1;
	r->r_kept += n;
	return evbuffer_remove_buffer(in, r->r_body, n) == (int)n ? 0 : -1;
}

/* Decodes what has arrived of a chunked body. Returns 1 at its end, 0 for more, -1 on error. */
static int
resp_chunked(struct resp *r, struct evbuffer *in)
{
	size_t len, n, used;
	const char *p;
	int rc, isdata;

	while ((len = evbuffer_get_length(in)) > 0) {
		n = len < RESP_PULL ? len : RESP_PULL;
		if ((p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n)) == NULL)
			return -1;
		if ((rc = parse_chunk_step(&r->r_chunk, p, n, &used, &isdata)) == PARSE_ERROR)
			return -1;
		if (isdata ? resp_take(r, in, used) == -1 : evbuffer_drain(in, used) == -1)
			return -1;
		if (rc == PARSE_OK)
			return 1;
	}
	return 0;
}

int
resp_feed(struct resp *r, struct evbuffer *in)
{
	size_t avail, n;
	int rc;

	for (;;) {
		avail = evbuffer_get_length(in);
		switch (r->r_state) {
		case RESP_HEAD:
			if ((rc = resp_head(r, in)) != 1)
				return rc;
			if (r->r_state == RESP_DONE && r->r_status < 200)
				resp_reset(r, r->r_jar, r->r_body);	/* 1xx: the real one follows */
			break;
		case RESP_BODY_LENGTH:
			if (avail == 0)
				return 0;
			n = avail < r->r_left ? avail : (size_t)r->r_left;
			if (resp_take(r, in, n) == -1)
				return -1;
			r->r_left -= n;
			if (r->r_left == 0)
				r->r_state = RESP_DONE;
			break;
		case RESP_CHUNKED:
			if ((rc = resp_chunked(r, in)) != 1)
				return rc;
			r->r_state = RESP_DONE;
			break;
		case RESP_BODY_EOF:
			if (avail == 0)
				return 0;
			if (resp_take(r, in, avail) == -1)
				return -1;
			break;
		case RESP_DONE:
			return 1;
		}
	}
}

int
resp_eof(struct resp *r)
{
	if (r->r_state == RESP_BODY_EOF) {
		r->r_state = RESP_DONE;
		return 1;
	}
	return -1;
}
