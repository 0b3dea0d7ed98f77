/*
 * The proxy proper: one worker per thread, each with its own event_base, listeners and pool of
 * keep-alive backend connections. A client connection (struct client) reads one request head,
 * picks a backend for that request alone, forwards head and body, streams the response back,
 * and starts over; a backend connection (struct bconn) carries one exchange at a time and goes
 * back to its pool when the response ended cleanly. Framing is checked on both sides, so the
 * proxy always knows where a message ends and never mixes two clients on one connection.
 */
#include "lb.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/listener.h>

#include "cli.h"
#include "log.h"
#include "sock.h"
#include "status.h"

#define PROXY_POOL_MAX		256		/* idle connections per backend and worker */
#define PROXY_BUF_HIGH		(1024 * 1024)	/* pause the producer above this much queued */
#define PROXY_BUF_LOW		(256 * 1024)	/* ... and resume below this */
#define PROXY_INPUT_MAX		(64 * 1024)	/* read no further ahead than this */
#define PROXY_LINGER_MS		1000
#define PROXY_BODY_RATE		1000		/* bytes/s a request body must keep up */
/* Room for what the proxy adds to a head: its own fields, route prefixes in cookie paths. */
#define PROXY_OUT_SIZE		(LB_RESP_HEAD_MAX + 8192)

enum clt_state {
	CLT_HEAD,	/* waiting for a request head */
	CLT_FORWARD,	/* a request is with a backend */
	CLT_CLOSING,	/* last response queued; close once it is written */
	CLT_LINGER	/* written and half-closed; drain what the client still sends */
};

enum bc_state { BC_BUSY, BC_IDLE };
enum bc_resp { RESP_HEAD, RESP_BODY };

struct client;

struct bconn {
	TAILQ_ENTRY(bconn)	 bc_entry;	/* in the worker's pool while idle */
	struct worker		*bc_w;
	int			 bc_idx;	/* lb_backends[] */
	struct conn		*bc_conn;
	struct client		*bc_clt;
	enum bc_state		 bc_state;
	int			 bc_connected;
	int			 bc_reused;	/* came from the pool */
	int			 bc_keepalive;	/* the backend keeps it open after this response */
	int			 bc_dechunk;	/* strip chunk framing for an HTTP/1.0 client */
	int			 bc_wclosed;	/* the backend stopped reading our request */
	enum bc_resp		 bc_rstate;
	enum parse_framing	 bc_rframe;
	uint64_t		 bc_rleft;
	uint64_t		 bc_rbytes;	/* response bytes seen: 0 means a retry is safe */
	struct parse_chunk	 bc_rchunk;
};
TAILQ_HEAD(bconn_list, bconn);

struct client {
	TAILQ_ENTRY(client)	 clt_entry;
	struct worker		*clt_w;
	struct conn		*clt_conn;
	struct event		*clt_timer;	/* head deadline, body deadline, then linger */
	enum clt_state		 clt_state;
	int			 clt_tls;
	char			 clt_addr[INET6_ADDRSTRLEN];
	struct bconn		*clt_bc;
	int			 clt_eof;	/* the client half-closed */
	int			 clt_rpaused;	/* client reads paused: backend output full */
	int			 clt_wpaused;	/* backend reads paused: client output full */
	/* The current request. */
	int			 clt_minor;
	int			 clt_keepalive;
	int			 clt_headreq;	/* HEAD: the response has no body */
	int			 clt_idem;	/* GET or HEAD: safe to send twice */
	enum parse_framing	 clt_reqframe;
	uint64_t		 clt_reqleft;
	struct parse_chunk	 clt_reqchunk;
	int			 clt_reqdone;
	uint64_t		 clt_bodyprogress;/* body bytes passed on in this period */
	int			 clt_respstarted;
	char			*clt_reqhead;	/* the head as sent to backends, for a retry */
	size_t			 clt_reqheadlen;
	size_t			 clt_reqheadsize;
	uint64_t		 clt_tried;	/* backends that failed this request */
	int			 clt_tries;
	int			 clt_route;	/* lb_routes[] */
	int			 clt_be;	/* chosen backend or -1 */
	int			 clt_setcookie;
	char			 clt_cookie[17];/* the sticky cookie the client sent */
	char			 clt_reqid[LB_REQID_MAX + 1];
	char			 clt_method[33];
	char			 clt_target[129];
	struct timespec		 clt_start;
	int			 clt_status;
};

struct worker {
	int			 w_id;
	struct event_base	*w_base;
	struct evconnlistener	*w_lis[2];	/* plain, TLS */
	SSL_CTX			*w_tls;
	int			 w_stopfd;	/* eventfd: another thread asks us to stop */
	struct event		*w_stopev;
	struct event		*w_resume;	/* accept paused on EMFILE */
	struct event		*w_grace;
	int			 w_stopping;
	TAILQ_HEAD(, client)	 w_clients;
	struct bconn_list	 w_pool[LB_MAX_BACKENDS];
	int			 w_npool[LB_MAX_BACKENDS];
	struct parse_head	 w_head;	/* scratch: heads are parsed and used at once */
	char			 w_out[PROXY_OUT_SIZE];
	size_t			 w_outlen;
	int			 w_outfull;	/* the head did not fit in w_out */
	struct evbuffer		*w_tx;		/* scratch: what one callback sends to one peer */
	uint64_t		 w_seq;
};

struct lb_stats lb_stats;
static char proxy_idprefix[9];

static void proxy_head(struct client *);
static void proxy_dispatch(struct client *);
static void proxy_body(struct client *);
static void proxy_response(struct bconn *);
static void proxy_close(struct client *, const char *);

static void
proxy_tv(struct timeval *tv, int ms)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

static uint64_t
proxy_since_us(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - t0->tv_sec) * 1000000 +
	    (uint64_t)((now.tv_nsec - t0->tv_nsec) / 1000);
}

/*
 * Sends what this callback gathered in w->w_tx: one write (one TLS record when it fits), at
 * once unless the socket is still busy with earlier output.
 */
static void
proxy_send_client(struct client *clt)
{
	conn_send(clt->clt_conn, clt->clt_w->w_tx);
}

static void
proxy_send_backend(struct bconn *bc)
{
	conn_send(bc->bc_conn, bc->bc_w->w_tx);
}

/* ---- Building heads in the worker's scratch buffer ---- */

