/*
 * The balancer's private header: configuration (the HTTP/1.1 parser is common/parse.h), path routes
 * to separate pools (route.c), backends with health and choice (backend.c), the proxy's
 * per-thread workers (proxy.c), their connections (conn.c), TLS set-up (tls.c) and the admin
 * listener (admin.c).
 */
#ifndef LB_H
#define LB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "parse.h"

#define LB_MAX_BACKENDS		64	/* the retry mask is one uint64_t */
/* Request line + headers; more is 431. Well below the login servers' HTTP_MAX_HEADERS (18 KiB):
 * a head the balancer forwards, with the X-Forwarded-* and X-Request-Id it adds, is never too
 * large for the server behind it, so a client never gets a 431 from a server it cannot see. */
#define LB_REQ_HEAD_MAX		8192
#define LB_RESP_HEAD_MAX	16384	/* a bigger response head from a backend is a 502 */
#define LB_REQID_MAX		PARSE_REQID_MAX
#define LB_MAX_ROUTES		17	/* the default pool and 16 --route prefixes */
#define LB_PREFIX_MAX		64	/* bounds what cookie rewriting adds to a head */

/* ---- Configuration (main.c) ---- */

struct lb_config {
	const char	*listen;
	const char	*tls_listen;
	const char	*cert;
	const char	*key;
	const char	*admin;
	int		 sticky;
	int		 threads;
	int		 quiet;
	int		 health_ms;	/* active check period */
	int		 connect_ms;	/* connect to a backend */
	int		 backend_ms;	/* backend silent while we wait for its response: 504 */
	int		 header_ms;	/* whole request head must arrive within this */
	int		 body_ms;	/* request body: each period must bring enough of it */
	int		 idle_ms;	/* keep-alive client idle, or silent mid-body */
	int		 grace_ms;	/* bounded wait for in-flight requests on SIGTERM */
	uint64_t	 max_body;	/* request body limit: 413 */
};
extern struct lb_config lb_conf;

/* ---- Routes (route.c) ---- */

/*
 * A pool of backends with its own round robin and stickiness. Route 0 is the default pool
 * (--backend, --sticky) and takes every path no other route matches; it may be empty. The
 * others (--route) match a path prefix, which the balancer replaces by "/" in the request line
 * and adds in front of the Path of the pool's cookies, so that pools never share a cookie.
 */
struct route {
	char		 rt_prefix[LB_PREFIX_MAX + 1];	/* "" for the default route */
	size_t		 rt_prefixlen;
	int		 rt_sticky;
	int		 rt_be[LB_MAX_BACKENDS];	/* indices into lb_backends */
	int		 rt_nbe;
	atomic_ulong	 rt_rr;
};

extern struct route lb_routes[LB_MAX_ROUTES];
extern int lb_nroutes;

/* Adds a route from "PREFIX=[sticky:]HOST:PORT[,HOST:PORT...]"; exits 2 when it is bad. */
void route_add(const char *spec);
/* The route for a request target: the longest matching prefix, else 0 (the default). */
int route_match(const char *target, size_t len);
/*
 * Writes the Set-Cookie value v[0..len) to out[0..size) with its Path under rt's prefix: a
 * Path "/x" becomes "PREFIXx", and a cookie without a valid Path gets "Path=PREFIX". Returns
 * the length of the result, like snprintf: when it is more than size, out holds only a part.
 */
size_t route_cookie_path(const struct route *rt, const char *v, size_t len, char *out,
    size_t size);

/* ---- Backends (backend.c) ---- */

#define LB_LAT_BUCKETS	12

struct backend {
	char		 be_name[280];	/* HOST:PORT as given */
	char		 be_host[256];
	unsigned short	 be_port;
	struct sockaddr_storage be_ss;
	socklen_t	 be_sslen;
	char		 be_cookie[17];	/* the opaque sticky cookie value naming this backend */
	int		 be_route;	/* the pool it belongs to: lb_routes[] */
	atomic_int	 be_up;
	atomic_int	 be_hcok;	/* consecutive good / bad checks */
	atomic_int	 be_hcfail;
	atomic_ullong	 be_requests;
	atomic_ullong	 be_failures;
	atomic_ullong	 be_latsum_us;
	atomic_ullong	 be_lat[LB_LAT_BUCKETS + 1];
	struct bufferevent *be_hcbev;	/* the check in flight (main thread only) */
};

extern struct backend lb_backends[LB_MAX_BACKENDS];
extern int lb_nbackends;
extern const double lb_lat_bounds_ms[LB_LAT_BUCKETS];

/* Adds a backend from "HOST:PORT" to the pool of route; exits 2 on a bad address. */
void backend_add(int route, const char *spec);
/*
 * Picks the backend of route for one request: the sticky cookie's backend if it is in that pool,
 * up and not in tried, otherwise the next healthy one in the route's round robin. Returns an
 * index into lb_backends or -1.
 */
