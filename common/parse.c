/*
 * Strict HTTP/1.1 head and chunked-body parsing for every program (RFC 9110, RFC 9112). The
 * balancer sits in front of servers, and loadgen reads both: everything that could let two
 * parsers disagree about where a message ends is refused: Content-Length with
 * Transfer-Encoding, repeated or list-valued Content-Length, any coding but a lone "chunked",
 * obs-fold, bare CR or LF, control characters, whitespace before the colon, and a body on HEAD
 * or TRACE (a server that ignores such a body would read it as a second, smuggled request).
 */
#include "digits.h"
#include "parse.h"

#include <string.h>
#include <strings.h>

/* tchar from RFC 9110 5.6.2. */
static const unsigned char parse_tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
	['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
	['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
	['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
	['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
	['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
	['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

#define PARSE_FAIL(h, st, why) do {	\
	(h)->err_status = (st);		\
	(h)->err = (why);		\
	return PARSE_ERROR;		\
} while (0)

/* Whether s[0..len) is the string literal lit, ignoring case. */
#define PARSE_IS(s, len, lit) \
	((len) == sizeof(lit) - 1 && strncasecmp((s), (lit), sizeof(lit) - 1) == 0)

static enum parse_kind
parse_classify(const char *n, size_t len)
{
#define NAME(s, k) { s, sizeof(s) - 1, k }
	static const struct { const char *name; size_t len; enum parse_kind kind; } names[] = {
		NAME("content-length", HDR_CL), NAME("transfer-encoding", HDR_TE),
		NAME("host", HDR_HOST), NAME("cookie", HDR_COOKIE),
		NAME("x-forwarded-for", HDR_XFF), NAME("x-forwarded-proto", HDR_XFP),
		NAME("x-request-id", HDR_XRID),
		NAME("connection", HDR_HOP), NAME("keep-alive", HDR_HOP), NAME("te", HDR_HOP),
		NAME("trailer", HDR_HOP), NAME("upgrade", HDR_HOP),
		NAME("proxy-connection", HDR_HOP), NAME("proxy-authenticate", HDR_HOP),
		NAME("proxy-authorization", HDR_HOP),
	};
#undef NAME
	/* The lengths of the names above, as bits: most fields are none of these, and their
	 * length alone tells, without comparing text. */
	static const uint32_t lengths = 1u << 2 | 1u << 4 | 1u << 6 | 1u << 7 | 1u << 10 |
	    1u << 12 | 1u << 14 | 1u << 15 | 1u << 16 | 1u << 17 | 1u << 18 | 1u << 19;
	size_t i;

	if (len >= 32 || !(lengths & (1u << len)))
		return HDR_OTHER;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].len == len && strncasecmp(n, names[i].name, len) == 0)
			return names[i].kind;
	return HDR_OTHER;
}

/* Applies the tokens of a Connection header: close, keep-alive, and the fields it names. */
static void
parse_connection(struct parse_head *h, const char *v, size_t len)
{
	size_t i = 0, start, end, k;

	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		start = i;
		while (i < len && v[i] != ',')
			i++;
		end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end == start)
			continue;
		if (PARSE_IS(v + start, end - start, "close"))
			h->conn_close = 1;
		else if (PARSE_IS(v + start, end - start, "keep-alive"))
			h->conn_keepalive = 1;
		for (k = 0; k < h->nhdrs; k++)
			if (h->hdrs[k].namelen == end - start &&
			    strncasecmp(h->hdrs[k].name, v + start, end - start) == 0 &&
			    h->hdrs[k].kind == HDR_OTHER)
				h->hdrs[k].kind = HDR_HOP;
	}
}

/* A control character other than HTAB (RFC 9110 5.5), one byte. */
static int
parse_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

/*
 * Whether s[0..n) holds a control character other than HTAB. Eight bytes at a time: a word
 * without a byte below 0x20, at 0x7f or above is clean; any other word (a tab, obs-text) is
 * looked at byte by byte. Values are most of a head, so this is most of the parser's work.
 */
static int
parse_has_ctl(const char *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
	uint64_t w;
	size_t i = 0, k;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		if ((((w - ones * 0x20) & ~w) | (w + ones) | w) & high)
			for (k = 0; k < 8; k++)
				if (parse_ctl((unsigned char)s[i + k]))
					return 1;
	}
	for (; i < n; i++)
		if (parse_ctl((unsigned char)s[i]))
			return 1;
	return 0;
}