static void
proxy_out(struct worker *w, const char *s, size_t len)
{
	/* Heads are bounded by the parser's limits; the margin covers what we add, and a head
	 * that still does not fit is refused by the caller, never sent cut short. */
	if (w->w_outlen + len > sizeof(w->w_out)) {
		len = sizeof(w->w_out) - w->w_outlen;
		w->w_outfull = 1;
	}
	memcpy(w->w_out + w->w_outlen, s, len);
	w->w_outlen += len;
}

static void
proxy_outs(struct worker *w, const char *s)
{
	proxy_out(w, s, strlen(s));
}

static void
proxy_outhdr(struct worker *w, const struct parse_hdr *f)
{
	proxy_out(w, f->name, f->namelen);
	proxy_out(w, ": ", 2);
	proxy_out(w, f->value, f->valuelen);
	proxy_out(w, "\r\n", 2);
}

/* A Set-Cookie field of a routed response, with the route's prefix in its Path. */
static void
proxy_outcookie(struct worker *w, const struct route *rt, const struct parse_hdr *f)
{
	size_t n, room;

	proxy_out(w, f->name, f->namelen);
	proxy_out(w, ": ", 2);
	room = sizeof(w->w_out) - w->w_outlen;
	n = route_cookie_path(rt, f->value, f->valuelen, w->w_out + w->w_outlen, room);
	if (n > room) {
		w->w_outlen = sizeof(w->w_out);
		w->w_outfull = 1;
		return;
	}
	w->w_outlen += n;
	proxy_out(w, "\r\n", 2);
}

/*
 * The request head as the backends get it: the route's prefix replaced by "/", hop-by-hop
 * fields out, forwarding fields in.
 */
static void
proxy_build_request(struct client *clt, const struct parse_head *h)
{
	struct worker *w = clt->clt_w;
	size_t i, skip = lb_routes[clt->clt_route].rt_prefixlen;
	int cl = 0;
	char num[32];

	w->w_outlen = 0;
	w->w_outfull = 0;
	proxy_out(w, h->method, h->methodlen);
	proxy_out(w, " ", 1);
	if (skip > 0) {
		proxy_out(w, "/", 1);
		proxy_out(w, h->target + skip, h->targetlen - skip);
	} else
		proxy_out(w, h->target, h->targetlen);
	proxy_outs(w, " HTTP/1.1\r\n");
	for (i = 0; i < h->nhdrs; i++) {
		switch (h->hdrs[i].kind) {
		case HDR_OTHER:
		case HDR_HOST:
		case HDR_COOKIE:
			proxy_outhdr(w, &h->hdrs[i]);
			break;
		case HDR_CL:
			cl = 1;
			break;
		default:
			break;
		}
	}
	/* Appended to what earlier proxies wrote, in order, as one field. */
	proxy_outs(w, "X-Forwarded-For: ");
	for (i = 0; i < h->nhdrs; i++)
		if (h->hdrs[i].kind == HDR_XFF && h->hdrs[i].valuelen > 0) {
			proxy_out(w, h->hdrs[i].value, h->hdrs[i].valuelen);
			proxy_out(w, ", ", 2);
		}
	proxy_outs(w, clt->clt_addr);
	proxy_outs(w, clt->clt_tls ? "\r\nX-Forwarded-Proto: https\r\nX-Request-Id: " :
	    "\r\nX-Forwarded-Proto: http\r\nX-Request-Id: ");
	proxy_outs(w, clt->clt_reqid);
	proxy_outs(w, "\r\n");
	if (h->framing == FRAME_CHUNKED)
		proxy_outs(w, "Transfer-Encoding: chunked\r\n");
	else if (h->framing == FRAME_LENGTH || cl) {
		snprintf(num, sizeof(num), "Content-Length: %llu\r\n", (unsigned long long)h->length);
		proxy_outs(w, num);
	}
	proxy_outs(w, "\r\n");
}

/* The response head as the client gets it; w->w_outfull tells that it did not fit. */
static void
proxy_build_response(struct client *clt, const struct parse_head *h, int chunked)
{
	struct worker *w = clt->clt_w;
	const struct route *rt = &lb_routes[clt->clt_route];
	char line[64];
	size_t i;

	w->w_outlen = 0;
	w->w_outfull = 0;
	snprintf(line, sizeof(line), "HTTP/1.1 %03d ", h->status);
	proxy_outs(w, line);
	proxy_out(w, h->reason, h->reasonlen);
	proxy_outs(w, "\r\n");
	for (i = 0; i < h->nhdrs; i++) {
		if (h->hdrs[i].kind == HDR_HOP || h->hdrs[i].kind == HDR_TE)
			continue;
		if (rt->rt_prefixlen > 0 && h->hdrs[i].namelen == 10 &&
		    strncasecmp(h->hdrs[i].name, "set-cookie", 10) == 0)
			proxy_outcookie(w, rt, &h->hdrs[i]);
		else
			proxy_outhdr(w, &h->hdrs[i]);
	}
	if (h->status < 200) {
		proxy_outs(w, "\r\n");
		return;
	}
	if (chunked)
		proxy_outs(w, "Transfer-Encoding: chunked\r\n");
	if (clt->clt_setcookie) {
		proxy_outs(w, "Set-Cookie: lb=");
		proxy_outs(w, lb_backends[clt->clt_be].be_cookie);
		proxy_outs(w, "; Path=");
		proxy_outs(w, rt->rt_prefixlen > 0 ? rt->rt_prefix : "/");
		proxy_outs(w, clt->clt_tls ? "; HttpOnly; SameSite=Lax; Secure\r\n" :
		    "; HttpOnly; SameSite=Lax\r\n");
	}
	if (!clt->clt_keepalive)
		proxy_outs(w, "Connection: close\r\n");
	else if (clt->clt_minor == 0)
		proxy_outs(w, "Connection: keep-alive\r\n");
	proxy_outs(w, "\r\n");
}

/* ---- Logging and errors ---- */

