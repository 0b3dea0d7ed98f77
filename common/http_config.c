/* The flags both login servers share (--listen, --id, --users, ...; see http.h). */
#include "http_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char http_usage[] =
    "  --listen HOST:PORT      where to listen (required)\n"
    "  --id NAME               instance name sent back in X-Served-By (required)\n"
    "  --users FILE            the users file (required)\n"
    "  --threads N             event-loop threads sharing the port (default 1)\n"
    "  --workers N             password-hashing threads (default 2)\n"
    "  --timeout SECONDS       deadline for a request head, for its body, and for an\n"
    "                          idle connection or a stalled write (default 10)\n"
    "  --trust-proxy ADDR      believe X-Forwarded-* from this address (repeatable;\n"
    "                          default 127.0.0.1 and ::1)\n"
    "  --quiet                 no access log\n"
    "  --debug                 debug logging\n"
    "  --help, --version\n";

void
http_cli_init(const char *prog, const char *usage)
{
	static char text[4096];

	snprintf(text, sizeof(text), "%s\nServer options (both login servers):\n%s", usage,
	    http_usage);
	cli_init(prog, text);
}

void
http_config_init(struct http_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->threads = 1;
	cfg->workers = 2;
	cfg->timeout_s = 10;
	strcpy(cfg->trusted[cfg->ntrusted++], "127.0.0.1");
	strcpy(cfg->trusted[cfg->ntrusted++], "::1");
}

/* Writes the address in s as inet_ntop() spells it (as the engine reports peers), so that the
 * trusted-proxy check can compare strings. Returns 0, or -1 when s is no IP address. */
static int
http_canonical_ip(const char *s, char *out, size_t outlen)
{
	unsigned char a[sizeof(struct in6_addr)];
	int af = strchr(s, ':') ? AF_INET6 : AF_INET;

	if (inet_pton(af, s, a) != 1 || inet_ntop(af, a, out, (socklen_t)outlen) == NULL)
		return -1;
	return 0;
}

int
http_config_opt(struct http_config *cfg, int opt, const char *arg)
{
	static int trust_given;

	switch (opt) {
	case HTTP_OPT_LISTEN:
		cli_addr_or_die("--listen", arg, cfg->host, sizeof(cfg->host), &cfg->port);
		cfg->have_listen = 1;
		return 1;
	case HTTP_OPT_ID:
		if (*arg == '\0' || strlen(arg) > 64 || strpbrk(arg, "\r\n\"\\") != NULL)
			cli_bad("--id wants a short name without quotes or line breaks");
		cfg->id = arg;
		return 1;
	case HTTP_OPT_USERS:
		cfg->users_path = arg;
		return 1;
	case HTTP_OPT_THREADS:
		cfg->threads = (int)cli_num("--threads", arg, 1, HTTP_MAX_THREADS);
		return 1;
	case HTTP_OPT_WORKERS:
		cfg->workers = (int)cli_num("--workers", arg, 1, 64);
		return 1;
	case HTTP_OPT_TIMEOUT:
		cfg->timeout_s = (int)cli_num("--timeout", arg, 1, 3600);
		return 1;
	case HTTP_OPT_TRUST:
		if (!trust_given) {	/* the first --trust-proxy replaces the defaults */
			cfg->ntrusted = 0;
			trust_given = 1;
		}
		if (cfg->ntrusted >= (int)(sizeof(cfg->trusted) / sizeof(cfg->trusted[0])))
			cli_bad("too many --trust-proxy addresses");
		if (http_canonical_ip(arg, cfg->trusted[cfg->ntrusted],
		    sizeof(cfg->trusted[0])) == -1)
			cli_bad("--trust-proxy wants an IPv4 or IPv6 address, not '%s'", arg);
		cfg->ntrusted++;
		return 1;
	case HTTP_OPT_QUIET:
		cfg->quiet = 1;
		return 1;
	case HTTP_OPT_DEBUG:
		cfg->debug = 1;
		return 1;
	}
	return 0;
}

void
http_config_check(const struct http_config *cfg)
{
	if (!cfg->have_listen)
		cli_bad("--listen HOST:PORT is required");
	if (cfg->id == NULL)
		cli_bad("--id NAME is required");
	if (cfg->users_path == NULL)
		cli_bad("--users FILE is required");
}



int
http_trusted(const struct http_config *cfg, const char *addr)
{
	int i;

	for (i = 0; i < cfg->ntrusted; i++)
		if (strcmp(cfg->trusted[i], addr) == 0)
			return 1;
	return 0;
}
