/* loadgen's command line, the target URL and the credentials file. */
#include "loadgen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

#define CONFIG_MAX_CREDS	100000
#define CONFIG_MAX_LINE		1024

static const char config_usage[] =
"usage: loadgen --url URL --flow session|jwt|refresh|none [--credentials FILE] [options]\n"
"\n"
"Each virtual user logs in once (POST /login), keeps its cookies or its Bearer token,\n"
"then asks for /profile over keep-alive connections. Unlike a browser, it ignores the\n"
"Set-Cookie of answers with status 400 or more: a 401 that clears the session cookie would\n"
"log the user out for good and turn every later request into a failure, and loadgen counts\n"
"each request's own outcome instead.\n"
"\n"
"  --url URL              http://HOST:PORT[/PREFIX] or https://...\n"
"  --flow FLOW            session (cookies), jwt (Bearer token), refresh (jwt, and\n"
"                         POST /refresh at 3/4 of the token's expires_in), none (no login)\n"
"  --credentials FILE     username:password lines; VU k uses line k modulo their number\n"
"  --users N              virtual users (default: the concurrency)\n"
"  --concurrency C        connections, C >= N; VU k owns connections k, k+N, ... (default 10)\n"
"  --threads T            event loops (threads) sharing the users (default 1)\n"
"  --duration SECONDS     how long to run (default 10); with --requests, the hard cap\n"
"  --requests N           stop after N requests (attempts) instead\n"
"  --rate R               open loop: R requests/s in all, latency measured from the\n"
"                         intended send time (coordinated omission corrected)\n"
"  --timeout SECONDS      for each connect and each response (default 5)\n"
"  --cacert FILE          CA certificate to verify an https server with\n"
"  --path PATH            what to ask for after login (default /profile)\n"
"  --json FILE            also write the report as JSON ('-': stdout, the text then\n"
"                         goes to stderr)\n"
"  --max-error-rate F     exit 1 if more than this fraction (0..1) of requests failed\n"
"  --max-p99-ms MS        exit 1 if the 99th percentile latency is above MS\n"
"  --help, --version\n"
"\n"
"Exit status: 0 done, 1 a threshold was exceeded, no user could log in or no request\n"
"succeeded (got an answer below 400), 2 bad usage.\n";

enum {
	OPT_URL = 1, OPT_FLOW, OPT_CREDS, OPT_USERS, OPT_CONC, OPT_THREADS, OPT_DURATION,
	OPT_REQUESTS, OPT_RATE, OPT_TIMEOUT, OPT_CACERT, OPT_PATH, OPT_JSON, OPT_MAXERR,
	OPT_MAXP99
};

static const struct option config_opts[] = {
	{ "url", required_argument, NULL, OPT_URL },
	{ "flow", required_argument, NULL, OPT_FLOW },
	{ "credentials", required_argument, NULL, OPT_CREDS },
	{ "users", required_argument, NULL, OPT_USERS },
	{ "concurrency", required_argument, NULL, OPT_CONC },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "duration", required_argument, NULL, OPT_DURATION },
	{ "requests", required_argument, NULL, OPT_REQUESTS },
	{ "rate", required_argument, NULL, OPT_RATE },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "cacert", required_argument, NULL, OPT_CACERT },
	{ "path", required_argument, NULL, OPT_PATH },
	{ "json", required_argument, NULL, OPT_JSON },
	{ "max-error-rate", required_argument, NULL, OPT_MAXERR },
	{ "max-p99-ms", required_argument, NULL, OPT_MAXP99 },
	{ NULL, 0, NULL, 0 }
};

/* A decimal number in [min, max] for flag, or exit 2. */
static double
config_real(const char *flag, const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min || v > max)
		cli_bad("%s wants a number from %g to %g, not '%s'", flag, min, max, s);
	return v;
}

/* A request path: starts with '/', printable ASCII without spaces. */
static int
config_path_ok(const char *p)
{
	if (p[0] != '/' || strlen(p) > 256)
		return 0;
	for (; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '#')
			return 0;
	return 1;
}

