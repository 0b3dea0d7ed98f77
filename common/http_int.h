/*
 * Private to the HTTP scaffolding (http.c, http_conn.c, http_serve.c, http_login.c,
 * http_config.c, http_metrics.c): the server, the per-thread engine and the connection.
 */
#ifndef HTTP_INT_H
#define HTTP_INT_H

#include <stdatomic.h>
#include <sys/queue.h>

#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "http.h"
#include "pool.h"

#define HTTP_MAX_ROUTES		16

struct http_server {
	const struct http_config *hs_cfg;
	const struct http_app	*hs_app;
	struct users		*hs_users;
	struct pool		*hs_pool;
	struct http_thread	*hs_threads;
	time_t			 hs_started;
	char			 hs_idprefix[9];	/* random, so ids differ across restarts */
	atomic_int		 hs_stopping;
	atomic_uint		 hs_next;	/* accepted so far: picks the thread of the next one */
};

/* What a connection is doing; a request being handled is c_busy on top of CONN_HEAD. */
enum conn_state {
	CONN_HEAD,	/* waiting for (the rest of) a request head, or answering one */
	CONN_BODY,	/* reading a request body */
	CONN_FLUSH,	/* the last reply is queued; close once it is written */
	CONN_LINGER,	/* written and half-closed; drain what the client still sends */
	CONN_GONE	/* the socket is closed; the struct waits for its request to end */
};

struct http_conn {
	TAILQ_ENTRY(http_conn)	 c_entry;
	struct http_thread	*c_thr;
	struct bufferevent	*c_bev;
	struct event		*c_timer;	/* head deadline, body deadline, linger */
	enum conn_state		 c_state;
	int			 c_busy;	/* c_req is with a handler */
	int			 c_running;	/* conn_process() is on the stack */
	int			 c_eof;		/* the client half-closed */
	int			 c_keepalive;	/* the current request allows another */
	char			 c_peer[64];
	struct evbuffer		*c_tx;		/* replies not yet handed to the socket */
	/* The current request: its head copied out of the input buffer, and its body. */
	struct http_req		 c_req;
	char			*c_head;
	size_t			 c_headsize;
	struct parse_hdr	*c_hdrs;
	size_t			 c_nhdrsmax;
	char			*c_body;	/* HTTP_MAX_BODY bytes once a body came */
	enum parse_framing	 c_framing;
	uint64_t		 c_left;	/* FRAME_LENGTH: body bytes still to come */
	struct parse_chunk	 c_chunk;
};

/* Per thread: the listener and the open connections. */
struct http_engine {
	struct evconnlistener	*he_lev;
	struct conn_queue	*he_queue;	/* handed over by other threads; NULL with one */
	struct event		*he_resume;	/* accepting again after EMFILE */
	struct event		*he_stopev;
	int			 he_stopping;
	TAILQ_HEAD(, http_conn)	 he_conns;
	int			 he_nconns;
	const struct timeval	*he_timeout;	/* --timeout as a libevent common timeout */
	struct parse_head	 he_head;	/* scratch: heads are parsed, then copied */
};

/* ---- http_conn.c ---- */

/* Sets up t's engine: accepting on fd (a dup of the shared listening socket, owned from now),
 * with a queue for the connections other threads accept for it when t->srv has several. */
int conn_engine_init(struct http_thread *t, int fd);
/* Frees the engine and every connection left, after the loop ended. */
void conn_engine_free(struct http_thread *t);
/* On t's loop: stop accepting, close idle connections, exit the loop once the others ended or
 * after wait_s seconds. */
void conn_engine_stop(struct http_thread *t, int wait_s);
/*
 * Queues the reply of c's current request: the status line, the headers every reply carries,
 * r->headers, Content-Length and body[0..len) (none for HEAD; body NULL for no body), copied.
 * Then reads on: the next pipelined request, or the close.
 */
void conn_reply(struct http_conn *c, int status, const char *content_type, const char *body,
    size_t len);

/* ---- http.c ---- */

/* Routes the head-and-body-complete request of c->c_req to its handler (or an error reply). */
void http_dispatch(struct http_req *r);
/* Answers the request of a connection whose head could not be read: a JSON error, then close. */
void http_fail(struct http_req *r, int status, const char *message);
/* Fills r's peer, secure and id, believing X-Forwarded-* only from a trusted proxy. */
void http_req_init(struct http_req *r, const char *addr);

/* ---- http_metrics.c ---- */

/* Counts one answered request: route index (HTTP_MAX_ROUTES for "other"), status, seconds. */
void metrics_count(int route, int status, double seconds);
/* Remembers the route names the metrics are labelled with. */
void metrics_routes(const struct http_route *routes);
/* Appends the request and auth-failure metrics, then the application's, to out. */
void metrics_render(struct http_thread *t, struct evbuffer *out);

/* ---- http_config.c ---- */

/* Whether addr (as inet_ntop spells it) is one of cfg's trusted proxies. */
int http_trusted(const struct http_config *cfg, const char *addr);

#endif
