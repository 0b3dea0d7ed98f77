/*
 * The HTTP server scaffolding of both login servers (see http.h): threads, listeners, routing,
 * replies, request ids, access log, /healthz, /metrics, the login front half and graceful stop.
 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/queue.h>

#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/rand.h>

#include "bearer.h"
#include "body.h"
#include "cookie.h"
#include "cli.h"
#include "log.h"
#include "pool.h"

/* evhttp buffers at most this much body; the routes then refuse more than HTTP_MAX_BODY with our
 * own JSON 413 (evhttp's own 413 for larger bodies has an HTML body we cannot change). */
#define HTTP_HARD_MAX_BODY	65536
#define HTTP_STOP_WAIT_S	5
#define HTTP_MAX_ROUTES		16
#define HTTP_MAX_REASONS	32

struct http_server {
	const struct http_config *hs_cfg;
	const struct http_app	*hs_app;
	struct users		*hs_users;
	struct pool		*hs_pool;
	struct http_thread	*hs_threads;
	time_t			 hs_started;
	char			 hs_idprefix[9];	/* random, so ids differ across restarts */
	atomic_int		 hs_stopping;
};

static const char http_usage[] =
    "  --listen HOST:PORT      where to listen (required)\n"
    "  --id NAME               instance name sent back in X-Served-By (required)\n"
    "  --users FILE            the users file (required)\n"
    "  --threads N             event-loop threads sharing the port (default 1)\n"
    "  --workers N             password-hashing threads (default 2)\n"
    "  --timeout SECONDS       idle/read/write timeout per connection (default 10)\n"
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

/* ---- Metrics: process-wide counters, updated by every thread without locks ---- */

static const int metric_statuses[] = { 200, 204, 400, 401, 403, 404, 405, 413, 415, 429, 500,
    502, 503, 504 };
#define NSTATUS (sizeof(metric_statuses) / sizeof(metric_statuses[0]))
static const double metric_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1, 2.5, 5 };
#define NBOUNDS (sizeof(metric_bounds) / sizeof(metric_bounds[0]))

static struct {
	/* [route][status]; route HTTP_MAX_ROUTES is "other", status NSTATUS is "other" */
	atomic_ulong	requests[HTTP_MAX_ROUTES + 1][NSTATUS + 1];
	atomic_ulong	latency[NBOUNDS + 1];
	atomic_ulong	latency_us_sum;
	const char	*reason_name[HTTP_MAX_REASONS];
	atomic_ulong	reason_count[HTTP_MAX_REASONS];
	atomic_int	nreasons;
	pthread_mutex_t	reason_mu;
} metrics = { .reason_mu = PTHREAD_MUTEX_INITIALIZER };

static const char *route_names[HTTP_MAX_ROUTES + 1];
static struct http_server *http_server_self;	/* one server per process */

static void
metrics_count(int route, int status, double seconds)
{
	size_t s, b;

	for (s = 0; s < NSTATUS && metric_statuses[s] != status; s++)
		;
	atomic_fetch_add(&metrics.requests[route][s], 1);
	for (b = 0; b < NBOUNDS && seconds > metric_bounds[b]; b++)
		;
	atomic_fetch_add(&metrics.latency[b], 1);
	atomic_fetch_add(&metrics.latency_us_sum, (unsigned long)(seconds * 1e6));
}

void
http_auth_failure(struct http_req *r, const char *reason)
{
	int i, n = atomic_load(&metrics.nreasons);

	r->rq_authfail = reason;
	for (i = 0; i < n; i++) {
		if (strcmp(metrics.reason_name[i], reason) == 0) {
			atomic_fetch_add(&metrics.reason_count[i], 1);
			return;
		}
	}
	pthread_mutex_lock(&metrics.reason_mu);
	n = atomic_load(&metrics.nreasons);
	for (i = 0; i < n && strcmp(metrics.reason_name[i], reason) != 0; i++)
		;
	if (i == n && n < HTTP_MAX_REASONS) {
		metrics.reason_name[n] = reason;
		atomic_store(&metrics.nreasons, n + 1);
	}
	if (i < HTTP_MAX_REASONS)
		atomic_fetch_add(&metrics.reason_count[i], 1);
	pthread_mutex_unlock(&metrics.reason_mu);
}

