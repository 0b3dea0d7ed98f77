/*
 * An incremental HTTP/1.1 response parser working straight on a bufferevent's input buffer:
 * the head is parsed in place once complete (no allocation per header), the body is framed by
 * Content-Length, chunked encoding, or the end of the connection, and is kept only when asked.
 * Every size the server controls is limited.
 */
#include "digits.h"
#include "loadgen.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#define RESP_MAX_LINE	1024	/* a chunk-size or trailer line */

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

/* Does the comma-separated header value hold token (case-insensitive)? */
static int
resp_has_token(const char *v, size_t len, const char *token)
{
	size_t tl = strlen(token), i = 0, start;

	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		start = i;
		while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
			i++;
		if (i - start == tl && strncasecmp(v + start, token, tl) == 0)
			return 1;
	}
	return 0;
}

int
resp_head(struct resp *r, const char *head, size_t len)
{
	const char *p = head, *end = head + len, *eol, *colon, *v, *ve;
	uint64_t clen = 0;
	int minor, have_len = 0, chunked = 0;
	size_t nlen, vlen;

	/* "HTTP/1.x SSS reason" */
	if (len < 14 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
	    p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
	    p[11] < '0' || p[11] > '9' || (p[12] != ' ' && p[12] != '\r'))
		return -1;
	minor = p[7] - '0';
	r->r_status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	r->r_close = minor == 0;
	if ((eol = memchr(p, '\n', len)) == NULL || eol == p || eol[-1] != '\r')
		return -1;
	p = eol + 1;

	while (p < end) {
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL || eol == p ||
		    eol[-1] != '\r')
			return -1;
		if (eol - 1 == p)
			break;		/* the empty line */
		if ((colon = memchr(p, ':', (size_t)(eol - p))) == NULL || colon == p)
			return -1;
		nlen = (size_t)(colon - p);
		if (p[nlen - 1] == ' ' || p[nlen - 1] == '\t')
			return -1;	/* RFC 9112: no whitespace before the colon */
		v = colon + 1;
		ve = eol - 1;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		vlen = (size_t)(ve - v);

		if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
			uint64_t n;
			if (digits_decimal(v, vlen, 15, &n) == -1 || (have_len && n != clen))
				return -1;
			clen = n;
			have_len = 1;
		} else if (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
			if (!resp_has_token(v, vlen, "chunked"))
				return -1;	/* nothing else is sent to us */
			chunked = 1;
		} else if (nlen == 10 && strncasecmp(p, "Connection", 10) == 0) {
			if (resp_has_token(v, vlen, "close"))
				r->r_close = 1;
			else if (resp_has_token(v, vlen, "keep-alive"))
				r->r_close = 0;
		} else if (nlen == 11 && strncasecmp(p, "X-Served-By", 11) == 0) {
			if (vlen >= sizeof(r->r_served_by))
				vlen = sizeof(r->r_served_by) - 1;
			memcpy(r->r_served_by, v, vlen);
			r->r_served_by[vlen] = '\0';
		} else if (nlen == 10 && strncasecmp(p, "Set-Cookie", 10) == 0 &&
		    r->r_jar != NULL && r->r_status < 400) {
			/* Cookies from failed answers are not applied: a 401 that clears the
			 * session would log the user out for good, and every later request
			 * would fail too. loadgen counts per-request failures, not that
			 * cascade (no re-login, the session cookie is kept). */
			if (jar_set(r->r_jar, v, vlen) == 1)
				r->r_jar_changed = 1;
		}
		p = eol + 1;
	}
	if (p >= end)
		return -1;

	if ((r->r_status >= 100 && r->r_status < 200) || r->r_status == 204 ||
	    r->r_status == 304)
		r->r_state = RESP_DONE;
	else if (chunked)
		r->r_state = RESP_CHUNK_SIZE;
	else if (have_len) {
		r->r_left = clen;
		r->r_state = clen ? RESP_BODY_LENGTH : RESP_DONE;
	} else {
		r->r_state = RESP_BODY_EOF;
		r->r_close = 1;
	}
	return 0;
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

/* Takes one CRLF-terminated line of at most RESP_MAX_LINE bytes out of in, into line.
 * Returns its length, -2 when incomplete, -1 when too long. */
static int
resp_line(struct evbuffer *in, char *line)
{
	struct evbuffer_ptr eol;
	size_t eol_len;

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF_STRICT);
	if (eol.pos < 0)
		return evbuffer_get_length(in) > RESP_MAX_LINE ? -1 : -2;
	if ((size_t)eol.pos >= RESP_MAX_LINE)
		return -1;
	evbuffer_remove(in, line, (size_t)eol.pos);
	line[eol.pos] = '\0';
	evbuffer_drain(in, eol_len);
	return (int)eol.pos;
}

int
resp_feed(struct resp *r, struct evbuffer *in)
{
	char line[RESP_MAX_LINE + 1];
	struct evbuffer_ptr pos;
	size_t avail, n, k;
	uint64_t sz;
	int rc, d;

	for (;;) {
		avail = evbuffer_get_length(in);
		switch (r->r_state) {
		case RESP_HEAD:
			pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
			if (pos.pos < 0)
				return avail > RESP_MAX_HEAD ? -1 : 0;
			n = (size_t)pos.pos + 4;
			if (n > RESP_MAX_HEAD)
				return -1;
			if (resp_head(r, (const char *)evbuffer_pullup(in, (ssize_t)n), n) == -1)
				return -1;
			evbuffer_drain(in, n);
			if (r->r_state == RESP_DONE && r->r_status < 200) {
				resp_reset(r, r->r_jar, r->r_body);	/* 1xx: the real one follows */
				continue;
			}
			break;
		case RESP_BODY_LENGTH:
		case RESP_CHUNK_DATA:
			if (avail == 0)
				return 0;
			n = avail < r->r_left ? avail : (size_t)r->r_left;
			if (resp_take(r, in, n) == -1)
				return -1;
			r->r_left -= n;
			if (r->r_left == 0)
				r->r_state = r->r_state == RESP_BODY_LENGTH ? RESP_DONE :
				    RESP_CHUNK_END;
			break;
		case RESP_CHUNK_SIZE:
			if ((rc = resp_line(in, line)) < 0)
				return rc == -2 ? 0 : -1;
			for (sz = 0, k = 0; (d = digits_hex((unsigned char)line[k])) >= 0; k++) {
				if (k == 12)
					return -1;
				sz = sz * 16 + (uint64_t)d;
			}
			if (k == 0 || (line[k] != '\0' && line[k] != ';' && line[k] != ' '))
				return -1;
			r->r_left = sz;
			r->r_state = sz ? RESP_CHUNK_DATA : RESP_TRAILER;
			break;
		case RESP_CHUNK_END:
			if (avail < 2)
				return 0;
			evbuffer_remove(in, line, 2);
			if (line[0] != '\r' || line[1] != '\n')
				return -1;
			r->r_state = RESP_CHUNK_SIZE;
			break;
		case RESP_TRAILER:
			if ((rc = resp_line(in, line)) < 0)
				return rc == -2 ? 0 : -1;
			if (rc == 0)
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