int
config_url(const char *s, struct lg_url *u)
{
	const char *auth, *slash;
	char hostport[sizeof(u->u_authority) + 8];
	size_t alen;

	memset(u, 0, sizeof(*u));
	if (strncasecmp(s, "http://", 7) == 0) {
		auth = s + 7;
	} else if (strncasecmp(s, "https://", 8) == 0) {
		auth = s + 8;
		u->u_tls = 1;
	} else
		return -1;
	slash = strchr(auth, '/');
	alen = slash ? (size_t)(slash - auth) : strlen(auth);
	if (alen == 0 || alen >= sizeof(u->u_authority) || memchr(auth, '@', alen) != NULL)
		return -1;
	memcpy(u->u_authority, auth, alen);
	u->u_authority[alen] = '\0';

	/* cli_addr() wants a port; add the scheme's default when there is none. */
	if ((u->u_authority[0] == '[' && strstr(u->u_authority, "]:") == NULL) ||
	    (u->u_authority[0] != '[' && strchr(u->u_authority, ':') == NULL))
		snprintf(hostport, sizeof(hostport), "%s:%d", u->u_authority, u->u_tls ? 443 : 80);
	else
		snprintf(hostport, sizeof(hostport), "%s", u->u_authority);
	if (cli_addr(hostport, u->u_host, sizeof(u->u_host), &u->u_port) == -1 ||
	    u->u_port == 0)
		return -1;

	if (slash != NULL) {
		if (!config_path_ok(slash) || strchr(slash, '?') != NULL ||
		    strlen(slash) >= sizeof(u->u_base))
			return -1;
		snprintf(u->u_base, sizeof(u->u_base), "%s", slash);
		alen = strlen(u->u_base);
		while (alen > 0 && u->u_base[alen - 1] == '/')
			u->u_base[--alen] = '\0';
	}
	return 0;
}

void
config_parse(struct lg_config *cfg, int argc, char *argv[])
{
	int c, have_duration = 0, have_users = 0, have_conc = 0;

	memset(cfg, 0, sizeof(*cfg));
	cfg->flow = FLOW_SESSION;
	cfg->path = "/profile";
	cfg->users = 10;
	cfg->concurrency = 10;
	cfg->threads = 1;
	cfg->duration = 10;
	cfg->timeout = 5;
	cfg->max_error_rate = -1;
	cfg->max_p99_ms = -1;

	cli_init("loadgen", config_usage);
	while ((c = cli_next(argc, argv, config_opts)) != -1) {
		switch (c) {
		case OPT_URL:
			if (config_url(optarg, &cfg->url) == -1)
				cli_bad("--url wants http[s]://HOST[:PORT][/PREFIX], not '%s'",
				    optarg);
			cfg->url_text = optarg;
			break;
		case OPT_FLOW:
			if (strcmp(optarg, "session") == 0)
				cfg->flow = FLOW_SESSION;
			else if (strcmp(optarg, "jwt") == 0)
				cfg->flow = FLOW_JWT;
			else if (strcmp(optarg, "refresh") == 0)
				cfg->flow = FLOW_REFRESH;
			else if (strcmp(optarg, "none") == 0)
				cfg->flow = FLOW_NONE;
			else
				cli_bad("--flow wants session, jwt, refresh or none, not '%s'",
				    optarg);
			break;
		case OPT_CREDS:
			cfg->credentials = optarg;
			break;
		case OPT_USERS:
			cfg->users = cli_num("--users", optarg, 1, 100000);
			have_users = 1;
			break;
		case OPT_CONC:
			cfg->concurrency = cli_num("--concurrency", optarg, 1, 100000);
			have_conc = 1;
			break;
		case OPT_THREADS:
			cfg->threads = cli_num("--threads", optarg, 1, 64);
			break;
		case OPT_DURATION:
			cfg->duration = config_real("--duration", optarg, 0.001, 86400);
			have_duration = 1;
			break;
		case OPT_REQUESTS:
			cfg->requests = cli_num("--requests", optarg, 1, 1000000000000L);
			break;
		case OPT_RATE:
			cfg->rate = config_real("--rate", optarg, 0.001, 10000000);
			break;
		case OPT_TIMEOUT:
			cfg->timeout = config_real("--timeout", optarg, 0.001, 3600);
			break;
		case OPT_CACERT:
			cfg->cacert = optarg;
			break;
		case OPT_PATH:
			if (!config_path_ok(optarg))
				cli_bad("--path wants a path starting with '/', not '%s'", optarg);
			cfg->path = optarg;
			break;
		case OPT_JSON:
			cfg->json = optarg;
			break;
		case OPT_MAXERR:
			cfg->max_error_rate = config_real("--max-error-rate", optarg, 0, 1);
			break;
		case OPT_MAXP99:
			cfg->max_p99_ms = config_real("--max-p99-ms", optarg, 0, 1e9);
			break;
		}
	}
	if (optind < argc)
		cli_bad("unexpected argument '%s'", argv[optind]);
	if (cfg->url_text == NULL)
		cli_bad("--url is required");
	if (cfg->flow != FLOW_NONE && cfg->credentials == NULL)
		cli_bad("--credentials is required with --flow session or jwt");
	if (cfg->cacert != NULL && !cfg->url.u_tls)
		cli_bad("--cacert only makes sense with an https:// URL");
	if (have_users && !have_conc)
		cfg->concurrency = cfg->users;
	else if (have_conc && !have_users)
		cfg->users = cfg->concurrency;
	if (cfg->users > cfg->concurrency)
		cli_bad("--users %ld needs at least as many connections, not --concurrency %ld",
		    cfg->users, cfg->concurrency);
	if (cfg->requests > 0 && !have_duration)
		cfg->duration = 600;	/* the hard cap of a --requests run */
	if (cfg->threads > cfg->users)
		cfg->threads = cfg->users;	/* a thread without users has nothing to do */
}