static void
metrics_render(struct http_thread *t, struct evbuffer *out)
{
	unsigned long cum = 0, v;
	size_t r, s, b;
	int i, n;

	evbuffer_add_printf(out, "# HELP http_requests_total Requests answered, by route and status.\n"
	    "# TYPE http_requests_total counter\n");
	for (r = 0; r <= HTTP_MAX_ROUTES; r++) {
		if (route_names[r] == NULL)
			continue;
		for (s = 0; s <= NSTATUS; s++) {
			if ((v = atomic_load(&metrics.requests[r][s])) == 0)
				continue;
			if (s < NSTATUS)
				evbuffer_add_printf(out, "http_requests_total{route=\"%s\",status=\"%d\"} %lu\n",
				    route_names[r], metric_statuses[s], v);
			else
				evbuffer_add_printf(out, "http_requests_total{route=\"%s\",status=\"other\"} %lu\n",
				    route_names[r], v);
		}
	}
	evbuffer_add_printf(out, "# HELP http_request_duration_seconds Time from request to reply.\n"
	    "# TYPE http_request_duration_seconds histogram\n");
	for (b = 0; b <= NBOUNDS; b++) {
		cum += atomic_load(&metrics.latency[b]);
		if (b < NBOUNDS)
			evbuffer_add_printf(out, "http_request_duration_seconds_bucket{le=\"%g\"} %lu\n",
			    metric_bounds[b], cum);
		else
			evbuffer_add_printf(out, "http_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n",
			    cum);
	}
	evbuffer_add_printf(out, "http_request_duration_seconds_sum %.6f\n"
	    "http_request_duration_seconds_count %lu\n",
	    atomic_load(&metrics.latency_us_sum) / 1e6, cum);
	evbuffer_add_printf(out, "# HELP auth_failures_total Rejected credentials, by reason.\n"
	    "# TYPE auth_failures_total counter\n");
	n = atomic_load(&metrics.nreasons);
	for (i = 0; i < n; i++)
		evbuffer_add_printf(out, "auth_failures_total{reason=\"%s\"} %lu\n",
		    metrics.reason_name[i], atomic_load(&metrics.reason_count[i]));
	if (t->srv->hs_app->metrics != NULL)
		t->srv->hs_app->metrics(t, out);
}

/* ---- Configuration ---- */

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

/* Writes the address in s as inet_ntop() spells it (the way evhttp reports peers), so that the
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
		cfg->threads = (int)cli_num("--threads", arg, 1, 64);
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

const struct users *http_users(struct http_server *srv) { return srv->hs_users; }
const struct http_config *http_cfg(struct http_server *srv) { return srv->hs_cfg; }

/* ---- Request deadlines ----
 *
 * evhttp (libevent 2.1) times each read on its own, so a client that sends a byte every few
 * seconds keeps a connection open forever (slowloris), head or body alike. So every client
 * connection gets a watch: since when we have been waiting for its next complete request. Once a
 * second a sweep shuts down the connections that have waited longer than --timeout; evhttp then
 * sees end-of-file and frees the connection its usual way. A watch holds a reference on the
 * connection's bufferevent, so it never points at freed memory; evhttp clears the callbacks of
 * a bufferevent it is done with, which is how the sweep knows to let go.
 */
#define HTTP_WATCH_READ_MAX	(HTTP_MAX_HEADERS + HTTP_HARD_MAX_BODY)

struct http_watch {
	struct bufferevent	*hw_bev;
	time_t			 hw_since;	/* waiting for a request since (monotonic s) */
	int			 hw_busy;	/* a request of it is being answered */
	LIST_ENTRY(http_watch)	 hw_entry;
};

struct http_watches {
	LIST_HEAD(, http_watch)	 hws_list;	/* newest first */
	struct http_watch	**hws_byfd;	/* index by descriptor, checked against hw_bev */
	size_t			 hws_nbyfd;
	struct event		*hws_sweep;
};

static time_t
http_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* evhttp asks us for each new connection's bufferevent: make it, and watch it. */
static struct bufferevent *
http_watch_new(struct event_base *base, void *arg)
{
	struct http_thread *t = arg;
	struct http_watch *w;
	struct bufferevent *bev;

	/* CLOSE_ON_FREE: the descriptor lives as long as our reference, so its number cannot be
	 * reused by another connection while a watch still names it. */
	if ((bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) == NULL)
		return NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return bev;		/* served, just without a deadline */
	bufferevent_setwatermark(bev, EV_READ, 0, HTTP_WATCH_READ_MAX);
	bufferevent_incref(bev);
	w->hw_bev = bev;
	w->hw_since = http_now();
	LIST_INSERT_HEAD(&t->th_watches->hws_list, w, hw_entry);
	return bev;
}

