/* libFuzzer harness for common/body.c: the first byte picks a Content-Type (JSON, form,
 * with parameters, odd case, missing, unsupported), the rest is the body. Whatever parses must
 * be an object, and credentials taken from it must keep body.h's promises: strings of 1 to
 * BODY_MAX_FIELD bytes without a hidden NUL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_credentials(json_t *obj)
{
	const char *user = NULL, *pass = NULL, *why = NULL;

	if (body_credentials(obj, &user, &pass, &why) == 0) {
		if (strlen(user) == 0 || strlen(user) > BODY_MAX_FIELD ||
		    strlen(pass) == 0 || strlen(pass) > BODY_MAX_FIELD)
			abort();
		/* A NUL inside would let "alice\0x" log in as "alice". */
		if (strlen(user) != json_string_length(json_object_get(obj, "username")) ||
		    strlen(pass) != json_string_length(json_object_get(obj, "password")))
			abort();
	} else if (why == NULL) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const types[8] = {
		NULL, "application/json", "application/x-www-form-urlencoded",
		"application/json; charset=utf-8", " APPLICATION/X-WWW-FORM-URLENCODED ;x=y",
		"text/plain", "application/jsonx", "",
	};
	const char *why = NULL;
	char *buf;
	json_t *obj;
	int unsupported = -1;

	if (size < 1)
		return 0;
	/* An exact-size copy: the parsers get a length, never a NUL to stop at. */
	if ((buf = malloc(size - 1 > 0 ? size - 1 : 1)) == NULL)
		abort();
	memcpy(buf, data + 1, size - 1);
	obj = body_parse(types[data[0] & 7], buf, size - 1, &why, &unsupported);
	if (obj != NULL) {
		if (!json_is_object(obj) || unsupported != 0)
			abort();
		fuzz_credentials(obj);
		json_decref(obj);
	} else if (why == NULL || (unsupported != 0 && unsupported != 1)) {
		abort();
	}
	free(buf);
	return 0;
}
