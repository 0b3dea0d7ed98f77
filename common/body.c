/* Request bodies for POST /login: a strict JSON object or an HTML form, both turned into the
 * same Jansson object so the handlers read credentials one way. Strict because a body that
 * two parsers could read differently (duplicate keys, hidden NULs) is a classic bypass. */
#include "body.h"
#include "digits.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BODY_STR_(x)	#x
#define BODY_STR(x)	BODY_STR_(x)

/* Depth of the deepest array or object in a JSON text, counting brackets outside strings.
 * Jansson has its own limit (2048), far more than a login body needs; checking first also
 * keeps a hostile body from costing a deep recursion. */
static int
body_depth(const char *buf, size_t len)
{
	int depth = 0, max = 0, instr = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (instr) {
			if (buf[i] == '\\')
				i++;	/* the escaped character cannot end the string */
			else if (buf[i] == '"')
				instr = 0;
			continue;
		}
		switch (buf[i]) {
		case '"':
			instr = 1;
			break;
		case '[':
		case '{':
			if (++depth > max)
				max = depth;
			break;
		case ']':
		case '}':
			depth--;
			break;
		}
	}
	return max;
}

json_t *
body_json(const char *buf, size_t len, const char **why)
{
	json_error_t err;
	json_t *obj;

	if (len == 0) {
		*why = "the body is empty";
		return NULL;
	}
	if (memchr(buf, '\0', len) != NULL) {
		*why = "the body contains a NUL byte";
		return NULL;
	}
	if (body_depth(buf, len) > BODY_MAX_DEPTH) {
		*why = "the JSON body is nested too deeply";
		return NULL;
	}
	/* Without JSON_ALLOW_NUL Jansson also refuses "\u0000" inside strings. */
	obj = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
	if (obj == NULL) {
		*why = json_error_code(&err) == json_error_duplicate_key ?
		    "the JSON body has a duplicate key" : "the body is not valid JSON";
		return NULL;
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		*why = "the JSON body must be an object";
		return NULL;
	}
	return obj;
}


/* Decodes one form component of n bytes into out (room for n bytes). Returns the decoded
 * length, or -1 with *why set. */
static long
body_unescape(const char *in, size_t n, char *out, const char **why)
{
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '+') {
			out[o++] = ' ';
		} else if (c == '%') {
			if (n - i < 3) {
				*why = "the form body has a truncated %-escape";
				return -1;
			}
			if ((hi = digits_hex((unsigned char)in[i + 1])) == -1 ||
			    (lo = digits_hex((unsigned char)in[i + 2])) == -1) {
				*why = "the form body has a bad %-escape";
				return -1;
			}
			if ((out[o++] = (char)(hi << 4 | lo)) == '\0') {
				*why = "the form body contains a NUL byte";
				return -1;
			}
			i += 2;
		} else if (c < 0x20 || c == 0x7f) {
			*why = "the form body contains a control character";
			return -1;
		} else {
			out[o++] = (char)c;
		}
	}
	return (long)o;
}

json_t *
body_form(const char *buf, size_t len, const char **why)
{
	const char *p = buf, *end = buf + len, *amp, *eq;
	json_t *obj, *val;
	char *key = NULL, *value = NULL;
	long klen, vlen;

	if ((obj = json_object()) == NULL || (key = malloc(len + 1)) == NULL ||
	    (value = malloc(len + 1)) == NULL) {
		*why = "out of memory";
		goto fail;
	}
	/* An empty form is an empty object: the credentials check then names what is missing. */
	while (len > 0) {
		if ((amp = memchr(p, '&', (size_t)(end - p))) == NULL)
			amp = end;
		/* An empty field ("a=1&&b=2", "a=1&") carries nothing; browsers never send one. */
		if (amp == p) {
			*why = "the form body has an empty field";
			goto fail;
		}
		if ((eq = memchr(p, '=', (size_t)(amp - p))) == NULL)
			eq = amp;
		if ((klen = body_unescape(p, (size_t)(eq - p), key, why)) == -1)
			goto fail;
		vlen = eq == amp ? 0 : body_unescape(eq + 1, (size_t)(amp - eq - 1), value, why);
		if (vlen == -1)
			goto fail;
		if (klen == 0) {
			*why = "the form body has a field without a name";
			goto fail;
		}
		key[klen] = '\0';
		if (json_object_get(obj, key) != NULL) {
			*why = "the form body has a duplicate key";
			goto fail;
		}
		/* Both calls refuse invalid UTF-8, the only way they fail apart from memory. */
		if ((val = json_stringn(value, (size_t)vlen)) == NULL ||
		    json_object_set_new(obj, key, val) == -1) {
			*why = "the form body is not valid UTF-8";
			goto fail;
		}
		if (amp == end)
			break;
		p = amp + 1;
	}
	free(key);
	free(value);
	return obj;
 fail:
	json_decref(obj);
	free(key);
	free(value);
	return NULL;
}

json_t *
body_parse(const char *content_type, const char *buf, size_t len, const char **why,
    int *unsupported)
{
	size_t n;

	*unsupported = 0;
	if (content_type == NULL)
		return body_json(buf, len, why);
	while (*content_type == ' ' || *content_type == '\t')
		content_type++;
	/* The media type ends at its parameters (";charset=utf-8") or trailing whitespace. */
	n = strcspn(content_type, "; \t");
	if (n == strlen("application/json") &&
	    strncasecmp(content_type, "application/json", n) == 0)
		return body_json(buf, len, why);
	if (n == strlen("application/x-www-form-urlencoded") &&
	    strncasecmp(content_type, "application/x-www-form-urlencoded", n) == 0)
		return body_form(buf, len, why);
	*unsupported = 1;
	*why = "the body must be application/json or application/x-www-form-urlencoded";
	return NULL;
}

/* Takes the string member field of obj into *out. Returns 0, or -1 with *why set to one of
 * msg: missing, not a string, bad length. */
static int
body_field(json_t *obj, const char *field, const char *const msg[3], const char **out,
    const char **why)
{
	json_t *v = json_object_get(obj, field);
	size_t n;

	if (v == NULL) {
		*why = msg[0];
		return -1;
	}
	if (!json_is_string(v)) {
		*why = msg[1];
		return -1;
	}
	n = json_string_length(v);
	if (n == 0 || n > BODY_MAX_FIELD) {
		*why = msg[2];
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

int
body_credentials(json_t *obj, const char **username, const char **password, const char **why)
{
	static const char *const umsg[3] = { "username is missing", "username must be a string",
	    "username must be 1 to " BODY_STR(BODY_MAX_FIELD) " bytes long" };
	static const char *const pmsg[3] = { "password is missing", "password must be a string",
	    "password must be 1 to " BODY_STR(BODY_MAX_FIELD) " bytes long" };

	if (!json_is_object(obj)) {
		*why = "the body must be an object";
		return -1;
	}
	if (body_field(obj, "username", umsg, username, why) == -1 ||
	    body_field(obj, "password", pmsg, password, why) == -1)
		return -1;
	return 0;
}
