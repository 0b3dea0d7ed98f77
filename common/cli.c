/* Shared command-line handling; see cli.h. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cli_prog = "auth";
static const char *cli_usage = "";

void
cli_init(const char *prog, const char *usage)
{
	cli_prog = prog;
	cli_usage = usage;
}

void
cli_bad(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see --help)\n");
	exit(2);
}

int
cli_next(int argc, char *argv[], const struct option *opts)
{
	static struct option all[64];
	static int ready;
	size_t n = 0;
	int c;

	if (!ready) {
		while (opts[n].name != NULL && n < 60) {
			all[n] = opts[n];
			n++;
		}
		all[n++] = (struct option){ "help", no_argument, NULL, 'h' };
		all[n++] = (struct option){ "version", no_argument, NULL, 'V' };
		all[n] = (struct option){ 0 };
		ready = 1;
		opterr = 0;
	}
	c = getopt_long(argc, argv, "+:", all, NULL);
	switch (c) {
	case 'h':
		fputs(cli_usage, stdout);
		exit(0);
	case 'V':
		printf("%s %s\n", cli_prog, AUTH_VERSION);
		exit(0);
	case ':':
		cli_bad("option %s needs a value", argv[optind - 1]);
	case '?':
		cli_bad("unknown option %s", argv[optind - 1]);
	default:
		return c;
	}
}

long
cli_num(const char *flag, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		cli_bad("%s wants a whole number from %ld to %ld, not '%s'", flag, min, max, s);
	return v;
}

int
cli_addr(const char *s, char *host, size_t hostlen, unsigned short *port)
{
	const char *colon, *h = s;
	size_t hl;
	char *end;
	long p;

	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - s);
		if (memchr(s, ':', hl) != NULL)
			return -1;	/* bare IPv6 needs brackets */
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || p < 0 || p > 65535)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (unsigned short)p;
	return 0;
}

void
cli_addr_or_die(const char *flag, const char *s, char *host, size_t hostlen,
    unsigned short *port)
{
	if (cli_addr(s, host, hostlen, port) == -1)
		cli_bad("%s wants HOST:PORT, not '%s'", flag, s);
}