/* Splits one "user:password" line at the first ':'. Returns 0 or -1. */
static int
config_cred_line(char *line, struct lg_cred *cr)
{
	char *colon = strchr(line, ':');

	if (colon == NULL || colon == line || colon[1] == '\0')
		return -1;
	*colon = '\0';
	cr->cr_user = strdup(line);
	cr->cr_pass = strdup(colon + 1);
	if (cr->cr_user == NULL || cr->cr_pass == NULL) {
		free(cr->cr_user);
		free(cr->cr_pass);
		return -1;
	}
	return 0;
}

long
config_creds_load(const char *path, struct lg_cred **out, char *why, size_t whylen)
{
	FILE *f = NULL;
	struct lg_cred *creds = NULL, *grown;
	char line[CONFIG_MAX_LINE + 2];
	long n = 0, cap = 0, lineno = 0;
	size_t len;

	*out = NULL;
	if ((f = fopen(path, "r")) == NULL) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		len = strlen(line);
		if (len > CONFIG_MAX_LINE ||
		    (len == sizeof(line) - 1 && line[len - 1] != '\n')) {
			snprintf(why, whylen, "%s:%ld: line too long", path, lineno);
			goto fail;
		}
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if (n == CONFIG_MAX_CREDS) {
			snprintf(why, whylen, "%s: more than %d users", path, CONFIG_MAX_CREDS);
			goto fail;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((grown = realloc(creds, (size_t)cap * sizeof(*creds))) == NULL) {
				snprintf(why, whylen, "out of memory");
				goto fail;
			}
			creds = grown;
		}
		if (config_cred_line(line, &creds[n]) == -1) {
			snprintf(why, whylen, "%s:%ld: want username:password", path, lineno);
			goto fail;
		}
		n++;
	}
	if (ferror(f)) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (n == 0) {
		snprintf(why, whylen, "%s: no username:password line", path);
		goto fail;
	}
	fclose(f);
	*out = creds;
	return n;
fail:
	if (f != NULL)
		fclose(f);
	config_creds_free(creds, n);
	return -1;
}

void
config_creds_free(struct lg_cred *creds, long n)
{
	long i;

	if (creds == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(creds[i].cr_user);
		free(creds[i].cr_pass);
	}
	free(creds);
}