int backend_choose(int route, const char *cookie, size_t cookielen, uint64_t tried);
/* Passive health: a connection failed, so the backend is down until checks bring it back. */
void backend_mark_down(struct backend *be, const char *why);
/* Counts one answered request and its time to the response head. */
void backend_record(struct backend *be, int failed, uint64_t latency_us);
/* Starts the active checks on base (GET /healthz every lb_conf.health_ms). */
int backend_health_start(struct event_base *base);
/* Stops them and frees the checks in flight. */
void backend_health_stop(void);

/* ---- Proxy workers (proxy.c) ---- */

struct worker;

/* Counters that admin.c reports. */
struct lb_stats {
	atomic_ullong	 st_accepted;
	atomic_llong	 st_clients;
	atomic_ullong	 st_requests;
	atomic_ullong	 st_status[6];	/* by class: [1] 1xx .. [5] 5xx */
	atomic_ullong	 st_retries;
	atomic_ullong	 st_accept_paused;
};
extern struct lb_stats lb_stats;

/*
 * Makes worker number id with its own event_base and listeners (fds from proxy_listen()).
 * tls may be NULL. Returns the worker (owned by the caller, freed by proxy_worker_free()) or NULL.
 */
struct worker *proxy_worker_new(int id, int fd, int tlsfd, SSL_CTX *tls);
struct event_base *proxy_worker_base(struct worker *w);
/* Runs the worker's loop until it stopped. */
void proxy_worker_run(struct worker *w);
/* Asks the worker, from any thread, to stop accepting and finish its requests. */
void proxy_worker_stop(struct worker *w);
/* Frees the worker, closing what is left. */
void proxy_worker_free(struct worker *w);
/* A listening socket on "HOST:PORT" (sock_listen(): the workers share it, no other process
 * may), or -1 (logged). */
int proxy_listen(const char *addr);

/* ---- TLS (tls.c) ---- */

/* A server context for cert and key: TLS 1.2 and 1.3 only, modern ciphers, records read
 * ahead. NULL (logged) on error; the caller frees it with SSL_CTX_free(). */
SSL_CTX *tls_ctx_new(const char *cert, const char *key);

/* ---- Connections (conn.c) ---- */

/*
 * A nonblocking socket, plain or TLS, with an input and an output buffer, driven by an event
 * loop: the proxy's replacement for bufferevents. Callbacks run only from the loop, never from
 * inside a conn_*() call, and conn_free() may be called from any of them.
 */
struct conn;

/* What the event callback reports (or-ed). */
#define CONN_READING	0x01
#define CONN_WRITING	0x02
#define CONN_EOF	0x10
#define CONN_ERROR	0x20	/* errno tells why */
#define CONN_TIMEOUT	0x40
#define CONN_CONNECTED	0x80

typedef void (*conn_cb)(struct conn *, void *);
typedef void (*conn_eventcb)(struct conn *, short, void *);

/* A connection on the accepted socket fd, which it owns from now on; TLS when tls is not NULL
 * (the handshake runs as the first reads). Reading starts disabled. NULL on error, fd closed. */
struct conn *conn_accept(struct event_base *base, int fd, SSL_CTX *tls);
/* A plain connection to sa; CONN_CONNECTED or CONN_ERROR is reported later. NULL when it fails
 * at once for a local reason (no descriptors, ...). */
struct conn *conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen);
/* Closes the socket and frees c with its buffers; safe inside c's own callbacks. */
void conn_free(struct conn *c);
void conn_setcb(struct conn *c, conn_cb readcb, conn_cb writecb, conn_eventcb eventcb,
    void *arg);
/* What has been read and not consumed; the caller drains it. Owned by c. */
struct evbuffer *conn_input(struct conn *c);
/* Moves all of buf into c's output and writes at once what the socket takes. */
void conn_send(struct conn *c, struct evbuffer *buf);
size_t conn_output_length(struct conn *c);
/* Forgets what is queued for writing. */
void conn_drop_output(struct conn *c);
int conn_fd(struct conn *c);
void conn_enable_read(struct conn *c);
void conn_disable_read(struct conn *c);
/* Reading pauses while the input holds high bytes or more (0: no limit). */
void conn_set_read_high(struct conn *c, size_t high);
/* The write callback runs when a write leaves low bytes or fewer queued. */
void conn_set_write_low(struct conn *c, size_t low);
/* Runs the write callback from the loop even though nothing was written. */
void conn_trigger_write(struct conn *c);
/*
 * CONN_TIMEOUT|CONN_READING when reading is enabled and nothing arrives for read_ms (reading is
 * then disabled); CONN_TIMEOUT|CONN_WRITING when output (or a connect) makes no progress for
 * write_ms. 0: no deadline. Deadlines restart now.
 */
void conn_set_timeouts(struct conn *c, int read_ms, int write_ms);

/* ---- Admin listener (admin.c) ---- */

/* The admin listener's socket on addr, or -1 (logged); bound before the proxy's, so that the
 * admin answers as soon as the proxy does. */
int admin_listen(const char *addr);
/* Serves GET /status and GET /metrics on fd (taken) with base. Returns 0 or -1 (logged). */
int admin_start(struct event_base *base, int fd);
void admin_stop(void);

#endif
