/*
 * loadgen's private header: the run configuration, the latency histogram, the cookie jar, the
 * HTTP responses (framed by common/parse.c), the statistics each worker thread keeps, and the virtual users.
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <sys/socket.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <pthread.h>

#include "parse.h"

struct evbuffer;
struct event;
struct event_base;
struct bufferevent;
struct ssl_ctx_st;

/* ---- config.c: flags, target URL and credentials ---- */

enum lg_flow {
	FLOW_SESSION,		/* log in, then present the cookies the server set */
	FLOW_JWT,		/* log in, then present the access token as a Bearer header */
	FLOW_REFRESH,		/* FLOW_JWT, and POST /refresh before the access token expires */
	FLOW_NONE		/* no login: a plain GET loop, for comparing with wrk */
};

struct lg_url {
	int		 u_tls;
	char		 u_host[256];		/* without brackets, for connect and TLS checks */
	unsigned short	 u_port;
	char		 u_authority[300];	/* the Host header */
	char		 u_base[512];		/* path prefix without trailing '/', maybe "" */
};

struct lg_cred {
	char		*cr_user;
	char		*cr_pass;
};

struct lg_config {
	struct lg_url	 url;
	const char	*url_text;
	enum lg_flow	 flow;
	const char	*credentials;
	const char	*path;		/* what each VU asks for after logging in */
	long		 users;
	long		 concurrency;
	long		 threads;
	double		 duration;	/* seconds; also the hard cap when requests is set */
	long		 requests;	/* 0: bounded by duration only */
	double		 rate;		/* requests/s for the open loop; 0 for the closed loop */
	double		 timeout;	/* seconds, for connecting and for each response */
	const char	*cacert;
	const char	*json;
	double		 max_error_rate;	/* < 0: no threshold */
	double		 max_p99_ms;		/* < 0: no threshold */
};

/* Fills cfg from argv; bad or conflicting flags print one line and exit 2 (see cli.h). */
void	config_parse(struct lg_config *cfg, int argc, char *argv[]);
/* Parses "http[s]://HOST[:PORT][/PATH]". Returns 0, or -1 when malformed. */
int	config_url(const char *s, struct lg_url *u);
/*
 * Reads "username:password" lines (blank lines and lines starting with '#' skipped). Returns
 * the number read (at least one) and a malloc'd array in *out that the caller frees with
 * config_creds_free(), or -1 with a reason in why (whylen bytes).
 */
long	config_creds_load(const char *path, struct lg_cred **out, char *why, size_t whylen);
/* Frees what config_creds_load() returned; takes ownership of creds. */
void	config_creds_free(struct lg_cred *creds, long n);

/* ---- hist.c: log-linear latency histogram (HdrHistogram-like) ---- */

/*
 * Values below HIST_SUB are kept exactly; above, each power of two is split into HIST_HALF
 * buckets, so a bucket's width is at most 1/HIST_HALF of its lower bound: the relative error of
 * a reported value is below 1/(2*HIST_HALF) (0.8%). Values above 2^40 us are clamped.
 */
#define HIST_SUB_BITS	7
#define HIST_SUB	(1 << HIST_SUB_BITS)
#define HIST_HALF	(HIST_SUB / 2)
#define HIST_MAX_BITS	40
#define HIST_BUCKETS	((HIST_MAX_BITS - HIST_SUB_BITS + 2) * HIST_HALF)

struct hist {
	uint64_t	 h_count;
	uint64_t	 h_min;
	uint64_t	 h_max;
	double		 h_sum;
	uint64_t	 h_buckets[HIST_BUCKETS];
};

void		hist_init(struct hist *h);
void		hist_record(struct hist *h, uint64_t v);
void		hist_merge(struct hist *dst, const struct hist *src);
/* The value at percentile p (0 < p <= 100); 0 when empty. */
uint64_t	hist_percentile(const struct hist *h, double p);
double		hist_mean(const struct hist *h);
/* The bucket a value falls into and that bucket's lower bound: exposed for the tests. */
size_t		hist_index(uint64_t v);
uint64_t	hist_lower(size_t idx);

/* ---- jar.c: the cookies one virtual user holds, like a browser does for one site ---- */