/* The watch of the connection that carried r, or NULL. */
static struct http_watch *
http_watch_find(struct http_thread *t, struct evhttp_request *req)
{
	struct http_watches *ws = t->th_watches;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	struct http_watch *w, **grown;
	evutil_socket_t fd;
	size_t n;

	if (evcon == NULL || (bev = evhttp_connection_get_bufferevent(evcon)) == NULL)
		return NULL;
	fd = bufferevent_getfd(bev);
	if (fd >= 0 && (size_t)fd < ws->hws_nbyfd && ws->hws_byfd[fd] != NULL &&
	    ws->hws_byfd[fd]->hw_bev == bev)
		return ws->hws_byfd[fd];
	LIST_FOREACH(w, &ws->hws_list, hw_entry)	/* a new connection: near the head */
		if (w->hw_bev == bev)
			break;
	if (w == NULL || fd < 0)
		return w;
	if ((size_t)fd >= ws->hws_nbyfd) {
		n = (size_t)fd * 2 + 64;
		if ((grown = realloc(ws->hws_byfd, n * sizeof(*grown))) == NULL)
			return w;
		memset(grown + ws->hws_nbyfd, 0, (n - ws->hws_nbyfd) * sizeof(*grown));
		ws->hws_byfd = grown;
		ws->hws_nbyfd = n;
	}
	ws->hws_byfd[fd] = w;
	return w;
}

static void
http_watch_free(struct http_watches *ws, struct http_watch *w)
{
	evutil_socket_t fd = bufferevent_getfd(w->hw_bev);

	if (fd >= 0 && (size_t)fd < ws->hws_nbyfd && ws->hws_byfd[fd] == w)
		ws->hws_byfd[fd] = NULL;
	LIST_REMOVE(w, hw_entry);
	bufferevent_decref(w->hw_bev);
	free(w);
}

static void
http_watch_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct http_thread *t = arg;
	struct http_watches *ws = t->th_watches;
	struct http_watch *w, *next;
	bufferevent_data_cb readcb;
	time_t now = http_now();

	for (w = LIST_FIRST(&ws->hws_list); w != NULL; w = next) {
		next = LIST_NEXT(w, hw_entry);
		bufferevent_getcb(w->hw_bev, &readcb, NULL, NULL, NULL);
		if (readcb == NULL) {		/* evhttp is done with this connection */
			if (!w->hw_busy)	/* else a reply to come still refers to it */
				http_watch_free(ws, w);
			continue;
		}
		if (!w->hw_busy && now - w->hw_since >= t->srv->hs_cfg->timeout_s &&
		    (fd = bufferevent_getfd(w->hw_bev)) >= 0) {
			log_debug("%s: closing a connection without a request for %lld s", __func__,
			    (long long)(now - w->hw_since));
			shutdown(fd, SHUT_RDWR);
		}
	}
}

static int
http_watches_init(struct http_thread *t)
{
	static const struct timeval second = { 1, 0 };
	struct http_watches *ws;

	if ((ws = calloc(1, sizeof(*ws))) == NULL)
		return -1;
	LIST_INIT(&ws->hws_list);
	t->th_watches = ws;
	if ((ws->hws_sweep = event_new(t->base, -1, EV_PERSIST, http_watch_sweep, t)) == NULL ||
	    event_add(ws->hws_sweep, &second) == -1)
		return -1;
	evhttp_set_bevcb(t->th_http, http_watch_new, t);
	return 0;
}

/* After evhttp_free(): every connection is gone, so every watch goes. */
static void
http_watches_free(struct http_thread *t)
{
	struct http_watches *ws = t->th_watches;

	if (ws == NULL)
		return;
	while (!LIST_EMPTY(&ws->hws_list))
		http_watch_free(ws, LIST_FIRST(&ws->hws_list));
	if (ws->hws_sweep != NULL)
		event_free(ws->hws_sweep);
	free(ws->hws_byfd);
	free(ws);
	t->th_watches = NULL;
}

/* ---- Requests ---- */

const char *
http_header(struct http_req *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

void
http_add_header(struct http_req *r, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(r->req), name, value);
}

const char *
http_body(struct http_req *r, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);

	*len = evbuffer_get_length(in);
	if (*len == 0)
		return NULL;
	return (const char *)evbuffer_pullup(in, -1);
}

