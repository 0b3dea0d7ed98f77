/* Cookies (RFC 6265): finding one in a Cookie header and building Set-Cookie values. */
#ifndef COOKIE_H
#define COOKIE_H

#include <stddef.h>

/* Copies the value of cookie name from a Cookie header value ("a=b; c=d") into out (outlen
 * bytes, NUL-terminated), with surrounding DQUOTEs removed. The first occurrence wins.
 * Returns the value's length, or -1 when absent, malformed, or too long for out. */
int cookie_get(const char *header, const char *name, char *out, size_t outlen);

struct cookie_attrs {
	long		 max_age;	/* seconds; -1 for a session cookie, 0 to delete */
	int		 secure;
	int		 http_only;
	const char	*same_site;	/* "Lax", "Strict", "None" or NULL */
	const char	*path;		/* NULL for "/" */
};

/* Writes a Set-Cookie value into out. Returns 0, or -1 when name or value holds characters
 * RFC 6265 forbids or out is too small. */
int cookie_build(char *out, size_t outlen, const char *name, const char *value,
    const struct cookie_attrs *a);

#endif
