/*
 * The cookie jar of one virtual user. loadgen talks to one site, so Domain and Path are
 * ignored and every cookie goes back on every request, as a browser would do for "/". What
 * matters is keeping ALL cookies: the session id, the JWT cookie, and the balancer's sticky one.
 */
#include "loadgen.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
jar_init(struct jar *j)
{
	memset(j, 0, sizeof(*j));
}

static int
jar_token_char(int c)
{
	/* RFC 6265 cookie-name is an RFC 7230 token. */
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?={}", c) == NULL;
}

static int
jar_value_char(int c)
{
	return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
	    (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

/* Is the attribute list (after the first ';') asking to delete the cookie now? Max-Age wins
 * over Expires (RFC 6265 section 5.3). */
static int
jar_expired(const char *attrs, size_t len)
{
	char buf[128], *val;
	const char *p = attrs, *end = attrs + len, *semi;
	int maxage = 0, expired = 0;
	size_t n;
	struct tm tm;
	time_t t;

	while (p < end) {
		semi = memchr(p, ';', (size_t)(end - p));
		if (semi == NULL)
			semi = end;
		while (p < semi && *p == ' ')
			p++;
		n = (size_t)(semi - p);
		if (n < sizeof(buf)) {
			memcpy(buf, p, n);
			buf[n] = '\0';
			if ((val = strchr(buf, '=')) != NULL)
				*val++ = '\0';
			if (val != NULL && strcasecmp(buf, "max-age") == 0) {
				maxage = 1;
				expired = strtol(val, NULL, 10) <= 0;
			} else if (val != NULL && !maxage &&
			    strcasecmp(buf, "expires") == 0) {
				memset(&tm, 0, sizeof(tm));
				if (strptime(val, "%a, %d %b %Y %H:%M:%S", &tm) != NULL &&
				    (t = timegm(&tm)) != (time_t)-1)
					expired = t <= time(NULL);
			}
		}
		p = semi + 1;
	}
	return expired;
}

static void
jar_remove(struct jar *j, size_t i)
{
	free(j->j_cookies[i].jc_name);
	free(j->j_cookies[i].jc_value);
	j->j_cookies[i] = j->j_cookies[--j->j_n];
}

int
jar_set(struct jar *j, const char *hdr, size_t len)
{
	const char *p = hdr, *end = hdr + len, *eq, *semi, *name, *val;
	size_t nlen, vlen, i;
	char *nname, *nval;

	semi = memchr(hdr, ';', len);
	if (semi == NULL)
		semi = end;
	eq = memchr(hdr, '=', (size_t)(semi - hdr));
	if (eq == NULL)
		return -1;
	while (p < eq && (*p == ' ' || *p == '\t'))
		p++;
	name = p;
	p = eq;
	while (p > name && (p[-1] == ' ' || p[-1] == '\t'))
		p--;
	nlen = (size_t)(p - name);
	val = eq + 1;
	while (val < semi && (*val == ' ' || *val == '\t'))
		val++;
	p = semi;
	while (p > val && (p[-1] == ' ' || p[-1] == '\t'))
		p--;
	vlen = (size_t)(p - val);
	if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
		val++;
		vlen -= 2;
	}
	if (nlen == 0 || nlen > JAR_MAX_NAME || vlen > JAR_MAX_VALUE)
		return -1;
	for (i = 0; i < nlen; i++)
		if (!jar_token_char((unsigned char)name[i]))
			return -1;
	for (i = 0; i < vlen; i++)
		if (!jar_value_char((unsigned char)val[i]))
			return -1;

	for (i = 0; i < j->j_n; i++)
		if (strlen(j->j_cookies[i].jc_name) == nlen &&
		    memcmp(j->j_cookies[i].jc_name, name, nlen) == 0)
			break;
	if (semi < end && jar_expired(semi + 1, (size_t)(end - semi - 1))) {
		if (i == j->j_n)
			return 0;
		jar_remove(j, i);
		return 1;
	}
	if (i < j->j_n) {
		if (strlen(j->j_cookies[i].jc_value) == vlen &&
		    memcmp(j->j_cookies[i].jc_value, val, vlen) == 0)
			return 0;
		if ((nval = strndup(val, vlen)) == NULL)
			return -1;
		free(j->j_cookies[i].jc_value);
		j->j_cookies[i].jc_value = nval;
		return 1;
	}
	if (j->j_n == JAR_MAX_COOKIES)
		return -1;
	nname = strndup(name, nlen);
	nval = strndup(val, vlen);
	if (nname == NULL || nval == NULL) {
		free(nname);
		free(nval);
		return -1;
	}
	j->j_cookies[j->j_n].jc_name = nname;
	j->j_cookies[j->j_n].jc_value = nval;
	j->j_n++;
	return 1;
}

const char *
jar_get(const struct jar *j, const char *name)
{
	size_t i;

	for (i = 0; i < j->j_n; i++)
		if (strcmp(j->j_cookies[i].jc_name, name) == 0)
			return j->j_cookies[i].jc_value;
	return NULL;
}

int
jar_header(const struct jar *j, char *out, size_t outlen)
{
	size_t i, off = 0;
	int n;

	if (outlen == 0)
		return -1;
	out[0] = '\0';
	for (i = 0; i < j->j_n; i++) {
		n = snprintf(out + off, outlen - off, "%s%s=%s", i ? "; " : "",
		    j->j_cookies[i].jc_name, j->j_cookies[i].jc_value);
		if (n < 0 || (size_t)n >= outlen - off)
			return -1;
		off += (size_t)n;
	}
	return (int)off;
}

void
jar_free(struct jar *j)
{
	while (j->j_n > 0)
		jar_remove(j, j->j_n - 1);
}
