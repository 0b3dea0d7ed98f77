/* libFuzzer harness for common/cookie.c. The input is "<outlen byte><name>\n<header>": the
 * header goes to cookie_get() as a Cookie header, and name, header pieces and flags to
 * cookie_build(). Whatever cookie_build() accepts must read back unchanged through
 * cookie_get(), the way a browser would return it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cookie.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* A NUL-terminated copy of n bytes. Returns a new string the caller frees. */
static char *
fuzz_strndup(const uint8_t *p, size_t n)
{
	char *s;

	if ((s = malloc(n + 1)) == NULL)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* cookie_get() with an exact-size out buffer; checks what it promises about the result. */
static void
fuzz_get(const char *header, const char *name, size_t outlen)
{
	char *out;
	int n;

	if ((out = malloc(outlen > 0 ? outlen : 1)) == NULL)
		abort();
	n = cookie_get(header, name, out, outlen);
	if (n >= 0 && ((size_t)n >= outlen || strlen(out) != (size_t)n))
		abort();
	free(out);
}

static void
fuzz_build(const char *name, const char *value, const char *path, uint8_t flags,
    size_t outlen)
{
	static const char *const samesite[4] = { NULL, "Lax", "Strict", "None" };
	struct cookie_attrs a = {
		.max_age = (flags & 3) == 3 ? -1 : (long)(flags & 3) * 3600 - 1,
		.secure = flags >> 2 & 1,
		.http_only = flags >> 3 & 1,
		.same_site = samesite[flags >> 4 & 3],
		.path = flags & 0x40 ? path : NULL,
	};
	char *out, back[4096];
	int n;

	if ((out = malloc(outlen > 0 ? outlen : 1)) == NULL)
		abort();
	if (cookie_build(out, outlen, name, value, &a) == 0) {
		if (strlen(out) >= outlen)
			abort();
		/* Sent back as "name=value; Path=..." the first pair is ours again. */
		n = cookie_get(out, name, back, sizeof(back));
		if (strlen(value) < sizeof(back) &&
		    (n != (int)strlen(value) || strcmp(back, value) != 0))
			abort();
	}
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl;
	char *name, *header;
	size_t outlen;

	if (size < 1)
		return 0;
	outlen = data[0];
	data++;
	size--;
	if ((nl = memchr(data, '\n', size)) == NULL)
		nl = data + size;
	name = fuzz_strndup(data, (size_t)(nl - data));
	header = fuzz_strndup(nl < data + size ? nl + 1 : nl,
	    (size_t)(data + size - (nl < data + size ? nl + 1 : nl)));

	fuzz_get(header, name, outlen);
	fuzz_get(header, name, 4096);
	fuzz_get(header, "sid", outlen);
	fuzz_build(name, header, header, (uint8_t)outlen, 4096);
	fuzz_build(name, header, "/", (uint8_t)outlen, (size_t)outlen);
	free(name);
	free(header);
	return 0;
}