unsigned
http_method(struct http_req *r)
{
	return (unsigned)evhttp_request_get_command(r->req);
}

static const char *
http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Error";
	}
}

static const char *
http_method_name(unsigned m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_PATCH: return "PATCH";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	default: return "OTHER";
	}
}

/* Writes the access-log line: the URI is cut and stripped of control characters first. */
static void
http_access_log(struct http_req *r, int status, size_t bytes, double seconds)
{
	const char *uri = evhttp_request_get_uri(r->req);
	char clean[160];
	size_t i;

	for (i = 0; uri != NULL && uri[i] != '\0' && i < sizeof(clean) - 1; i++)
		clean[i] = (uri[i] < 0x21 || uri[i] > 0x7e) ? '?' : uri[i];
	clean[i] = '\0';
	log_info("%s \"%s %s\" %d %zu %.3fms id=%s%s%s", r->peer, http_method_name(http_method(r)),
	    clean, status, bytes, seconds * 1e3, r->id, r->rq_authfail ? " auth=" : "",
	    r->rq_authfail ? r->rq_authfail : "");
}

/* Sends the reply with the headers every response carries, counts it, and frees r. Takes body. */
static void
http_finish(struct http_req *r, int status, struct evbuffer *body)
{
	struct http_thread *t = r->thr;
	struct http_server *srv = t->srv;
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	struct timespec end;
	size_t bytes = body ? evbuffer_get_length(body) : 0;
	double secs;
	int route;

	evhttp_add_header(h, "X-Served-By", srv->hs_cfg->id);
	evhttp_add_header(h, "X-Request-Id", r->id);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	if (body != NULL && evhttp_find_header(h, "Content-Type") == NULL)
		evhttp_add_header(h, "Content-Type", "application/json");
	if (r->route != NULL && r->route->no_store)
		evhttp_add_header(h, "Cache-Control", "no-store");
	if (atomic_load(&srv->hs_stopping))
		evhttp_add_header(h, "Connection", "close");
	evhttp_send_reply(r->req, status, http_reason(status), body);
	if (r->rq_watch != NULL) {	/* the next request's deadline starts now */
		r->rq_watch->hw_busy = 0;
		r->rq_watch->hw_since = http_now();
	}

	clock_gettime(CLOCK_MONOTONIC, &end);
	secs = (double)(end.tv_sec - r->start.tv_sec) + (end.tv_nsec - r->start.tv_nsec) / 1e9;
	route = r->route ? (int)(r->route - srv->hs_app->routes) : HTTP_MAX_ROUTES;
	metrics_count(route, status, secs);
	if (!srv->hs_cfg->quiet)
		http_access_log(r, status, bytes, secs);
	if (body != NULL)
		evbuffer_free(body);
	t->th_inflight--;
	free(r);
}

void
http_reply_json(struct http_req *r, int status, json_t *body)
{
	struct evbuffer *buf = NULL;
	char *text;

	if (body != NULL) {
		text = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (text == NULL || (buf = evbuffer_new()) == NULL) {
			free(text);
			log_warnx("%s: out of memory", __func__);
			http_finish(r, 503, NULL);
			return;
		}
		evbuffer_add(buf, text, strlen(text));
		evbuffer_add(buf, "\n", 1);
		free(text);
	}
	http_finish(r, status, buf);
}

void
http_reply_error(struct http_req *r, int status, const char *code, const char *message)
{
	http_reply_json(r, status, json_pack("{s:s, s:s}", "error", code, "message", message));
}

void
http_set_auth_cookie(struct http_req *r, const char *name, const char *value, long max_age)
{
	struct cookie_attrs a = {
		.max_age = value ? max_age : 0,
		.secure = r->secure,
		.http_only = 1,
		.same_site = "Lax",
		.path = "/",
	};
	char buf[BEARER_MAX_TOKEN + 256];

	if (cookie_build(buf, sizeof(buf), name, value ? value : "", &a) == 0)
		http_add_header(r, "Set-Cookie", buf);
	else
		log_warnx("%s: cannot build the %s cookie", __func__, name);
}

int
http_offload(struct http_req *r, void (*work)(void *), void (*done)(void *), void *arg)
{
	return pool_submit(r->thr->srv->hs_pool, r->thr->base, work, done, arg);
}

/* ---- Built-in routes ---- */