static void
proxy_log(struct client *clt)
{
	uint64_t us;
	int cls = clt->clt_status / 100;

	atomic_fetch_add(&lb_stats.st_requests, 1);
	if (cls >= 1 && cls <= 5)
		atomic_fetch_add(&lb_stats.st_status[cls], 1);
	if (lb_conf.quiet)
		return;
	us = clt->clt_method[0] ? proxy_since_us(&clt->clt_start) : 0;
	log_info("%s \"%s %s\" %d backend=%s %llu.%03llums id=%s", clt->clt_addr,
	    clt->clt_method[0] ? clt->clt_method : "-", clt->clt_target[0] ? clt->clt_target : "-",
	    clt->clt_status, clt->clt_be >= 0 ? lb_backends[clt->clt_be].be_name : "-",
	    (unsigned long long)(us / 1000), (unsigned long long)(us % 1000),
	    clt->clt_reqid[0] ? clt->clt_reqid : "-");
}

/* Ends a backend connection: out of the pool if idle, then freed. */
static void
proxy_bc_free(struct bconn *bc)
{
	struct worker *w = bc->bc_w;

	if (bc->bc_state == BC_IDLE) {
		TAILQ_REMOVE(&w->w_pool[bc->bc_idx], bc, bc_entry);
		w->w_npool[bc->bc_idx]--;
	}
	if (bc->bc_clt != NULL)
		bc->bc_clt->clt_bc = NULL;
	conn_free(bc->bc_conn);
	free(bc);
}

/*
 * Closes once the last response is written. A deadline of the request no longer applies: the
 * write timeout covers a client that stops reading.
 */
static void
proxy_flush_close(struct client *clt)
{
	evtimer_del(clt->clt_timer);
	clt->clt_state = CLT_CLOSING;
	conn_set_write_low(clt->clt_conn, 0);
	if (conn_output_length(clt->clt_conn) == 0)
		conn_trigger_write(clt->clt_conn);
}

/*
 * Answers the current request with the contract's JSON error and closes the connection: after
 * a framing error nothing that follows on it can be trusted.
 */
static void
proxy_error(struct client *clt, int status, const char *message)
{
	struct evbuffer *out = clt->clt_w->w_tx;
	char body[256];
	int n;

	/* Whatever was being passed on for this exchange is void now. */
	evbuffer_drain(out, evbuffer_get_length(out));
	if (clt->clt_bc != NULL)
		proxy_bc_free(clt->clt_bc);
	if (clt->clt_respstarted) {
		proxy_close(clt, message);
		return;
	}
	n = snprintf(body, sizeof(body), "{\"error\": \"%s\", \"message\": \"%s\"}\n",
	    status_error(status), message);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %d\r\nCache-Control: no-store\r\nConnection: close\r\n"
	    "X-Served-By: balancer\r\n", status, status_reason(status), n);
	if (clt->clt_reqid[0])
		evbuffer_add_printf(out, "X-Request-Id: %s\r\n", clt->clt_reqid);
	evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, body, (size_t)n);
	proxy_send_client(clt);
	clt->clt_status = status;
	clt->clt_respstarted = 1;
	proxy_log(clt);
	if (status >= 500 && !lb_conf.quiet)
		log_warnx("%s: %d: %s", clt->clt_addr, status, message);
	proxy_flush_close(clt);
}

/* The one teardown for a client connection; why is logged in debug mode (NULL: normal). */
static void
proxy_close(struct client *clt, const char *why)
{
	struct worker *w = clt->clt_w;

	if (why != NULL)
		log_debug("%s: %s", clt->clt_addr, why);
	evbuffer_drain(w->w_tx, evbuffer_get_length(w->w_tx));
	if (clt->clt_bc != NULL)
		proxy_bc_free(clt->clt_bc);
	event_free(clt->clt_timer);
	conn_free(clt->clt_conn);
	TAILQ_REMOVE(&w->w_clients, clt, clt_entry);
	free(clt->clt_reqhead);
	free(clt);
	atomic_fetch_sub(&lb_stats.st_clients, 1);
	if (w->w_stopping && TAILQ_EMPTY(&w->w_clients))
		event_base_loopexit(w->w_base, NULL);
}

/* ---- Moving bodies ---- */

/* Moves chunked framing and data from in to out (framing dropped when dechunk); PARSE_*. */
static int
proxy_move_chunked(struct evbuffer *in, struct evbuffer *out, struct parse_chunk *c, int dechunk)
{
	struct evbuffer_iovec v;
	size_t used;
	int isdata, r;

	while (evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		r = parse_chunk_step(c, v.iov_base, v.iov_len, &used, &isdata);
		if (r == PARSE_ERROR)
			return PARSE_ERROR;
		if (isdata || !dechunk)
			evbuffer_remove_buffer(in, out, used);
		else
			evbuffer_drain(in, used);
		if (r == PARSE_OK)
			return PARSE_OK;
	}
	return PARSE_MORE;
}

/*
 * Starts a period of the body deadline (RUDY, a slowloris for bodies: a per-read timeout never
 * fires for a body sent one byte at a time). The body must end within lb_conf.body_ms or bring
 * PROXY_BODY_RATE bytes a second in every period, so a large upload is not cut short.
 */
static void
proxy_body_period(struct client *clt)
{
	struct timeval tv;

	clt->clt_bodyprogress = 0;
	proxy_tv(&tv, lb_conf.body_ms);
	evtimer_add(clt->clt_timer, &tv);
}

/* Forwards what has arrived of the request body to the backend. */
static void
proxy_body(struct client *clt)
{
	struct bconn *bc = clt->clt_bc;
	struct evbuffer *in = conn_input(clt->clt_conn);
	struct evbuffer *tx = clt->clt_w->w_tx;
	size_t n, before = evbuffer_get_length(tx);
	int r;

	/* Once the backend stopped reading, the body has nowhere to go: it stays unread. */
	if (clt->clt_reqdone || bc->bc_wclosed)
		return;
	if (clt->clt_reqframe == FRAME_LENGTH) {
		n = evbuffer_get_length(in);
		if (n > clt->clt_reqleft)
			n = (size_t)clt->clt_reqleft;
		evbuffer_remove_buffer(in, tx, n);
		clt->clt_reqleft -= n;
		clt->clt_reqdone = clt->clt_reqleft == 0;
	} else {
		r = proxy_move_chunked(in, tx, &clt->clt_reqchunk, 0);
		if (r == PARSE_ERROR) {
			proxy_error(clt, 400, "malformed chunked request body");
			return;
		}
		if (clt->clt_reqchunk.pc_total > lb_conf.max_body) {
			proxy_error(clt, 413, "request body too large");
			return;
		}
		clt->clt_reqdone = r == PARSE_OK;
	}
	if (!clt->clt_reqdone && clt->clt_eof && evbuffer_get_length(in) == 0) {
		proxy_close(clt, "the client left in the middle of a body");
		return;
	}
	clt->clt_bodyprogress += evbuffer_get_length(tx) - before;
	/* The deadline starts once a backend can take the body: connecting is not the client's
	 * time. */
	if (clt->clt_reqdone)
		evtimer_del(clt->clt_timer);
	else if (!evtimer_pending(clt->clt_timer, NULL))
		proxy_body_period(clt);
	proxy_send_backend(bc);
	if (!clt->clt_reqdone &&
	    conn_output_length(bc->bc_conn) > PROXY_BUF_HIGH) {
		conn_disable_read(clt->clt_conn);
		clt->clt_rpaused = 1;
		conn_set_write_low(bc->bc_conn, PROXY_BUF_LOW);
	}
}