/*
 * Parses header lines from p up to the empty line. Returns PARSE_OK with h->headlen, PARSE_MORE
 * or PARSE_ERROR; field-level errors answer status 400 (or 431 past the limits).
 */
static int
parse_fields(const char *buf, const char *p, const char *end, size_t max, struct parse_head *h)
{
	const char *eol, *colon, *v, *ve;

	for (;;) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL) {
			if ((size_t)(end - buf) >= max)
				PARSE_FAIL(h, 431, "request header fields too large");
			return PARSE_MORE;
		}
		if (eol == p || eol[-1] != '\r')
			PARSE_FAIL(h, 400, "line ends with a bare LF");
		if (eol - 1 == p)
			break;
		if (*p == ' ' || *p == '\t')
			PARSE_FAIL(h, 400, "obsolete line folding");
		for (colon = p; colon < eol - 1 && parse_tchar[(unsigned char)*colon]; colon++)
			;
		if (colon == p || *colon != ':')
			PARSE_FAIL(h, 400, "malformed header field name");
		v = colon + 1;
		ve = eol - 1;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (parse_has_ctl(v, (size_t)(ve - v)))
			PARSE_FAIL(h, 400, "control character in a header value");
		if (h->nhdrs == PARSE_MAX_HEADERS)
			PARSE_FAIL(h, 431, "too many header fields");
		h->hdrs[h->nhdrs++] = (struct parse_hdr){ p, (size_t)(colon - p), v,
		    (size_t)(ve - v), parse_classify(p, (size_t)(colon - p)) };
		p = eol + 1;
	}
	h->headlen = (size_t)(eol + 1 - buf);
	return PARSE_OK;
}

/* Content-Length, Transfer-Encoding and Connection rules shared by requests and responses. */
static int
parse_framing(struct parse_head *h, int status)
{
	size_t i, ncl = 0, nte = 0;
	uint64_t len = 0;

	for (i = 0; i < h->nhdrs; i++) {
		struct parse_hdr *f = &h->hdrs[i];

		if (f->kind == HDR_CL) {
			if (ncl++ > 0)
				PARSE_FAIL(h, status, "more than one Content-Length");
			/* digits only, no list: a list is how "CL, CL" smuggling starts */
			if (digits_decimal(f->value, f->valuelen, 18, &len) == -1)
				PARSE_FAIL(h, status, "invalid Content-Length");
		} else if (f->kind == HDR_TE) {
			if (nte++ > 0)
				PARSE_FAIL(h, status, "more than one Transfer-Encoding");
			if (!PARSE_IS(f->value, f->valuelen, "chunked"))
				PARSE_FAIL(h, status, "unsupported Transfer-Encoding");
		} else if (f->kind == HDR_HOP && PARSE_IS(f->name, f->namelen, "connection"))
			parse_connection(h, f->value, f->valuelen);
	}
	if (ncl && nte)
		PARSE_FAIL(h, status, "both Content-Length and Transfer-Encoding");
	if (nte && h->minor == 0)
		PARSE_FAIL(h, status, "Transfer-Encoding in HTTP/1.0");
	h->length = len;
	h->framing = nte ? FRAME_CHUNKED : ncl && len ? FRAME_LENGTH : FRAME_NONE;
	return PARSE_OK;
}

/* "HTTP/1.0" or "HTTP/1.1" at p; 505 for another version, 400 for anything else. */
static int
parse_version(const char *p, size_t len, struct parse_head *h)
{
	if (len == 8 && memcmp(p, "HTTP/1.", 7) == 0 && (p[7] == '0' || p[7] == '1')) {
		h->minor = p[7] - '0';
		return PARSE_OK;
	}
	if (len == 8 && memcmp(p, "HTTP/", 5) == 0 && p[5] >= '0' && p[5] <= '9' &&
	    p[6] == '.' && p[7] >= '0' && p[7] <= '9')
		PARSE_FAIL(h, 505, "HTTP version not supported");
	PARSE_FAIL(h, 400, "malformed HTTP version");
}

static void
parse_reset(struct parse_head *h)
{
	h->nhdrs = 0;
	h->headlen = 0;
	h->framing = FRAME_NONE;
	h->length = 0;
	h->conn_close = h->conn_keepalive = 0;
	h->status = 0;
	h->err_status = 0;
	h->err = NULL;
}