static void
http_healthz(struct http_req *r)
{
	struct http_server *srv = r->thr->srv;
	json_t *body;
	int status = 200;

	body = json_pack("{s:s, s:s, s:I, s:I}", "status", "ok", "id", srv->hs_cfg->id,
	    "uptime_s", (json_int_t)(time(NULL) - srv->hs_started),
	    "users", (json_int_t)users_count(srv->hs_users));
	if (body != NULL && srv->hs_app->health != NULL)
		status = srv->hs_app->health(r->thr, body);
	if (status != 200) {
		json_object_set_new(body, "status", json_string("unavailable"));
		if (json_object_get(body, "error") == NULL)
			json_object_set_new(body, "error", json_string("unavailable"));
		if (json_object_get(body, "message") == NULL)
			json_object_set_new(body, "message", json_string(
			    "A store this server needs cannot be reached; it cannot serve now."));
	}
	http_reply_json(r, status, body);
}

static void
http_metrics(struct http_req *r)
{
	struct evbuffer *out = evbuffer_new();

	if (out == NULL) {
		http_reply_error(r, 503, "out_of_memory", "The server is out of memory.");
		return;
	}
	metrics_render(r->thr, out);
	http_add_header(r, "Content-Type", "text/plain; version=0.0.4");
	http_finish(r, 200, out);
}

static const struct http_route builtin_routes[] = {
	{ "/healthz", EVHTTP_REQ_GET, http_healthz, 0 },
	{ "/metrics", EVHTTP_REQ_GET, http_metrics, 0 },
};

/* ---- Login front half ---- */

struct login_job {
	struct http_req	*lj_req;
	json_t		*lj_body;
	const char	*lj_username;	/* point into lj_body */
	const char	*lj_password;
	const struct user *lj_user;
	void		(*lj_ok)(struct http_req *, const struct user *);
};

static void
login_work(void *arg)
{
	struct login_job *job = arg;

	job->lj_user = users_authenticate(job->lj_req->thr->srv->hs_users, job->lj_username,
	    job->lj_password);
}

static void
login_done(void *arg)
{
	struct login_job *job = arg;
	struct http_req *r = job->lj_req;

	if (job->lj_user != NULL) {
		job->lj_ok(r, job->lj_user);
	} else {
		http_auth_failure(r, "invalid_credentials");
		http_reply_error(r, 401, "invalid_credentials", "Wrong username or password.");
	}
	json_decref(job->lj_body);
	free(job);
}

void
http_login(struct http_req *r, void (*ok)(struct http_req *, const struct user *))
{
	struct login_job *job;
	const char *buf, *why;
	size_t len;
	int unsupported = 0;

	buf = http_body(r, &len);
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		http_reply_error(r, 503, "busy", "The server is out of memory; try again.");
		return;
	}
	job->lj_req = r;
	job->lj_ok = ok;
	job->lj_body = body_parse(http_header(r, "Content-Type"), buf ? buf : "", len, &why,
	    &unsupported);
	if (job->lj_body == NULL) {
		http_reply_error(r, unsupported ? 415 : 400,
		    unsupported ? "unsupported_media_type" : "bad_request", why);
		goto done;
	}
	if (body_credentials(job->lj_body, &job->lj_username, &job->lj_password, &why) == -1) {
		http_reply_error(r, 400, "bad_request", why);
		goto done;
	}
	if (http_offload(r, login_work, login_done, job) == -1) {
		http_reply_error(r, 503, "busy", "Too many logins in progress; try again shortly.");
		goto done;
	}
	return;
done:
	json_decref(job->lj_body);
	free(job);
}

/* ---- Dispatch ---- */

static int
http_trusted(const struct http_config *cfg, const char *addr)
{
	int i;

	for (i = 0; i < cfg->ntrusted; i++)
		if (strcmp(cfg->trusted[i], addr) == 0)
			return 1;
	return 0;
}

static int
http_sane_id(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++)
		if (n >= 63 || !(isalnum((unsigned char)s[n]) || strchr("._-", s[n]) != NULL))
			return 0;
	return n > 0;
}

/* Headers that must appear at most once: with two, one part of a system could read the first and
 * another the last (credentials or client facts smuggled past a check). Returns the repeated
 * name, or NULL. */