/* ---- Backend connections ---- */

static void
proxy_bc_read(struct conn *c, void *arg)
{
	struct bconn *bc = arg;

	if (bc->bc_state == BC_IDLE) {
		/* Nothing is owed on an idle connection: whatever came cannot be trusted. */
		proxy_bc_free(bc);
		return;
	}
	proxy_response(bc);
}

static void
proxy_bc_write(struct conn *c, void *arg)
{
	struct bconn *bc = arg;
	struct client *clt = bc->bc_clt;

	if (clt == NULL || !clt->clt_rpaused)
		return;
	clt->clt_rpaused = 0;
	conn_set_write_low(c, 0);
	conn_enable_read(clt->clt_conn);
	proxy_body(clt);
}

/* The exchange on bc failed before the response ended: retry, answer 502/504, or give up. */
static void
proxy_bc_failed(struct bconn *bc, short what)
{
	struct client *clt = bc->bc_clt;
	struct backend *be = &lb_backends[bc->bc_idx];
	int connectfail = !bc->bc_connected, timeout = what & CONN_TIMEOUT;
	int reused = bc->bc_reused, idx = bc->bc_idx;
	uint64_t seen = bc->bc_rbytes;
	char why[128];

	if (connectfail) {
		snprintf(why, sizeof(why), "connect: %s", timeout ? "timeout" :
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		backend_mark_down(be, why);
	}
	proxy_bc_free(bc);
	if (clt->clt_respstarted) {
		backend_record(be, 1, 0);
		proxy_close(clt, "backend failed mid-response");
		return;
	}
	/* Nothing reached the backend, or it was a GET/HEAD without a body: safe to resend.
	 * A stale pooled connection says nothing about the backend, so it may be tried again. */
	if (seen == 0 && (connectfail || (clt->clt_idem && clt->clt_reqframe == FRAME_NONE &&
	    !timeout))) {
		if (connectfail || !reused)
			clt->clt_tried |= 1ULL << idx;
		atomic_fetch_add(&lb_stats.st_retries, 1);
		proxy_dispatch(clt);
		return;
	}
	backend_record(be, 1, 0);
	if (timeout)
		proxy_error(clt, 504, "the backend did not answer in time");
	else
		proxy_error(clt, 502, "the backend closed the connection without a complete response");
}

static void
proxy_bc_event(struct conn *c, short what, void *arg)
{
	struct bconn *bc = arg;
	struct client *clt = bc->bc_clt;
	int one = 1;

	if (what & CONN_CONNECTED) {
		bc->bc_connected = 1;
		setsockopt(conn_fd(c), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn_set_timeouts(c, lb_conf.backend_ms, lb_conf.backend_ms);
		if (clt != NULL)
			proxy_body(clt);
		return;
	}
	if (bc->bc_state == BC_IDLE) {
		proxy_bc_free(bc);
		return;
	}
	if ((what & CONN_WRITING) && (what & CONN_ERROR) && bc->bc_connected) {
		/* The backend stopped reading the request, typically after answering it early
		 * (413 to a body too large) and closing. That answer may still sit unread in the
		 * socket, so this is not the end of the exchange: what the read side gets (the
		 * answer, the end, an error or its timeout) decides. The rest of the body is
		 * dropped; since it never ends, the client connection closes after the answer. */
		bc->bc_wclosed = 1;
		conn_drop_output(c);
		evtimer_del(clt->clt_timer);
		return;
	}
	if ((what & CONN_EOF) && bc->bc_rstate == RESP_BODY && bc->bc_rframe == FRAME_CLOSE) {
		/* The end of a close-delimited response. */
		bc->bc_keepalive = 0;
		bc->bc_rframe = FRAME_NONE;
		proxy_response(bc);
		return;
	}
	proxy_bc_failed(bc, what);
}

/* A connection to backend idx; the caller attaches it. NULL when connect fails at once. */
static struct bconn *
proxy_bc_connect(struct worker *w, int idx)
{
	struct backend *be = &lb_backends[idx];
	struct bconn *bc;

	if ((bc = calloc(1, sizeof(*bc))) == NULL)
		return NULL;
	bc->bc_w = w;
	bc->bc_idx = idx;
	bc->bc_conn = conn_connect(w->w_base, (struct sockaddr *)&be->be_ss, be->be_sslen);
	if (bc->bc_conn == NULL) {
		free(bc);
		return NULL;
	}
	conn_setcb(bc->bc_conn, proxy_bc_read, proxy_bc_write, proxy_bc_event, bc);
	/* Until connected, the write timeout is the connect timeout. */
	conn_set_timeouts(bc->bc_conn, lb_conf.backend_ms, lb_conf.connect_ms);
	return bc;
}

/* After a complete exchange: back to the pool when the backend keeps it open, else freed. */
static void
proxy_bc_release(struct bconn *bc, int reusable)
{
	struct worker *w = bc->bc_w;

	if (bc->bc_clt != NULL)
		bc->bc_clt->clt_bc = NULL;
	bc->bc_clt = NULL;
	if (!reusable || w->w_stopping || w->w_npool[bc->bc_idx] >= PROXY_POOL_MAX ||
	    evbuffer_get_length(conn_input(bc->bc_conn)) > 0) {
		proxy_bc_free(bc);
		return;
	}
	bc->bc_state = BC_IDLE;
	bc->bc_reused = 1;
	conn_set_write_low(bc->bc_conn, 0);
	conn_enable_read(bc->bc_conn);
	TAILQ_INSERT_HEAD(&w->w_pool[bc->bc_idx], bc, bc_entry);
	w->w_npool[bc->bc_idx]++;
}

/* ---- The request/response cycle ---- */

/* Picks a backend for the current request and sends the head; retries come back here. */
static void
proxy_dispatch(struct client *clt)
{
	struct worker *w = clt->clt_w;
	struct bconn *bc;
	int idx;

	for (;;) {
		if (clt->clt_tries++ > lb_nbackends) {
			proxy_error(clt, 502, "no backend could be reached");
			return;
		}
		idx = backend_choose(clt->clt_route, clt->clt_cookie[0] ? clt->clt_cookie : NULL,
		    strlen(clt->clt_cookie), clt->clt_tried);
		if (idx < 0) {
			proxy_error(clt, clt->clt_tries == 1 ? 503 : 502,
			    clt->clt_tries == 1 ? "no backend is available" :
			    "no backend could be reached");
			return;
		}
		clt->clt_be = idx;
		clt->clt_setcookie = lb_routes[clt->clt_route].rt_sticky &&
		    strcmp(clt->clt_cookie, lb_backends[idx].be_cookie) != 0;
		/* A request that must not be sent twice never rides a connection that may
		 * turn out to have been closed by the backend meanwhile. */
		bc = NULL;
		if (clt->clt_idem && clt->clt_reqframe == FRAME_NONE &&
		    (bc = TAILQ_FIRST(&w->w_pool[idx])) != NULL) {
			TAILQ_REMOVE(&w->w_pool[idx], bc, bc_entry);
			w->w_npool[idx]--;
		} else if ((bc = proxy_bc_connect(w, idx)) == NULL) {
			/* A local failure (no descriptors, ...): says nothing about the backend. */
			clt->clt_tried |= 1ULL << idx;
			continue;
		}
		break;
	}
	bc->bc_state = BC_BUSY;
	bc->bc_clt = clt;
	bc->bc_rstate = RESP_HEAD;
	bc->bc_rbytes = 0;
	clt->clt_bc = bc;
	evbuffer_add(w->w_tx, clt->clt_reqhead, clt->clt_reqheadlen);
	proxy_send_backend(bc);
	conn_enable_read(bc->bc_conn);
	if (bc->bc_connected)
		proxy_body(clt);
}

/* Fills the request fields of clt from a parsed head; 0, or -1 after answering an error. */
static int
proxy_request(struct client *clt, const struct parse_head *h)
{
	struct worker *w = clt->clt_w;
	const char *v;
	size_t i, n, vlen;

	clt->clt_minor = h->minor;
	clt->clt_keepalive = !w->w_stopping && (h->minor == 1 ? !h->conn_close : h->conn_keepalive);
	n = h->methodlen < sizeof(clt->clt_method) - 1 ? h->methodlen : sizeof(clt->clt_method) - 1;
	memcpy(clt->clt_method, h->method, n);
	clt->clt_method[n] = '\0';
	/* Kept for the access log only, and as it shows it: no query values (tokens) in logs. */
	log_target(h->target, h->targetlen, clt->clt_target, sizeof(clt->clt_target));
	clt->clt_headreq = strcmp(clt->clt_method, "HEAD") == 0;
	clt->clt_idem = clt->clt_headreq || strcmp(clt->clt_method, "GET") == 0;
	clt->clt_reqframe = h->framing;
	clt->clt_reqleft = h->length;
	clt->clt_reqdone = h->framing == FRAME_NONE;
	memset(&clt->clt_reqchunk, 0, sizeof(clt->clt_reqchunk));
	clt->clt_cookie[0] = '\0';
	clt->clt_reqid[0] = '\0';
	clt->clt_route = route_match(h->target, h->targetlen);
	for (i = 0; i < h->nhdrs; i++) {
		const struct parse_hdr *f = &h->hdrs[i];

		if (f->kind == HDR_XRID && parse_reqid_ok(f->value, f->valuelen)) {
			memcpy(clt->clt_reqid, f->value, f->valuelen);
			clt->clt_reqid[f->valuelen] = '\0';
		} else if (f->kind == HDR_COOKIE && lb_routes[clt->clt_route].rt_sticky &&
		    (v = parse_cookie(f->value, f->valuelen, "lb", &vlen)) != NULL && vlen == 16) {
			memcpy(clt->clt_cookie, v, 16);
			clt->clt_cookie[16] = '\0';
		}
	}
	if (clt->clt_reqid[0] == '\0')
		snprintf(clt->clt_reqid, sizeof(clt->clt_reqid), "%s-%d-%llx", proxy_idprefix,
		    w->w_id, (unsigned long long)++w->w_seq);
	if (h->framing == FRAME_LENGTH && h->length > lb_conf.max_body) {
		proxy_error(clt, 413, "request body too large");
		return -1;
	}
	if (lb_routes[clt->clt_route].rt_nbe == 0) {
		proxy_error(clt, 404, "no route serves this path");
		return -1;
	}
	proxy_build_request(clt, h);
	if (w->w_outlen > clt->clt_reqheadsize) {
		free(clt->clt_reqhead);
		clt->clt_reqheadsize = w->w_outlen < 1024 ? 1024 : w->w_outlen;
		if ((clt->clt_reqhead = malloc(clt->clt_reqheadsize)) == NULL) {
			clt->clt_reqheadsize = 0;
			proxy_close(clt, "out of memory");
			return -1;
		}
	}
	memcpy(clt->clt_reqhead, w->w_out, w->w_outlen);
	clt->clt_reqheadlen = w->w_outlen;
	return 0;
}

/* Reads a request head if one has arrived, and starts its exchange. */
static void
proxy_head(struct client *clt)
{
	struct worker *w = clt->clt_w;
	struct parse_head *h = &w->w_head;
	struct evbuffer *in = conn_input(clt->clt_conn);
	struct timeval tv;
	size_t len = evbuffer_get_length(in), n;
	const char *p;
	int r;

	/* Half-closed: the requests it pipelined before are answered, then it is closed. */
	if (len == 0) {
		if (clt->clt_eof)
			proxy_flush_close(clt);
		return;
	}
	n = len < LB_REQ_HEAD_MAX ? len : LB_REQ_HEAD_MAX;
	if ((p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n)) == NULL) {
		proxy_close(clt, "out of memory");
		return;
	}
	r = parse_request(p, n, LB_REQ_HEAD_MAX, h);
	if (r == PARSE_MORE && clt->clt_eof) {
		proxy_flush_close(clt);
		return;
	}
	if (r == PARSE_MORE) {
		/* Slowloris: the whole head has a deadline, not just each read. */
		if (!evtimer_pending(clt->clt_timer, NULL)) {
			proxy_tv(&tv, lb_conf.header_ms);
			evtimer_add(clt->clt_timer, &tv);
		}
		return;
	}
	clt->clt_method[0] = clt->clt_target[0] = clt->clt_reqid[0] = '\0';
	clt->clt_be = -1;
	clock_gettime(CLOCK_MONOTONIC, &clt->clt_start);
	if (r == PARSE_ERROR) {
		proxy_error(clt, h->err_status, h->err);
		return;
	}
	evtimer_del(clt->clt_timer);
	if (proxy_request(clt, h) == -1)
		return;
	evbuffer_drain(in, h->headlen);
	clt->clt_state = CLT_FORWARD;
	clt->clt_respstarted = 0;
	clt->clt_tried = 0;
	clt->clt_tries = 0;
	proxy_dispatch(clt);
}

/* The response ended: release the backend and read the next request, or close. */
static void
proxy_done(struct client *clt)
{
	struct bconn *bc = clt->clt_bc;

	proxy_bc_release(bc, bc->bc_keepalive && clt->clt_reqdone);
	proxy_log(clt);
	if (!clt->clt_keepalive || !clt->clt_reqdone || clt->clt_w->w_stopping) {
		proxy_flush_close(clt);
		return;
	}
	clt->clt_state = CLT_HEAD;
	if (clt->clt_rpaused) {
		clt->clt_rpaused = 0;
		conn_enable_read(clt->clt_conn);
	}
	proxy_head(clt);
}

/* Handles the head of a backend response: 0 to go on with the body, 1 while the head is
 * incomplete, -1 when done with bc. */
static int
proxy_response_head(struct bconn *bc)
{
	struct client *clt = bc->bc_clt;
	struct worker *w = bc->bc_w;
	struct parse_head *h = &w->w_head;
	struct evbuffer *in = conn_input(bc->bc_conn);
	struct evbuffer *out = w->w_tx;
	size_t len = evbuffer_get_length(in), n;
	const char *p;
	int r, chunked;

	n = len < LB_RESP_HEAD_MAX ? len : LB_RESP_HEAD_MAX;
	if ((p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n)) == NULL) {
		proxy_close(clt, "out of memory");
		return -1;
	}
	r = parse_response(p, n, LB_RESP_HEAD_MAX, clt->clt_headreq, h);
	if (r == PARSE_MORE)
		return 1;
	if (r == PARSE_ERROR || h->status == 101) {
		log_warnx("backend %s: %s", lb_backends[bc->bc_idx].be_name,
		    r == PARSE_ERROR ? h->err : "unexpected protocol switch");
		backend_record(&lb_backends[bc->bc_idx], 1, 0);
		proxy_error(clt, 502, "the backend sent an invalid response");
		return -1;
	}
	bc->bc_rbytes += h->headlen;
	if (h->status < 200) {
		/* Interim responses (100 Continue) go to HTTP/1.1 clients only. */
		if (clt->clt_minor == 1) {
			proxy_build_response(clt, h, 0);
			evbuffer_add(out, w->w_out, w->w_outlen);
		}
		evbuffer_drain(in, h->headlen);
		return 0;
	}
	backend_record(&lb_backends[bc->bc_idx], 0, proxy_since_us(&clt->clt_start));
	bc->bc_rframe = h->framing;
	bc->bc_rleft = h->length;
	memset(&bc->bc_rchunk, 0, sizeof(bc->bc_rchunk));
	bc->bc_keepalive = h->framing != FRAME_CLOSE &&
	    (h->minor == 1 ? !h->conn_close : h->conn_keepalive);
	bc->bc_dechunk = clt->clt_minor == 0 && h->framing == FRAME_CHUNKED;
	/* Without a length the client learns the end from the close. A request body still
	 * coming may never end (the backend answered early, maybe to refuse it): the response
	 * then says that the connection closes after it. */
	if (h->framing == FRAME_CLOSE || bc->bc_dechunk || !clt->clt_reqdone)
		clt->clt_keepalive = 0;
	chunked = h->framing == FRAME_CHUNKED && !bc->bc_dechunk;
	clt->clt_status = h->status;
	proxy_build_response(clt, h, chunked);
	if (w->w_outfull) {
		log_warnx("backend %s: response head too large once rewritten",
		    lb_backends[bc->bc_idx].be_name);
		proxy_error(clt, 502, "the backend's response head is too large");
		return -1;
	}
	evbuffer_add(out, w->w_out, w->w_outlen);
	evbuffer_drain(in, h->headlen);
	clt->clt_respstarted = 1;
	bc->bc_rstate = RESP_BODY;
	return 0;
}

