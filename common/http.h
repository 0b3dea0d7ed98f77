/*
 * The HTTP server scaffolding both login servers share, on our own connection engine
 * (http_conn.c, on bufferevents and the strict parser of parse.h): listeners (one event_base per
 * thread, all accepting on one socket), per-request head and body deadlines, keep-alive and
 * pipelining, routing with allowed methods, JSON replies with the contract's error body,
 * X-Served-By, Cache-Control: no-store on authentication routes, request ids, one access-log line
 * per request, GET /healthz, GET /metrics, the shared POST /login front half (body parsing, a
 * cross-site check, password check on worker threads) and a graceful stop on SIGTERM/SIGINT.
 *
 * The public structs below name their fields without a prefix (they are read by the programs);
 * the engine's own per-connection and per-server state lives in http_int.h.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>
#include <pthread.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "parse.h"
#include "users.h"

#define HTTP_MAX_BODY		8192	/* login bodies are tiny; more is 413 */
#define HTTP_MAX_HEADERS	18432	/* 16 KiB of fields and a request line; more is 431 */
#define HTTP_MAX_THREADS	64	/* --threads */

/* Request methods, as bits so that a route can allow several. */
enum http_method {
	HTTP_GET = 1 << 0, HTTP_POST = 1 << 1, HTTP_HEAD = 1 << 2, HTTP_PUT = 1 << 3,
	HTTP_DELETE = 1 << 4, HTTP_OPTIONS = 1 << 5, HTTP_PATCH = 1 << 6, HTTP_TRACE = 1 << 7,
	HTTP_OTHER = 1 << 8
};

struct http_server;
struct http_req;
struct http_engine;
struct http_conn;

/* One per thread: its own event loop and connections. */
struct http_thread {
	struct event_base	*base;
	struct http_server	*srv;
	int			 index;		/* 0 .. threads-1 */
	void			*data;		/* the application's per-thread state */
	struct http_engine	*engine;	/* the engine's own state (http_int.h) */
};

typedef void (*http_handler_fn)(struct http_req *);

struct http_route {
	const char	*path;		/* exact match */
	unsigned	 methods;	/* HTTP_GET | HTTP_POST ... (GET allows HEAD) */
	http_handler_fn	 fn;
	int		 no_store;	/* an authentication response: Cache-Control: no-store */
};

/* What the application plugs into the scaffolding. */
struct http_app {
	const struct http_route	*routes;	/* ends with a zeroed entry */
	/* Called for each thread before its loop starts; -1 stops start-up. */
	int	(*thread_init)(struct http_thread *);
	/* Called on each thread after its loop ended; frees what thread_init made. */
	void	(*thread_fini)(struct http_thread *);
	/* Fills GET /healthz: returns 200 or 503 and may add members to body (borrowed). */
	int	(*health)(struct http_thread *, json_t *body);
	/*
	 * Appends application metrics (Prometheus text) to GET /metrics, on whichever thread
	 * answers it: per-thread series cover every thread (http_thread_at()), one family each.
	 */
	void	(*metrics)(struct http_server *, struct evbuffer *out);
};

/* Settings common to both servers, filled from the flags by http_config_opt(). */
struct http_config {
	char		 host[256];
	unsigned short	 port;
	int		 have_listen;
	const char	*id;		/* instance name for X-Served-By */
	const char	*users_path;
	int		 threads;	/* event-loop threads */
	int		 workers;	/* password-hashing threads */
	int		 timeout_s;	/* per-connection read/write timeout */
	int		 quiet;		/* no access log */
	int		 debug;
	char		 trusted[8][64];/* proxies whose X-Forwarded-* we believe */
	int		 ntrusted;
};

/* The flags that http_config_opt() understands, for the program's option table. */
enum {
	HTTP_OPT_LISTEN = 1000, HTTP_OPT_ID, HTTP_OPT_USERS, HTTP_OPT_THREADS, HTTP_OPT_WORKERS,
	HTTP_OPT_TIMEOUT, HTTP_OPT_TRUST, HTTP_OPT_QUIET, HTTP_OPT_DEBUG
};
#define HTTP_LONGOPTS \
	{ "listen", required_argument, NULL, HTTP_OPT_LISTEN }, \
	{ "id", required_argument, NULL, HTTP_OPT_ID }, \
	{ "users", required_argument, NULL, HTTP_OPT_USERS }, \
	{ "threads", required_argument, NULL, HTTP_OPT_THREADS }, \
	{ "workers", required_argument, NULL, HTTP_OPT_WORKERS }, \
	{ "timeout", required_argument, NULL, HTTP_OPT_TIMEOUT }, \
	{ "trust-proxy", required_argument, NULL, HTTP_OPT_TRUST }, \
	{ "quiet", no_argument, NULL, HTTP_OPT_QUIET }, \
	{ "debug", no_argument, NULL, HTTP_OPT_DEBUG }
/* cli_init() with the program's own usage followed by the lines for the HTTP_OPT_* flags. */
void http_cli_init(const char *prog, const char *usage);