static const char *
http_repeated_header(struct http_req *r)
{
	static const char *const single[] = { "Authorization", "Cookie", "Content-Type", "Host",
	    "X-Forwarded-Proto", "X-Request-Id" };
	struct evkeyvalq *h = evhttp_request_get_input_headers(r->req);
	struct evkeyval *kv;
	size_t i;
	int n;

	for (i = 0; i < sizeof(single) / sizeof(single[0]); i++) {
		n = 0;
		TAILQ_FOREACH(kv, h, next)
			if (strcasecmp(kv->key, single[i]) == 0 && ++n > 1)
				return single[i];
	}
	return NULL;
}

/* Fills peer, secure and id, believing X-Forwarded-* only from a trusted proxy. */
static void
http_req_init(struct http_req *r)
{
	static _Thread_local unsigned long seq;
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
	const struct http_config *cfg = r->thr->srv->hs_cfg;
	const char *addr = NULL, *xff, *proto, *rid, *last;
	ev_uint16_t port;
	size_t n;
	int trusted;

	if (evcon != NULL)
		evhttp_connection_get_peer(evcon, (char **)&addr, &port);
	snprintf(r->peer, sizeof(r->peer), "%s", addr ? addr : "-");
	trusted = addr != NULL && http_trusted(cfg, addr);
	if (trusted && (xff = http_header(r, "X-Forwarded-For")) != NULL) {
		/* The rightmost entry is the one our proxy added: the others are the client's word. */
		last = strrchr(xff, ',');
		last = last ? last + 1 : xff;
		last += strspn(last, " \t");
		n = strcspn(last, " \t");
		if (n > 0 && n < sizeof(r->peer)) {
			memcpy(r->peer, last, n);
			r->peer[n] = '\0';
		}
	}
	proto = trusted ? http_header(r, "X-Forwarded-Proto") : NULL;
	r->secure = proto != NULL && strcasecmp(proto, "https") == 0;
	rid = trusted ? http_header(r, "X-Request-Id") : NULL;
	if (rid != NULL && http_sane_id(rid))
		snprintf(r->id, sizeof(r->id), "%s", rid);
	else
		snprintf(r->id, sizeof(r->id), "%s-%d-%lu", r->thr->srv->hs_idprefix, r->thr->index,
		    ++seq);
}

static void
http_dispatch(struct evhttp_request *req, void *arg)
{
	struct http_thread *t = arg;
	const struct http_app *app = t->srv->hs_app;
	const struct http_route *route = NULL;
	const char *path;
	char allow[64];
	unsigned m, allowed;
	size_t i, len;
	struct http_req *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		evhttp_send_error(req, 503, NULL);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	r->req = req;
	r->thr = t;
	t->th_inflight++;
	if ((r->rq_watch = http_watch_find(t, req)) != NULL)
		r->rq_watch->hw_busy = 1;
	http_req_init(r);

	if ((path = http_repeated_header(r)) != NULL) {
		char msg[96];

		snprintf(msg, sizeof(msg), "The %s header may appear only once.", path);
		http_reply_error(r, 400, "bad_request", msg);
		return;
	}
	path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	for (i = 0; app->routes[i].path != NULL && route == NULL; i++)
		if (path != NULL && strcmp(app->routes[i].path, path) == 0)
			route = &app->routes[i];
	if (route == NULL) {
		for (i = 0; i < sizeof(builtin_routes) / sizeof(builtin_routes[0]); i++)
			if (path != NULL && strcmp(builtin_routes[i].path, path) == 0)
				route = &builtin_routes[i];
	}
	if (route == NULL) {
		http_reply_error(r, 404, "not_found", "There is nothing at this path.");
		return;
	}
	if (route >= app->routes && route < app->routes + HTTP_MAX_ROUTES)
		r->route = route;	/* built-in routes are counted as "other" */
	m = http_method(r);
	allowed = route->methods | ((route->methods & EVHTTP_REQ_GET) ? EVHTTP_REQ_HEAD : 0);
	if ((m & allowed) == 0) {
		snprintf(allow, sizeof(allow), "%s%s%s",
		    (route->methods & EVHTTP_REQ_GET) ? "GET, HEAD" : "",
		    (route->methods & EVHTTP_REQ_GET) && (route->methods & EVHTTP_REQ_POST) ? ", " : "",
		    (route->methods & EVHTTP_REQ_POST) ? "POST" : "");
		http_add_header(r, "Allow", allow);
		http_reply_error(r, 405, "method_not_allowed", "This method is not allowed here.");
		return;
	}
	http_body(r, &len);
	if (len > HTTP_MAX_BODY) {
		http_reply_error(r, 413, "payload_too_large", "The request body is too large.");
		return;
	}
	route->fn(r);
}