#define JAR_MAX_COOKIES	32
#define JAR_MAX_NAME	256
#define JAR_MAX_VALUE	4096

struct jar_cookie {
	char		*jc_name;
	char		*jc_value;
};

struct jar {
	struct jar_cookie j_cookies[JAR_MAX_COOKIES];
	size_t		 j_n;
};

void	jar_init(struct jar *j);
/*
 * Applies one Set-Cookie header value (len bytes, not NUL-terminated): adds or replaces the
 * cookie, or removes it when Max-Age <= 0 or Expires is in the past. Returns 1 when the jar
 * changed, 0 when not, -1 when the header is malformed or over the limits (jar unchanged).
 * The jar keeps its own copies of name and value, freed by jar_free().
 */
int	jar_set(struct jar *j, const char *hdr, size_t len);
/* The value of cookie name, owned by the jar (valid until the next jar_set or jar_free). */
const char *jar_get(const struct jar *j, const char *name);
/* Writes the Cookie header value "a=1; b=2" into out. Returns its length, or -1 if too small. */
int	jar_header(const struct jar *j, char *out, size_t outlen);
/* Frees every cookie; the jar is empty and reusable afterwards. */
void	jar_free(struct jar *j);

/* ---- resp.c: HTTP/1.1 responses over an evbuffer, framed by the shared parser (parse.h) ---- */

#define RESP_MAX_HEAD	16384
#define RESP_MAX_BODY	65536	/* for the bodies we keep (login answers) */

enum resp_state {
	RESP_HEAD,
	RESP_BODY_LENGTH,
	RESP_CHUNKED,
	RESP_BODY_EOF,		/* no length given: the body ends when the server closes */
	RESP_DONE
};

struct resp {
	enum resp_state	 r_state;
	int		 r_status;
	int		 r_close;		/* the server will close after this response */
	int		 r_jar_changed;
	uint64_t	 r_left;		/* bytes left in a Content-Length body */
	struct parse_chunk r_chunk;		/* the decoder of a chunked body */
	size_t		 r_kept;
	char		 r_served_by[64];	/* X-Served-By, "" when absent */
	struct jar	*r_jar;			/* where Set-Cookie of status < 400 goes */
	struct evbuffer	*r_body;		/* where the body goes; NULL to discard it */
};

/* Prepares r for the next response. jar and body are borrowed, not owned. */
void	resp_reset(struct resp *r, struct jar *jar, struct evbuffer *body);
/* Consumes what it can from in. Returns 1 when the response is complete, 0 for more, -1 on a
 * protocol error (bad syntax, a limit exceeded). */
int	resp_feed(struct resp *r, struct evbuffer *in);
/* The connection reached EOF: returns 1 if that completes a read-until-close body, else -1. */
int	resp_eof(struct resp *r);

/* ---- stats.c: what one worker counts; merged at the end ---- */

enum lg_err {
	ERR_CONNECT,		/* could not connect (refused, unreachable, no answer in time) */
	ERR_TLS,		/* the TLS handshake failed (e.g. the certificate did not verify) */
	ERR_TIMEOUT,		/* no complete response within --timeout */
	ERR_READ,		/* the connection failed or closed before the response ended */
	ERR_PROTOCOL,		/* the response was not valid HTTP or broke a limit */
	ERR__MAX
};

#define STATS_STATUS_MAX	600
#define STATS_BACKENDS		64
#define STATS_SECONDS		3600	/* the per-second series covers the first hour */

/* What one second of the run brought (the series in --json, e.g. for a failover chart). */
struct stats_second {
	uint32_t	 ss_ok;			/* responses with status < 400 */
	uint32_t	 ss_http_4xx;
	uint32_t	 ss_http_5xx;
	uint32_t	 ss_errors[ERR__MAX];
};

/* Totals as of the last stats_sample(): the base of the next second's share. */
struct stats_snap {
	uint64_t	 sn_requests;
	uint64_t	 sn_http_4xx;
	uint64_t	 sn_http_5xx;
	uint64_t	 sn_errors[ERR__MAX];
};

struct stats_backend {
	char		 sb_name[64];
	uint64_t	 sb_n;
};

