/* Strict parsing of the numbers HTTP carries (Content-Length, chunk sizes, percent escapes):
 * digits only, no sign, no blanks, no "0x", so that two parsers of one message never disagree
 * about where it ends. */
#ifndef DIGITS_H
#define DIGITS_H

#include <stddef.h>
#include <stdint.h>

/* The value of the hexadecimal digit c (either case), or -1. */
int digits_hex(int c);

/* Parses len decimal digits (1 to maxdigits of them, maxdigits at most 19) into *out.
 * Returns 0, or -1 when s holds anything else. */
int digits_decimal(const char *s, size_t len, size_t maxdigits, uint64_t *out);

#endif