/* ---- Threads, listeners and the graceful stop ---- */

static void
http_stop_poll(evutil_socket_t fd, short what, void *arg)
{
	struct http_thread *t = arg;
	static const struct timeval tick = { 0, 50000 };
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (t->th_inflight == 0 || now.tv_sec >= t->th_deadline) {
		if (t->th_inflight > 0)
			log_warnx("thread %d: stopping with %d requests unanswered", t->index,
			    t->th_inflight);
		event_base_loopexit(t->base, NULL);
		return;
	}
	event_add(t->th_stopev, &tick);
}

/* Runs on the thread's own loop: stop accepting, then wait for the requests in flight. */
static void
http_stop_begin(evutil_socket_t fd, short what, void *arg)
{
	struct http_thread *t = arg;
	struct timespec now;

	if (t->th_bound != NULL) {
		evhttp_del_accept_socket(t->th_http, t->th_bound);
		t->th_bound = NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	t->th_deadline = now.tv_sec + HTTP_STOP_WAIT_S;
	if ((t->th_stopev = evtimer_new(t->base, http_stop_poll, t)) == NULL) {
		event_base_loopexit(t->base, NULL);
		return;
	}
	http_stop_poll(-1, 0, t);
}

static void
http_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct http_thread *t = arg;

	if (t->th_lev != NULL && !atomic_load(&t->srv->hs_stopping))
		evconnlistener_enable(t->th_lev);
}

