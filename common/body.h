/* Parsing of request bodies: JSON objects (strict) and application/x-www-form-urlencoded. */
#ifndef BODY_H
#define BODY_H

#include <stddef.h>
#include <jansson.h>

#define BODY_MAX_DEPTH		8	/* nesting of arrays and objects */
#define BODY_MAX_FIELD		256	/* longest username or password we take */

/* Parses a body that must be one JSON object: no duplicate members, nesting at most
 * BODY_MAX_DEPTH, no NUL anywhere. Returns a new reference, or NULL with *why set to a static
 * human sentence. */
json_t *body_json(const char *buf, size_t len, const char **why);
/* Parses a form body into a JSON object of strings: strict percent-decoding, '+' is a space,
 * duplicate keys and NUL rejected. Returns a new reference, or NULL with *why set. */
json_t *body_form(const char *buf, size_t len, const char **why);
/* Chooses by Content-Type (application/json or application/x-www-form-urlencoded, parameters
 * allowed; NULL is taken as JSON). Returns a new reference, or NULL with *why set and *unsupported
 * set to 1 when the type itself was the problem (HTTP 415). */
json_t *body_parse(const char *content_type, const char *buf, size_t len, const char **why,
    int *unsupported);
/* Takes "username" and "password" from a parsed body: both strings, 1..BODY_MAX_FIELD bytes.
 * Returns 0 with pointers into obj (valid while obj lives), or -1 with *why set. */
int body_credentials(json_t *obj, const char **username, const char **password, const char **why);

#endif
