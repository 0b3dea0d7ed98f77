/* The Authorization: Bearer header (RFC 6750 section 2.1). */
#ifndef BEARER_H
#define BEARER_H

#include <stddef.h>

#define BEARER_MAX_TOKEN	8192

/* Returns a pointer into header at the token of "Bearer <token>" (scheme case-insensitive, one
 * or more spaces, token68 characters only, at most BEARER_MAX_TOKEN), with its length in *len;
 * or NULL when header is not such a value. */
const char *bearer_parse(const char *header, size_t *len);

#endif