/* Out of descriptors: pause accepting for a moment instead of spinning on the listener. */
static void
http_accept_error(struct evconnlistener *lev, void *arg)
{
	static const struct timeval pause = { 0, 250000 };
	struct http_server *srv = http_server_self;
	struct http_thread *t;

	log_warnx("accept: %s; pausing for 250 ms",
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	evconnlistener_disable(lev);
	for (t = srv->hs_threads; t < srv->hs_threads + srv->hs_cfg->threads;
	    t++) {
		if (t->th_lev == lev) {
			event_base_once(t->base, -1, EV_TIMEOUT, http_accept_resume, t, &pause);
			return;
		}
	}
}

static void *
http_thread_main(void *arg)
{
	struct http_thread *t = arg;

	event_base_dispatch(t->base);
	return NULL;
}

/* Makes thread t's loop, evhttp and listener, and lets the application set up its state. */
static int
http_thread_setup(struct http_server *srv, struct http_thread *t, const struct addrinfo *ai)
{
	const struct http_config *cfg = srv->hs_cfg;

	t->srv = srv;
	if ((t->base = event_base_new()) == NULL || (t->th_http = evhttp_new(t->base)) == NULL) {
		log_warnx("cannot make an event loop");
		return -1;
	}
	evhttp_set_timeout(t->th_http, cfg->timeout_s);
	evhttp_set_max_headers_size(t->th_http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(t->th_http, HTTP_HARD_MAX_BODY);
	evhttp_set_default_content_type(t->th_http, NULL);
	evhttp_set_allowed_methods(t->th_http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
	    EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
	evhttp_set_gencb(t->th_http, http_dispatch, t);
	if (http_watches_init(t) == -1) {
		log_warnx("cannot set up the request deadlines");
		return -1;
	}
	t->th_lev = evconnlistener_new_bind(t->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT, 1024, ai->ai_addr,
	    (int)ai->ai_addrlen);
	if (t->th_lev == NULL) {
		log_warn("cannot listen on %s:%u", cfg->host, cfg->port);
		return -1;
	}
	if ((t->th_bound = evhttp_bind_listener(t->th_http, t->th_lev)) == NULL) {
		log_warnx("cannot serve on %s:%u", cfg->host, cfg->port);
		return -1;
	}
	evconnlistener_set_error_cb(t->th_lev, http_accept_error);
	if (srv->hs_app->thread_init != NULL && srv->hs_app->thread_init(t) == -1)
		return -1;
	return 0;
}

/* Frees what http_thread_setup made, after the thread's loop has ended. */
static void
http_thread_teardown(struct http_server *srv, struct http_thread *t, int inited)
{
	if (t->base == NULL)
		return;
	/* Results handed back by the workers after the loop stopped: answer them now. */
	event_base_loop(t->base, EVLOOP_NONBLOCK);
	if (inited && srv->hs_app->thread_fini != NULL)
		srv->hs_app->thread_fini(t);
	if (t->th_stopev != NULL)
		event_free(t->th_stopev);
	if (t->th_http != NULL)
		evhttp_free(t->th_http);
	else if (t->th_lev != NULL)
		evconnlistener_free(t->th_lev);
	http_watches_free(t);
	event_base_free(t->base);
}

/* Lets the process use as many descriptors as it is allowed: each client costs one. */
static void
http_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("setrlimit");
	}
}

int
http_serve(const struct http_config *cfg, const struct http_app *app)
{
	static struct http_server srv;
	struct addrinfo hints, *ai = NULL;
	unsigned char rnd[4];
	char portstr[8], err[512];
	sigset_t stopset;
	int i, sig, ready = 0, started = 0, rc = 1;

	log_init(cli_prog, cfg->debug);
	srv.hs_cfg = cfg;
	srv.hs_app = app;
	srv.hs_started = time(NULL);
	http_server_self = &srv;
	signal(SIGPIPE, SIG_IGN);
	http_raise_nofile();
	if (evthread_use_pthreads() == -1) {
		log_warnx("libevent has no thread support");
		return 1;
	}
	for (i = 0; app->routes[i].path != NULL; i++) {
		if (i >= HTTP_MAX_ROUTES) {
			log_warnx("too many routes");
			return 1;
		}
		route_names[i] = app->routes[i].path;
	}
	route_names[HTTP_MAX_ROUTES] = "other";
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	snprintf(srv.hs_idprefix, sizeof(srv.hs_idprefix), "%02x%02x%02x%02x", rnd[0], rnd[1],
	    rnd[2], rnd[3]);

	/* Start-up errors are fatal (log.h): the line says so, not "warning". */
	if ((srv.hs_users = users_load(cfg->users_path, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if (users_mixed_costs(srv.hs_users, cfg->users_path, err, sizeof(err)))
		log_warnx("%s", err);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%u", cfg->port);
	if ((i = getaddrinfo(cfg->host, portstr, &hints, &ai)) != 0) {
		log_warnx("--listen %s: %s", cfg->host, gai_strerror(i));
		goto done;
	}
	/* Only this thread takes the stop signals; the loop and worker threads
	 * inherit the mask (a worker that did not would die of a SIGTERM sent before sigwait). */
	sigemptyset(&stopset);
	sigaddset(&stopset, SIGTERM);
	sigaddset(&stopset, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stopset, NULL);
	if ((srv.hs_pool = pool_new(cfg->workers)) == NULL ||
	    (srv.hs_threads = calloc((size_t)cfg->threads, sizeof(*srv.hs_threads))) == NULL) {
		log_warnx("cannot start the worker threads");
		goto done;
	}
	for (ready = 0; ready < cfg->threads; ready++) {
		srv.hs_threads[ready].index = ready;
		if (http_thread_setup(&srv, &srv.hs_threads[ready], ai) == -1) {
			http_thread_teardown(&srv, &srv.hs_threads[ready], 0);
			goto done;
		}
	}
	for (started = 0; started < cfg->threads; started++)
		if (pthread_create(&srv.hs_threads[started].th_tid, NULL, http_thread_main,
		    &srv.hs_threads[started]) != 0) {
			log_warnx("cannot start thread %d", started);
			break;
		}
	if (started == cfg->threads) {
		log_info("%s listening on %s:%u as %s (%d threads, %zu users)", cli_prog, cfg->host,
		    cfg->port, cfg->id, cfg->threads, users_count(srv.hs_users));
		sigwait(&stopset, &sig);
		log_info("signal %d: stopping (waiting up to %d s for requests in flight)", sig,
		    HTTP_STOP_WAIT_S);
		rc = 0;
	}
	atomic_store(&srv.hs_stopping, 1);
	for (i = 0; i < started; i++) {
		static const struct timeval now = { 0, 0 };
		event_base_once(srv.hs_threads[i].base, -1, EV_TIMEOUT, http_stop_begin,
		    &srv.hs_threads[i], &now);
	}
	for (i = 0; i < started; i++)
		pthread_join(srv.hs_threads[i].th_tid, NULL);
done:
	pool_free(srv.hs_pool);
	for (i = 0; i < ready; i++)
		http_thread_teardown(&srv, &srv.hs_threads[i], 1);
	free(srv.hs_threads);
	if (ai != NULL)
		freeaddrinfo(ai);
	users_free(srv.hs_users);
	if (rc == 0)
		log_info("stopped");
	return rc;
}