struct stats {
	uint64_t	 st_requests;		/* profile responses received */
	uint64_t	 st_status[STATS_STATUS_MAX];
	uint64_t	 st_errors[ERR__MAX];
	uint64_t	 st_auth_failures;	/* 401 after a successful login */
	uint64_t	 st_logins_ok;
	uint64_t	 st_logins_failed;
	struct stats_backend st_backends[STATS_BACKENDS];
	size_t		 st_nbackends;
	uint64_t	 st_backends_other;	/* names beyond STATS_BACKENDS */
	uint64_t	 st_no_backend;		/* responses without X-Served-By */
	struct hist	 st_latency;		/* microseconds */
	double		 st_duration;		/* seconds, set once merged */
	struct stats_second st_series[STATS_SECONDS];
	size_t		 st_nseconds;		/* seconds of st_series in use */
	struct stats_snap st_snap;
	/* Published by stats_sample() for the progress line, read by another thread. */
	atomic_uint_fast64_t st_live_requests;
	atomic_uint_fast64_t st_live_errors;	/* transport errors */
	atomic_uint_fast64_t st_live_http_errors;	/* status >= 400 */
};

void		stats_init(struct stats *st);
void		stats_backend(struct stats *st, const char *name);
void		stats_merge(struct stats *dst, const struct stats *src);
/*
 * Adds what was counted since the last call to the second the run is in (elapsed_us since its
 * start), and publishes the totals for the progress line. The worker calls it on every tick,
 * and once more when the run is over.
 */
void		stats_sample(struct stats *st, uint64_t elapsed_us);
const char	*stats_err_name(enum lg_err e);
/* Failed share of all attempts: transport errors plus responses with status >= 400. */
double		stats_error_rate(const struct stats *st);

/* ---- report.c: human text and the contract's JSON ---- */

void	report_text(const struct stats *st, const struct lg_config *cfg, FILE *out);
/* Writes the JSON report to path. Returns 0, or -1 (logged). */
int	report_json(const struct stats *st, const struct lg_config *cfg, const char *path);
/* Checks the thresholds; prints each one exceeded on stderr. Returns 0 when all hold. */
int	report_check(const struct stats *st, const struct lg_config *cfg);

struct worker;
/*
 * When stderr is a terminal, starts a thread that rewrites one progress line there twice a
 * second (elapsed, requests, requests/s, errors) from the workers' published totals; otherwise
 * does nothing. workers must outlive report_progress_stop(), which ends the thread and clears
 * the line.
 */
void	report_progress_start(const struct worker *workers, size_t n, uint64_t start_us);
void	report_progress_stop(void);

/* ---- vu.c: virtual users and their connections, one event loop per worker thread ---- */

struct lg_run {
	const struct lg_config	*cfg;
	struct ssl_ctx_st	*ssl;
	struct sockaddr_storage	 addr;
	socklen_t		 addrlen;
	const struct lg_cred	*creds;
	long			 ncreds;
	atomic_long		 claimed;	/* requests handed out, for --requests */
	atomic_int		 stop;		/* set by SIGINT/SIGTERM */
	uint64_t		 start_us;
	uint64_t		 end_us;	/* hard wall-clock cap */
	double			 interval_us;	/* open loop: gap between one connection's sends */
};

struct vu;
struct conn;

struct worker {
	struct lg_run	*w_run;
	struct event_base *w_base;
	struct event	*w_tick;
	struct vu	*w_vus;
	size_t		 w_nvus;
	struct conn	*w_conns;
	size_t		 w_nconns;
	size_t		 w_active;	/* connections not finished */
	int		 w_stopping;
	uint64_t	 w_rand;
	struct stats	 w_stats;
	pthread_t	 w_thread;
};

/*
 * Sets up worker idx of nworkers: its share of the virtual users (VU k lives in worker
 * k % nworkers) and their connections (connection i belongs to VU i % users). Returns 0 or -1
 * (logged); free with vu_worker_free() either way.
 */
int	vu_worker_init(struct worker *w, struct lg_run *run, size_t idx, size_t nworkers);
/* Runs the worker's event loop until the run ends; a pthread start routine. */
void	*vu_worker_run(void *arg);
/* Frees what vu_worker_init() allocated; w->w_stats stays valid. */
void	vu_worker_free(struct worker *w);

static inline uint64_t
lg_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#endif