/* Sets the defaults (threads 1, workers 2, timeout 10 s, trusted proxies 127.0.0.1 and ::1). */
void http_config_init(struct http_config *cfg);
/* Applies one of the HTTP_OPT_* flags. Returns 1 if opt was one of them, 0 otherwise; exits 2 on
 * a bad value. */
int http_config_opt(struct http_config *cfg, int opt, const char *arg);
/* Checks that --listen, --id and --users were given (exits 2 otherwise). */
void http_config_check(const struct http_config *cfg);

/*
 * Loads the users, starts the worker pool and the threads, and serves until SIGTERM or SIGINT:
 * then stops accepting, waits up to 5 s for requests in flight, calls thread_fini and returns 0.
 * Returns 1 on a start-up failure (logged).
 */
int http_serve(const struct http_config *cfg, const struct http_app *app);

/*
 * Serves app's routes (not the built-in ones) on the listening socket fd (owned from now on)
 * from base, the caller's own loop, with cfg's id, timeout and quiet; for a small listener
 * inside another program (the balancer's admin). Returns the listener, freed with
 * http_embed_free() (which closes its connections), or NULL.
 */
struct http_thread *http_embed(struct event_base *base, int fd, const struct http_config *cfg,
    const struct http_app *app);
void http_embed_free(struct http_thread *t);

/* The server's users (read-only once serving; safe from any thread). */
const struct users *http_users(struct http_server *srv);
const struct http_config *http_cfg(struct http_server *srv);
/*
 * Event-loop thread i, 0 .. http_cfg(srv)->threads - 1 (else NULL): for GET /metrics, which
 * reports on every thread from one. The record and its data pointer stay put while serving
 * (thread_init runs before any loop, thread_fini after all), but what data points to belongs
 * to thread i: read only what its owner writes atomically.
 */
struct http_thread *http_thread_at(struct http_server *srv, int i);

/* ---- Per request ---- */

struct http_req {
	struct http_thread	*thr;
	const struct http_route	*route;		/* NULL for the built-in routes */
	char			 id[64];	/* X-Request-Id: kept when sane, made otherwise */
	char			 peer[64];	/* client address (X-Forwarded-For from a trusted proxy) */
	int			 secure;	/* came over HTTPS (X-Forwarded-Proto from a trusted proxy) */
	struct timespec		 start;
	/* The engine's: the head (pointing into the connection's copy), body and reply. */
	struct http_conn	*conn;
	unsigned		 method;	/* HTTP_GET ... */
	const char		*target;	/* the request target, not NUL-terminated */
	size_t			 targetlen;
	const struct parse_hdr	*hdrs;		/* the header fields */
	size_t			 nhdrs;
	int			 minor;		/* HTTP/1.<minor> */
	const char		*body;
	size_t			 bodylen;
	const char		*authfail;	/* reason counted in the metrics, if any */
	struct evbuffer		*headers;	/* response header lines added so far */
};

/* A request header, or NULL. The pointer is valid until the reply. */
const char *http_header(struct http_req *r, const char *name);
/* Adds a response header (copied). */
void http_add_header(struct http_req *r, const char *name, const char *value);
/* The request body (not NUL-terminated; may contain NUL), or NULL with *len 0 when empty. */
const char *http_body(struct http_req *r, size_t *len);
/* HTTP_GET etc. */
unsigned http_method(struct http_req *r);

/*
 * Replies and ends the request: r is freed and must not be used after any http_reply_*.
 * A handler may return without replying (work in flight) and reply later from the same thread's
 * loop; if the client went away meanwhile, the reply is dropped quietly.
 */
/* Sends body (reference stolen; NULL for no body) as application/json. */
void http_reply_json(struct http_req *r, int status, json_t *body);
/* Sends {"error": code, "message": message}. */
void http_reply_error(struct http_req *r, int status, const char *code, const char *message);
/* Sends body (taken and freed; NULL for none) with the given Content-Type. */
void http_reply_buffer(struct http_req *r, int status, const char *content_type,
    struct evbuffer *body);

/*
 * Adds Set-Cookie for a credential cookie: HttpOnly, SameSite=Lax, Path=/, and Secure when the
 * client came over HTTPS. max_age < 0 makes a browser-session cookie; value NULL deletes it.
 */
void http_set_auth_cookie(struct http_req *r, const char *name, const char *value, long max_age);

/* Counts an authentication failure by reason (a static string) in the metrics. */
void http_auth_failure(struct http_req *r, const char *reason);

/*
 * Runs work(arg) on a password worker thread, then done(arg) on r's loop thread. Returns 0, or -1
 * when the queue is full (the caller replies 503).
 */
int http_offload(struct http_req *r, void (*work)(void *), void (*done)(void *), void *arg);

/*
 * The common part of POST /login: refuses a cross-site login (403 cross_site_login), reads the
 * credentials (JSON or form body), checks the password off the event loop, and itself replies
 * 400, 401 invalid_credentials, 403, 413, 415 or 503. On success calls
 * ok(r, user) on r's loop; ok must reply. user is valid while the server runs.
 */
void http_login(struct http_req *r, void (*ok)(struct http_req *, const struct user *));

#endif