int
parse_request(const char *buf, size_t len, size_t max, struct parse_head *h)
{
	const char *p = buf, *end, *eol, *sp, *q;
	size_t i, nhost = 0;
	int r;

	parse_reset(h);
	if (len > max)
		len = max;
	end = buf + len;
	/* RFC 9112 2.2: ignore empty lines before the request line. */
	while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
		p += 2;
	eol = memchr(p, '\n', (size_t)(end - p));
	if (eol == NULL) {
		if (len >= max)
			PARSE_FAIL(h, 431, "request line too long");
		for (q = p; q < end; q++)
			if ((*q < 0x20 || *q > 0x7e) && *q != '\r')
				goto badline;
		return PARSE_MORE;
	}
	if (eol == p || eol[-1] != '\r')
		PARSE_FAIL(h, 400, "line ends with a bare LF");
	for (sp = p; sp < eol && parse_tchar[(unsigned char)*sp]; sp++)
		;
	if (sp == p || *sp != ' ' || sp - p > 32)
		PARSE_FAIL(h, 400, "malformed request method");
	h->method = p;
	h->methodlen = (size_t)(sp - p);
	p = sp + 1;
	for (sp = p; sp < eol && *sp > 0x20 && *sp < 0x7f; sp++)
		;
	if (sp == p || *sp != ' ')
		goto badline;
	h->target = p;
	h->targetlen = (size_t)(sp - p);
	if (PARSE_IS(h->method, h->methodlen, "CONNECT"))
		PARSE_FAIL(h, 405, "CONNECT is not supported");
	/* A reverse proxy serves origin-form, and "*" for OPTIONS only. */
	if (h->target[0] != '/' && !(h->targetlen == 1 && h->target[0] == '*' &&
	    PARSE_IS(h->method, h->methodlen, "OPTIONS")))
		PARSE_FAIL(h, 400, "request target must be an absolute path");
	if ((r = parse_version(sp + 1, (size_t)(eol - 1 - (sp + 1)), h)) != PARSE_OK)
		return r;
	if ((r = parse_fields(buf, eol + 1, end, max, h)) != PARSE_OK)
		return r;
	for (i = 0; i < h->nhdrs; i++)
		if (h->hdrs[i].kind == HDR_HOST)
			nhost++;
	if (nhost > 1 || (nhost == 0 && h->minor == 1))
		PARSE_FAIL(h, 400, "a request needs exactly one Host header");
	if ((r = parse_framing(h, 400)) != PARSE_OK)
		return r;
	if (h->framing != FRAME_NONE && (PARSE_IS(h->method, h->methodlen, "HEAD") ||
	    PARSE_IS(h->method, h->methodlen, "TRACE")))
		PARSE_FAIL(h, 400, "a HEAD or TRACE request has no body");
	return PARSE_OK;
 badline:
	PARSE_FAIL(h, 400, "malformed request line");
}

int
parse_response(const char *buf, size_t len, size_t max, int head_request, struct parse_head *h)
{
	const char *eol, *p, *q;
	int r;

	parse_reset(h);
	if (len > max)
		len = max;
	eol = memchr(buf, '\n', len);
	if (eol == NULL)
		return len >= max ? (h->err_status = 502, h->err = "response head too large",
		    PARSE_ERROR) : PARSE_MORE;
	h->err_status = 502;
	if (eol - buf < 13 || eol[-1] != '\r' || parse_version(buf, 8, h) != PARSE_OK ||
	    buf[8] != ' ' || buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' ||
	    buf[11] < '0' || buf[11] > '9' || (buf[12] != ' ' && buf[12] != '\r'))
		PARSE_FAIL(h, 502, "malformed status line");
	h->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	p = buf[12] == ' ' ? buf + 13 : buf + 12;
	for (q = p; q < eol - 1; q++)
		if ((unsigned char)*q < 0x20 && *q != '\t')
			PARSE_FAIL(h, 502, "control character in the reason phrase");
	h->reason = p;
	h->reasonlen = (size_t)(eol - 1 - p);
	if ((r = parse_fields(buf, eol + 1, buf + len, max, h)) != PARSE_OK) {
		if (r == PARSE_ERROR)
			h->err_status = 502;
		return r;
	}
	if ((r = parse_framing(h, 502)) != PARSE_OK)
		return r;
	if (head_request || h->status < 200 || h->status == 204 || h->status == 304)
		h->framing = FRAME_NONE;
	else if (h->framing == FRAME_NONE && !h->length) {
		size_t i;
		int cl = 0;

		for (i = 0; i < h->nhdrs; i++)
			cl |= h->hdrs[i].kind == HDR_CL;
		if (!cl)
			h->framing = FRAME_CLOSE;
	}
	return PARSE_OK;
}