/* Streams what the backend sent to the client, and ends the exchange at the end of the body. */
static void
proxy_response(struct bconn *bc)
{
	struct client *clt = bc->bc_clt;
	struct evbuffer *in = conn_input(bc->bc_conn);
	struct evbuffer *out = bc->bc_w->w_tx;
	size_t n;
	int r;

	/* Head and body of a small response leave in one write. */
	for (;;) {
		if (bc->bc_rstate == RESP_HEAD) {
			if (evbuffer_get_length(in) == 0)
				return;
			if ((r = proxy_response_head(bc)) == 1)
				proxy_send_client(clt);	/* an interim 100 may be waiting */
			if (r != 0)
				return;
			continue;
		}
		n = evbuffer_get_length(in);
		bc->bc_rbytes += n;
		switch (bc->bc_rframe) {
		case FRAME_NONE:
			proxy_send_client(clt);
			proxy_done(clt);
			return;
		case FRAME_LENGTH:
			if (n > bc->bc_rleft)
				n = (size_t)bc->bc_rleft;
			evbuffer_remove_buffer(in, out, n);
			bc->bc_rleft -= n;
			if (bc->bc_rleft == 0) {
				proxy_send_client(clt);
				proxy_done(clt);
				return;
			}
			break;
		case FRAME_CHUNKED:
			r = proxy_move_chunked(in, out, &bc->bc_rchunk, bc->bc_dechunk);
			if (r == PARSE_ERROR) {
				log_warnx("backend %s: malformed chunked response",
				    lb_backends[bc->bc_idx].be_name);
				proxy_close(clt, "malformed chunked response");
				return;
			}
			if (r == PARSE_OK) {
				proxy_send_client(clt);
				proxy_done(clt);
				return;
			}
			break;
		case FRAME_CLOSE:
			evbuffer_add_buffer(out, in);
			break;
		}
		break;
	}
	proxy_send_client(clt);
	if (conn_output_length(clt->clt_conn) > PROXY_BUF_HIGH) {
		conn_disable_read(bc->bc_conn);
		clt->clt_wpaused = 1;
		conn_set_write_low(clt->clt_conn, PROXY_BUF_LOW);
	}
}

