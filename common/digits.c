/* Strict number parsing for HTTP; see digits.h. */
#include "digits.h"

int
digits_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
digits_decimal(const char *s, size_t len, size_t maxdigits, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > maxdigits || maxdigits > 19)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}
