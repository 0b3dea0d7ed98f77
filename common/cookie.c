/* Cookies by RFC 6265: reading one cookie out of a Cookie header (section 5.4 as user agents
 * send it, section 4.1.1 for what a value may hold) and building Set-Cookie values that every
 * browser parses the same way. */
#include "cookie.h"

#include <stdio.h>
#include <string.h>

/* cookie-octet: US-ASCII without CTLs, whitespace, DQUOTE, comma, semicolon and backslash. */
static int
cookie_octet(unsigned char c)
{
	return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
	    (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

/* A cookie name is an HTTP token (RFC 9110 section 5.6.2). */
static int
cookie_tchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int
cookie_get(const char *header, const char *name, char *out, size_t outlen)
{
	const char *p = header, *pair, *end, *eq, *v, *vend;
	size_t namelen = strlen(name), n, i;

	if (header == NULL || namelen == 0)
		return -1;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t')
			p++;
		pair = p;
		end = strchr(p, ';');
		if (end == NULL)
			end = p + strlen(p);
		p = *end == ';' ? end + 1 : end;
		/* Other cookies may be junk we never set; only the one asked for must be clean. */
		eq = memchr(pair, '=', (size_t)(end - pair));
		if (eq == NULL || (size_t)(eq - pair) != namelen ||
		    memcmp(pair, name, namelen) != 0)
			continue;
		v = eq + 1;
		vend = end;
		while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
			vend--;
		if (vend - v >= 2 && v[0] == '"' && vend[-1] == '"') {
			v++;
			vend--;
		}
		n = (size_t)(vend - v);
		for (i = 0; i < n; i++)
			if (!cookie_octet((unsigned char)v[i]))
				return -1;
		if (n >= outlen || n > 0x7fffffff)
			return -1;
		memcpy(out, v, n);
		out[n] = '\0';
		return (int)n;
	}
	return -1;
}

int
cookie_build(char *out, size_t outlen, const char *name, const char *value,
    const struct cookie_attrs *a)
{
	const char *path = a->path != NULL ? a->path : "/";
	char maxage[32] = "";
	const char *s;
	int n;

	if (*name == '\0')
		return -1;
	for (s = name; *s != '\0'; s++)
		if (!cookie_tchar((unsigned char)*s))
			return -1;
	for (s = value; *s != '\0'; s++)
		if (!cookie_octet((unsigned char)*s))
			return -1;
	/* path-value: any CHAR except CTLs or ";" */
	for (s = path; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == ';')
			return -1;
	if (a->same_site != NULL && strcmp(a->same_site, "Lax") != 0 &&
	    strcmp(a->same_site, "Strict") != 0 && strcmp(a->same_site, "None") != 0)
		return -1;
	/* Browsers drop SameSite=None cookies that are not Secure: fail loudly here instead. */
	if (a->same_site != NULL && strcmp(a->same_site, "None") == 0 && !a->secure)
		return -1;
	if (a->max_age < -1)
		return -1;
	if (a->max_age >= 0)
		snprintf(maxage, sizeof(maxage), "; Max-Age=%ld", a->max_age);
	n = snprintf(out, outlen, "%s=%s; Path=%s%s%s%s%s%s", name, value, path, maxage,
	    a->secure ? "; Secure" : "", a->http_only ? "; HttpOnly" : "",
	    a->same_site != NULL ? "; SameSite=" : "", a->same_site != NULL ? a->same_site : "");
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return 0;
}
