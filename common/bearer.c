/* Parsing "Authorization: Bearer <token68>" (RFC 6750 section 2.1). Anything else is refused
 * rather than guessed at, so the JWT layer only ever sees a clean, bounded token. */
#include "bearer.h"

#include <string.h>
#include <strings.h>

/* token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static int
bearer_token68_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("-._~+/", c) != NULL);
}

const char *
bearer_parse(const char *header, size_t *len)
{
	const char *tok, *p;
	size_t n;

	if (header == NULL || strncasecmp(header, "Bearer", 6) != 0 || header[6] != ' ')
		return NULL;
	tok = header + 6;
	while (*tok == ' ')
		tok++;
	for (p = tok; bearer_token68_char((unsigned char)*p); p++)
		;
	if (p == tok)
		return NULL;
	while (*p == '=')
		p++;
	n = (size_t)(p - tok);
	/* Trailing whitespace is not part of a field value (RFC 9110 section 5.5); allow it in
	 * case a proxy left some. */
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '\0' || n > BEARER_MAX_TOKEN)
		return NULL;
	*len = n;
	return tok;
}