/* ---- Client connection callbacks ---- */

static void
proxy_client_read(struct conn *c, void *arg)
{
	struct client *clt = arg;

	switch (clt->clt_state) {
	case CLT_HEAD:
		proxy_head(clt);
		break;
	case CLT_FORWARD:
		if (clt->clt_bc != NULL && clt->clt_bc->bc_connected)
			proxy_body(clt);
		break;
	case CLT_CLOSING:
		break;
	case CLT_LINGER:
		evbuffer_drain(conn_input(c), evbuffer_get_length(conn_input(c)));
		break;
	}
}

/* Half-closes a plain connection and reads until the client closes, so that what it sent
 * after our last response does not turn into a reset that destroys the response. */
static void
proxy_linger(struct client *clt)
{
	struct timeval tv;

	if (clt->clt_tls || clt->clt_eof) {
		proxy_close(clt, NULL);
		return;
	}
	shutdown(conn_fd(clt->clt_conn), SHUT_WR);
	clt->clt_state = CLT_LINGER;
	evbuffer_drain(conn_input(clt->clt_conn),
	    evbuffer_get_length(conn_input(clt->clt_conn)));
	conn_enable_read(clt->clt_conn);
	proxy_tv(&tv, PROXY_LINGER_MS);
	evtimer_add(clt->clt_timer, &tv);
}

