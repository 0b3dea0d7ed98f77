/*
 * loadgen: a load generator that speaks the login flows. Virtual users log in once, keep their
 * cookies or token, and ask for /profile; the report counts authentication failures (a 401
 * after a successful login) apart from other errors, and counts answers per backend.
 */
#include "loadgen.h"

#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "cli.h"
#include "log.h"

static struct lg_run	 main_run;

static void
main_signal(int sig)
{
	atomic_store(&main_run.stop, 1);
}

/* Resolves the target once, before the run: the load loop must not wait on DNS. */
static void
main_resolve(const struct lg_url *u, struct lg_run *run)
{
	struct addrinfo hints, *res;
	char port[8];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", u->u_port);
	if ((rc = getaddrinfo(u->u_host, port, &hints, &res)) != 0)
		cli_bad("cannot resolve %s: %s", u->u_host, gai_strerror(rc));
	memcpy(&run->addr, res->ai_addr, res->ai_addrlen);
	run->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
}

/* The client TLS context: verify the peer against --cacert (or the system's CAs). Owned by
 * the caller, freed with SSL_CTX_free(). */
static SSL_CTX *
main_tls(const struct lg_config *cfg)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		fatalx("cannot create a TLS context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (cfg->cacert != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, cfg->cacert, NULL) != 1)
			cli_bad("--cacert %s: not a readable PEM certificate", cfg->cacert);
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		fatalx("cannot load the system's CA certificates");
	return ctx;
}

/* How many requests got an answer below 400. None at all is a failed run (SPEC.md: loadgen
 * exits 1 when no request succeeded), whatever the thresholds say. */
static uint64_t
main_succeeded(const struct stats *st)
{
	uint64_t n = 0;
	size_t i;

	for (i = 200; i < 400 && i < STATS_STATUS_MAX; i++)
		n += st->st_status[i];
	return n;
}

int
main(int argc, char *argv[])
{
	struct lg_config cfg;
	struct lg_cred *creds = NULL;
	struct worker *workers;
	struct stats total;
	struct sigaction sa;
	char why[512];
	uint64_t end;
	long i;
	int rc = 0;

	config_parse(&cfg, argc, argv);
	log_init("loadgen", 0);
	if (cfg.flow != FLOW_NONE &&
	    (main_run.ncreds = config_creds_load(cfg.credentials, &creds, why, sizeof(why))) < 0)
		cli_bad("--credentials %s", why);
	main_run.cfg = &cfg;
	main_run.creds = creds;
	main_resolve(&cfg.url, &main_run);
	if (cfg.url.u_tls)
		main_run.ssl = main_tls(&cfg);
	if (cfg.rate > 0)
		main_run.interval_us = 1e6 * (double)cfg.concurrency / cfg.rate;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = main_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if ((workers = calloc((size_t)cfg.threads, sizeof(*workers))) == NULL)
		fatalx("out of memory");
	for (i = 0; i < cfg.threads; i++)
		if (vu_worker_init(&workers[i], &main_run, (size_t)i, (size_t)cfg.threads) == -1)
			fatalx("cannot set up the workers");
	main_run.start_us = lg_now_us();
	main_run.end_us = main_run.start_us + (uint64_t)(cfg.duration * 1e6);
	for (i = 0; i < cfg.threads; i++)
		if (pthread_create(&workers[i].w_thread, NULL, vu_worker_run, &workers[i]) != 0)
			fatalx("cannot start a worker thread");
	report_progress_start(workers, (size_t)cfg.threads, main_run.start_us);
	for (i = 0; i < cfg.threads; i++)
		pthread_join(workers[i].w_thread, NULL);
	end = lg_now_us();
	report_progress_stop();

	stats_init(&total);
	for (i = 0; i < cfg.threads; i++) {
		stats_sample(&workers[i].w_stats, end - main_run.start_us);
		stats_merge(&total, &workers[i].w_stats);
		vu_worker_free(&workers[i]);
	}
	free(workers);
	total.st_duration = (double)(end - main_run.start_us) / 1e6;

	/* With --json - the JSON owns stdout, so that it can be piped; the text goes aside. */
	report_text(&total, &cfg, cfg.json != NULL && strcmp(cfg.json, "-") == 0 ? stderr : stdout);
	fflush(stdout);
	if (cfg.json != NULL && report_json(&total, &cfg, cfg.json) == -1)
		rc = 1;
	if (report_check(&total, &cfg) == -1)
		rc = 1;
	if (cfg.flow != FLOW_NONE && total.st_logins_ok == 0) {
		fprintf(stderr, "loadgen: no virtual user could log in\n");
		rc = 1;
	} else if (main_succeeded(&total) == 0) {
		fprintf(stderr, "loadgen: no request succeeded (no answer below 400)\n");
		rc = 1;
	}
	config_creds_free(creds, main_run.ncreds);
	if (main_run.ssl != NULL)
		SSL_CTX_free(main_run.ssl);
	return rc;
}