enum {
	CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER,
	CH_TRAILER_LINE, CH_TRAILER_LF, CH_END_LF, CH_DONE
};


int
parse_chunk_step(struct parse_chunk *c, const char *p, size_t n, size_t *used, int *isdata)
{
	size_t i = 0;
	int d, st = c->pc_state;

	*used = 0;
	*isdata = 0;
	if (st == CH_DATA) {
		size_t take = n < c->pc_left ? n : (size_t)c->pc_left;

		c->pc_left -= take;
		if (c->pc_left == 0)
			c->pc_state = CH_DATA_CR;
		*used = take;
		*isdata = 1;
		return PARSE_MORE;
	}
	for (; i < n && st != CH_DATA && st != CH_DONE; i++) {
		char ch = p[i];

		if (st != CH_TRAILER_LINE && st != CH_TRAILER && ++c->pc_line > PARSE_CHUNK_LINE_MAX)
			return PARSE_ERROR;
		switch (st) {
		case CH_SIZE:
			if ((d = digits_hex((unsigned char)ch)) >= 0) {
				if (++c->pc_digits > 15)
					return PARSE_ERROR;
				c->pc_left = c->pc_left * 16 + (uint64_t)d;
			} else if (c->pc_digits && ch == ';')
				st = CH_EXT;
			else if (c->pc_digits && ch == '\r')
				st = CH_SIZE_LF;
			else
				return PARSE_ERROR;
			break;
		case CH_EXT:
			if (ch == '\r')
				st = CH_SIZE_LF;
			else if (((unsigned char)ch < 0x20 && ch != '\t') || ch == 0x7f)
				return PARSE_ERROR;
			break;
		case CH_SIZE_LF:
			if (ch != '\n')
				return PARSE_ERROR;
			c->pc_total += c->pc_left;
			c->pc_line = 0;
			c->pc_digits = 0;
			st = c->pc_left ? CH_DATA : CH_TRAILER;
			break;
		case CH_DATA_CR:
			if (ch != '\r')
				return PARSE_ERROR;
			st = CH_DATA_LF;
			break;
		case CH_DATA_LF:
			if (ch != '\n')
				return PARSE_ERROR;
			c->pc_line = 0;
			st = CH_SIZE;
			break;
		case CH_TRAILER:
			if (ch == '\r') {
				st = CH_END_LF;
				break;
			}
			if (ch == ' ' || ch == '\t' || ch == '\n')
				return PARSE_ERROR;
			st = CH_TRAILER_LINE;
			/* FALLTHROUGH */
		case CH_TRAILER_LINE:
			if (++c->pc_trailers > PARSE_TRAILERS_MAX)
				return PARSE_ERROR;
			if (ch == '\r')
				st = CH_TRAILER_LF;
			else if (((unsigned char)ch < 0x20 && ch != '\t') || ch == 0x7f)
				return PARSE_ERROR;
			break;
		case CH_TRAILER_LF:
			if (ch != '\n')
				return PARSE_ERROR;
			st = CH_TRAILER;
			break;
		case CH_END_LF:
			if (ch != '\n')
				return PARSE_ERROR;
			st = CH_DONE;
			break;
		}
	}
	c->pc_state = st;
	*used = i;
	return st == CH_DONE ? PARSE_OK : PARSE_MORE;
}

int
parse_reqid_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > PARSE_REQID_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

const char *
parse_cookie(const char *v, size_t vlen, const char *name, size_t *outlen)
{
	size_t nlen = strlen(name), i = 0, start;

	while (i < vlen) {
		while (i < vlen && (v[i] == ' ' || v[i] == ';'))
			i++;
		start = i;
		while (i < vlen && v[i] != ';')
			i++;
		if (i - start > nlen && v[start + nlen] == '=' &&
		    memcmp(v + start, name, nlen) == 0) {
			*outlen = i - start - nlen - 1;
			return v + start + nlen + 1;
		}
	}
	return NULL;
}