static void
proxy_client_write(struct conn *c, void *arg)
{
	struct client *clt = arg;

	if (clt->clt_wpaused) {
		clt->clt_wpaused = 0;
		conn_set_write_low(c, 0);
		if (clt->clt_bc != NULL)
			conn_enable_read(clt->clt_bc->bc_conn);
	}
	if (clt->clt_state == CLT_CLOSING &&
	    conn_output_length(c) == 0)
		proxy_linger(clt);
}

static void
proxy_client_event(struct conn *c, short what, void *arg)
{
	struct client *clt = arg;

	if (what & CONN_TIMEOUT) {
		if ((what & CONN_READING) && clt->clt_state == CLT_FORWARD) {
			/* A client waiting for its response is not idle. */
			if (clt->clt_reqdone) {
				conn_enable_read(c);
				return;
			}
			proxy_error(clt, 408, "the request body did not arrive in time");
			return;
		}
		proxy_close(clt, "client timeout");
		return;
	}
	if ((what & CONN_EOF) && clt->clt_state == CLT_FORWARD) {
		/* Half-closed after its request: it may still read the response. A body still in
		 * the input buffer is passed on first; proxy_body() closes if it cannot end. */
		clt->clt_eof = 1;
		if (!clt->clt_reqdone && clt->clt_bc != NULL && clt->clt_bc->bc_connected)
			proxy_body(clt);
		return;
	}
	proxy_close(clt, what & CONN_EOF ? NULL : "client connection error");
}

static void
proxy_client_timer(evutil_socket_t fd, short what, void *arg)
{
	struct client *clt = arg;

	switch (clt->clt_state) {
	case CLT_HEAD:
		clt->clt_method[0] = clt->clt_target[0] = clt->clt_reqid[0] = '\0';
		clt->clt_be = -1;
		proxy_error(clt, 408, "the request head did not arrive in time");
		break;
	case CLT_FORWARD:
		/* A body held back because the backend does not take it is not the client's
		 * fault: that wait is the backend's write timeout. */
		if (clt->clt_rpaused || clt->clt_bodyprogress >=
		    (uint64_t)lb_conf.body_ms * PROXY_BODY_RATE / 1000) {
			proxy_body_period(clt);
			break;
		}
		/* Once the response started, no 408 can be sent: the close cuts it short, and
		 * its framing tells the client that the exchange failed. A response that ended
		 * already is not affected: it is queued in full and its close has no deadline. */
		proxy_error(clt, 408, "the request body arrived too slowly");
		break;
	case CLT_CLOSING:
	case CLT_LINGER:
		proxy_close(clt, NULL);
		break;
	}
}

/* ---- Accepting ---- */

static void
proxy_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct worker *w = arg;
	struct client *clt;
	int one = 1, tls = lis == w->w_lis[1];

	if ((clt = calloc(1, sizeof(*clt))) == NULL) {
		close(fd);
		return;
	}
	if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, clt->clt_addr,
		    sizeof(clt->clt_addr));
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, clt->clt_addr,
		    sizeof(clt->clt_addr));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((clt->clt_conn = conn_accept(w->w_base, fd, tls ? w->w_tls : NULL)) == NULL) {
		free(clt);	/* fd is closed */
		return;
	}
	if ((clt->clt_timer = evtimer_new(w->w_base, proxy_client_timer, clt)) == NULL)
		goto fail;
	clt->clt_w = w;
	clt->clt_tls = tls;
	clt->clt_be = -1;
	clt->clt_state = CLT_HEAD;
	conn_setcb(clt->clt_conn, proxy_client_read, proxy_client_write, proxy_client_event, clt);
	conn_set_read_high(clt->clt_conn, PROXY_INPUT_MAX);
	conn_set_timeouts(clt->clt_conn, lb_conf.idle_ms, lb_conf.idle_ms);
	conn_enable_read(clt->clt_conn);
	TAILQ_INSERT_TAIL(&w->w_clients, clt, clt_entry);
	atomic_fetch_add(&lb_stats.st_accepted, 1);
	atomic_fetch_add(&lb_stats.st_clients, 1);
	return;
 fail:
	conn_free(clt->clt_conn);
	free(clt);
}

static void
proxy_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < 2; i++)
		if (w->w_lis[i] != NULL)
			evconnlistener_enable(w->w_lis[i]);
}

/* Out of descriptors: pause accepting for a moment instead of spinning on accept(). */
static void
proxy_accept_error(struct evconnlistener *lis, void *arg)
{
	struct worker *w = arg;
	struct timeval tv = { 0, 100 * 1000 };
	int i, err = EVUTIL_SOCKET_ERROR();

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_warnx("accept: %s", evutil_socket_error_to_string(err));
		return;
	}
	if (atomic_fetch_add(&lb_stats.st_accept_paused, 1) == 0)
		log_warnx("accept: %s: pausing accept", evutil_socket_error_to_string(err));
	for (i = 0; i < 2; i++)
		if (w->w_lis[i] != NULL)
			evconnlistener_disable(w->w_lis[i]);
	evtimer_add(w->w_resume, &tv);
}

/* ---- Workers ---- */

static void
proxy_grace_over(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	log_warnx("worker %d: grace period over, dropping open connections", w->w_id);
	event_base_loopexit(w->w_base, NULL);
}

/* Stop accepting, close idle keep-alive connections, let the others finish. */
static void
proxy_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct client *clt, *next;
	struct timeval tv;
	uint64_t v;
	int i;

	if (read(w->w_stopfd, &v, sizeof(v)) != sizeof(v) || w->w_stopping)
		return;
	w->w_stopping = 1;
	for (i = 0; i < 2; i++)
		if (w->w_lis[i] != NULL) {
			evconnlistener_free(w->w_lis[i]);
			w->w_lis[i] = NULL;
		}
	for (clt = TAILQ_FIRST(&w->w_clients); clt != NULL; clt = next) {
		next = TAILQ_NEXT(clt, clt_entry);
		if (clt->clt_state == CLT_HEAD &&
		    evbuffer_get_length(conn_input(clt->clt_conn)) == 0)
			proxy_close(clt, "stopping");
	}
	if (TAILQ_EMPTY(&w->w_clients)) {
		event_base_loopexit(w->w_base, NULL);
		return;
	}
	proxy_tv(&tv, lb_conf.grace_ms);
	evtimer_add(w->w_grace, &tv);
}

struct worker *
proxy_worker_new(int id, int fd, int tlsfd, SSL_CTX *tls)
{
	struct event_config *cfg;
	struct worker *w;
	unsigned char rnd[4];
	int i;

	if (proxy_idprefix[0] == '\0') {
		if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
			fatal("getrandom");
		snprintf(proxy_idprefix, sizeof(proxy_idprefix), "%02x%02x%02x%02x",
		    rnd[0], rnd[1], rnd[2], rnd[3]);
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->w_id = id;
	w->w_tls = tls;
	w->w_stopfd = -1;
	TAILQ_INIT(&w->w_clients);
	for (i = 0; i < LB_MAX_BACKENDS; i++)
		TAILQ_INIT(&w->w_pool[i]);
	/* Each loop belongs to one thread: no locking needed. */
	if ((cfg = event_config_new()) == NULL)
		goto fail;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	w->w_base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (w->w_base == NULL)
		goto fail;
	if ((w->w_stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1 ||
	    (w->w_tx = evbuffer_new()) == NULL)
		goto fail;
	w->w_stopev = event_new(w->w_base, w->w_stopfd, EV_READ | EV_PERSIST, proxy_stop_cb, w);
	w->w_resume = evtimer_new(w->w_base, proxy_accept_resume, w);
	w->w_grace = evtimer_new(w->w_base, proxy_grace_over, w);
	if (w->w_stopev == NULL || w->w_resume == NULL || w->w_grace == NULL ||
	    event_add(w->w_stopev, NULL) == -1)
		goto fail;
	if (fd != -1 && (w->w_lis[0] = evconnlistener_new(w->w_base, proxy_accept, w,
	    LEV_OPT_CLOSE_ON_FREE, 0, fd)) == NULL)
		goto fail;
	if (tlsfd != -1 && (w->w_lis[1] = evconnlistener_new(w->w_base, proxy_accept, w,
	    LEV_OPT_CLOSE_ON_FREE, 0, tlsfd)) == NULL)
		goto fail;
	for (i = 0; i < 2; i++)
		if (w->w_lis[i] != NULL)
			evconnlistener_set_error_cb(w->w_lis[i], proxy_accept_error);
	return w;
 fail:
	log_warnx("worker %d: cannot set up its event loop", id);
	proxy_worker_free(w);
	return NULL;
}

struct event_base *
proxy_worker_base(struct worker *w)
{
	return w->w_base;
}

void
proxy_worker_run(struct worker *w)
{
	event_base_dispatch(w->w_base);
}

void
proxy_worker_stop(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->w_stopfd, &one, sizeof(one)) != sizeof(one))
		log_warn("worker %d: cannot signal stop", w->w_id);
}

void
proxy_worker_free(struct worker *w)
{
	struct client *clt;
	int i;

	if (w == NULL)
		return;
	/* Closing the last client would ask the (ended) loop to exit again: harmless. */
	while ((clt = TAILQ_FIRST(&w->w_clients)) != NULL)
		proxy_close(clt, "shutting down");
	for (i = 0; i < LB_MAX_BACKENDS; i++)
		while (!TAILQ_EMPTY(&w->w_pool[i]))
			proxy_bc_free(TAILQ_FIRST(&w->w_pool[i]));
	for (i = 0; i < 2; i++)
		if (w->w_lis[i] != NULL)
			evconnlistener_free(w->w_lis[i]);
	if (w->w_stopev != NULL)
		event_free(w->w_stopev);
	if (w->w_resume != NULL)
		event_free(w->w_resume);
	if (w->w_grace != NULL)
		event_free(w->w_grace);
	if (w->w_stopfd != -1)
		close(w->w_stopfd);
	if (w->w_tx != NULL)
		evbuffer_free(w->w_tx);
	if (w->w_base != NULL)
		event_base_free(w->w_base);
	free(w);
}

int
proxy_listen(const char *addr)
{
	char host[256];
	unsigned short port;
	int fd;

	if (cli_addr(addr, host, sizeof(host), &port) == -1) {
		log_warnx("%s: not HOST:PORT", addr);
		return -1;
	}
	/* Only at start-up: a port we cannot have is fatal, and the line says so. */
	if ((fd = sock_listen(host, port)) == -1)
		fatal("cannot listen on %s", addr);
	return fd;
}
