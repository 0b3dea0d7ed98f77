/*
 * The login servers' connection engine: one per thread, on bufferevents. It accepts (pausing on
 * EMFILE instead of spinning) and deals the connections round-robin over the threads, reads
 * each request head and body with the strict parser of parse.h under a deadline for the whole
 * head and one for the whole body (408 otherwise), hands one request at a time to
 * http_dispatch(), and answers pipelined requests in order. Replies of one read are written
 * together, straight to the socket when nothing is queued before them. After an error, or when
 * the client or the stop asks for it, the connection is closed once its last reply is written,
 * lingering briefly so that unread input does not turn into a reset that destroys that reply.
 */
#include "http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "status.h"

/* Read no further ahead than a whole request. */
#define CONN_INPUT_MAX	(HTTP_MAX_HEADERS + HTTP_MAX_BODY + 4096)
#define CONN_LINGER_MS	1000
#define CONN_PULL	4096		/* chunked bodies are decoded this much at a time */

static void conn_process(struct http_conn *);

static void
conn_tv(struct timeval *tv, int ms)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

/* Frees c once nothing refers to it any more: no request with a handler, no caller above. */
static void
conn_release(struct http_conn *c)
{
	struct http_thread *t = c->c_thr;
	struct http_engine *e = t->engine;

	if (c->c_state != CONN_GONE || c->c_busy || c->c_running)
		return;
	TAILQ_REMOVE(&e->he_conns, c, c_entry);
	e->he_nconns--;
	if (c->c_req.headers != NULL)
		evbuffer_free(c->c_req.headers);
	if (c->c_tx != NULL)
		evbuffer_free(c->c_tx);
	free(c->c_head);
	free(c->c_hdrs);
	free(c->c_body);
	free(c);
	if (e->he_stopping && e->he_nconns == 0)
		event_base_loopexit(t->base, NULL);
}

/* The one teardown of a connection: closes the socket now, frees the rest when it can. */
static void
conn_close(struct http_conn *c, const char *why)
{
	if (c->c_state == CONN_GONE)
		return;
	if (why != NULL)
		log_debug("%s: %s", c->c_peer, why);
	if (c->c_timer != NULL) {
		event_free(c->c_timer);
		c->c_timer = NULL;
	}
	if (c->c_bev != NULL) {
		bufferevent_free(c->c_bev);
		c->c_bev = NULL;
	}
	c->c_state = CONN_GONE;
	conn_release(c);
}

/* Half-closes and reads until the client closes (or a second passes), then closes. */
static void
conn_linger(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->c_bev);
	struct timeval tv;

	if (c->c_eof) {
		conn_close(c, NULL);
		return;
	}
	shutdown(bufferevent_getfd(c->c_bev), SHUT_WR);
	c->c_state = CONN_LINGER;
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_setwatermark(c->c_bev, EV_READ, 0, 0);
	bufferevent_enable(c->c_bev, EV_READ);
	conn_tv(&tv, CONN_LINGER_MS);
	evtimer_add(c->c_timer, &tv);
}

/*
 * Hands the queued replies to the socket: written at once when nothing is waiting before them
 * (libevent would otherwise arm the write event, two epoll_ctl calls and a loop iteration per
 * reply), the rest queued on the bufferevent.
 */
static void
conn_flush(struct http_conn *c)
{
	struct evbuffer *out;

	if (c->c_state == CONN_GONE)
		return;
	out = bufferevent_get_output(c->c_bev);
	if (evbuffer_get_length(c->c_tx) > 0) {
		if (evbuffer_get_length(out) == 0)
			evbuffer_write(c->c_tx, bufferevent_getfd(c->c_bev));
		if (evbuffer_get_length(c->c_tx) > 0)
			evbuffer_add_buffer(out, c->c_tx);
	}
	if (c->c_state == CONN_FLUSH && evbuffer_get_length(out) == 0)
		conn_linger(c);
}

/* No more requests on c: close once the replies queued so far are written. */
static void
conn_end(struct http_conn *c, const char *why)
{
	if (why != NULL)
		log_debug("%s: %s", c->c_peer, why);
	c->c_state = CONN_FLUSH;
	evtimer_del(c->c_timer);
}

/* The deadline for what the connection waits for now: the next head, or this body. */
static void
conn_deadline(struct http_conn *c)
{
	evtimer_add(c->c_timer, c->c_thr->engine->he_timeout);
}

/* Starts a request record for c: the parts every reply and log line needs. */
static void
conn_req_start(struct http_conn *c)
{
	struct http_req *r = &c->c_req;

	r->thr = c->c_thr;
	r->conn = c;
	r->route = NULL;
	r->authfail = NULL;
	r->body = NULL;
	r->bodylen = 0;
	r->method = HTTP_OTHER;
	r->target = NULL;
	r->targetlen = 0;
	r->hdrs = NULL;
	r->nhdrs = 0;
	r->minor = 1;
	evbuffer_drain(r->headers, evbuffer_get_length(r->headers));
	clock_gettime(CLOCK_MONOTONIC, &r->start);
}

/* Answers status with the JSON error and closes after it: nothing after a framing error on
 * this connection can be trusted. */
static void
conn_fail(struct http_conn *c, int status, const char *message)
{
	if (c->c_req.target == NULL) {		/* no head was read: a fresh record */
		conn_req_start(c);
		http_req_init(&c->c_req, c->c_peer);
	}
	c->c_keepalive = 0;
	c->c_busy = 1;
	http_fail(&c->c_req, status, message);
}

static unsigned
conn_method(const char *m, size_t len)
{
	static const struct { const char *name; unsigned bit; } methods[] = {
		{ "GET", HTTP_GET }, { "POST", HTTP_POST }, { "HEAD", HTTP_HEAD },
		{ "PUT", HTTP_PUT }, { "DELETE", HTTP_DELETE }, { "OPTIONS", HTTP_OPTIONS },
		{ "PATCH", HTTP_PATCH }, { "TRACE", HTTP_TRACE },
	};
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strlen(methods[i].name) == len && memcmp(methods[i].name, m, len) == 0)
			return methods[i].bit;
	return HTTP_OTHER;
}

/* Copies the parsed head h (pointing into buf) into c, so that the input buffer may move. */
static int
conn_keep_head(struct http_conn *c, const struct parse_head *h, const char *buf)
{
	struct http_req *r = &c->c_req;
	size_t i;
	char *p;

	if (h->headlen > c->c_headsize) {
		if ((p = realloc(c->c_head, h->headlen)) == NULL)
			return -1;
		c->c_head = p;
		c->c_headsize = h->headlen;
	}
	if (h->nhdrs > c->c_nhdrsmax) {
		struct parse_hdr *hp;

		if ((hp = reallocarray(c->c_hdrs, h->nhdrs, sizeof(*hp))) == NULL)
			return -1;
		c->c_hdrs = hp;
		c->c_nhdrsmax = h->nhdrs;
	}
	memcpy(c->c_head, buf, h->headlen);
	for (i = 0; i < h->nhdrs; i++) {
		c->c_hdrs[i] = h->hdrs[i];
		c->c_hdrs[i].name = c->c_head + (h->hdrs[i].name - buf);
		c->c_hdrs[i].value = c->c_head + (h->hdrs[i].value - buf);
	}
	r->hdrs = c->c_hdrs;
	r->nhdrs = h->nhdrs;
	r->target = c->c_head + (h->target - buf);
	r->targetlen = h->targetlen;
	r->minor = h->minor;
	r->method = conn_method(h->method, h->methodlen);
	return 0;
}

/* Reads a request head if one has arrived. Returns 1 when a request (maybe without its body
 * yet) was taken, 0 when more is needed, -1 when the connection is answered or closed. */
static int
conn_head(struct http_conn *c)
{
	struct http_engine *e = c->c_thr->engine;
	struct parse_head *h = &e->he_head;
	struct evbuffer *in = bufferevent_get_input(c->c_bev);
	size_t len = evbuffer_get_length(in), n;
	const char *p;
	int rc;

	if (len == 0) {
		if (c->c_eof) {
			conn_end(c, NULL);
			return -1;
		}
		return 0;
	}
	n = len < HTTP_MAX_HEADERS ? len : HTTP_MAX_HEADERS;
	if ((p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n)) == NULL) {
		conn_close(c, "out of memory");
		return -1;
	}
	c->c_req.target = NULL;
	rc = parse_request(p, n, HTTP_MAX_HEADERS, h);
	if (rc == PARSE_MORE) {
		if (c->c_eof) {
			conn_end(c, "the client left in the middle of a head");
			return -1;
		}
		return 0;
	}
	if (rc == PARSE_ERROR) {
		conn_fail(c, h->err_status, h->err);
		return -1;
	}
	conn_req_start(c);
	if (conn_keep_head(c, h, p) == -1) {
		conn_close(c, "out of memory");
		return -1;
	}
	evbuffer_drain(in, h->headlen);
	c->c_keepalive = !e->he_stopping && (h->minor == 1 ? !h->conn_close : h->conn_keepalive);
	c->c_framing = h->framing;
	c->c_left = h->length;
	http_req_init(&c->c_req, c->c_peer);
	if (h->framing == FRAME_NONE)
		return 1;
	if (h->framing == FRAME_LENGTH && h->length > HTTP_MAX_BODY) {
		conn_fail(c, 413, "The request body is too large.");
		return -1;
	}
	if (c->c_body == NULL && (c->c_body = malloc(HTTP_MAX_BODY)) == NULL) {
		conn_close(c, "out of memory");
		return -1;
	}
	memset(&c->c_chunk, 0, sizeof(c->c_chunk));
	/* A client that waits for leave to send its body (curl does for larger bodies). */
	if (h->minor == 1 && (p = http_header(&c->c_req, "Expect")) != NULL &&
	    strcasecmp(p, "100-continue") == 0 && evbuffer_get_length(in) == 0)
		evbuffer_add(c->c_tx, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	c->c_state = CONN_BODY;
	conn_deadline(c);
	return 1;
}

/* Reads the body of the current request. Returns 1 when it is complete, 0 when more is needed,
 * -1 when the connection is answered or closed. */
static int
conn_body(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->c_bev);
	struct http_req *r = &c->c_req;
	size_t len, n, used;
	const char *p;
	int rc, isdata;

	if (c->c_framing == FRAME_LENGTH) {
		len = evbuffer_get_length(in);
		n = len < c->c_left ? len : (size_t)c->c_left;
		evbuffer_remove(in, c->c_body + r->bodylen, n);
		r->bodylen += n;
		c->c_left -= n;
	} else {
		c->c_left = 1;		/* until the decoder saw the last chunk */
		while (c->c_left > 0 && (len = evbuffer_get_length(in)) > 0) {
			n = len < CONN_PULL ? len : CONN_PULL;
			if ((p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n)) == NULL) {
				conn_close(c, "out of memory");
				return -1;
			}
			rc = parse_chunk_step(&c->c_chunk, p, n, &used, &isdata);
			if (rc == PARSE_ERROR) {
				conn_fail(c, 400, "The chunked body is malformed.");
				return -1;
			}
			if (c->c_chunk.pc_total > HTTP_MAX_BODY) {
				conn_fail(c, 413, "The request body is too large.");
				return -1;
			}
			if (isdata) {
				memcpy(c->c_body + r->bodylen, p, used);
				r->bodylen += used;
			}
			evbuffer_drain(in, used);
			if (rc == PARSE_OK)
				c->c_left = 0;
		}
	}
	if (c->c_left > 0) {
		if (c->c_eof) {
			conn_end(c, "the client left in the middle of a body");
			return -1;
		}
		return 0;
	}
	r->body = c->c_body;
	c->c_state = CONN_HEAD;
	return 1;
}

/* Reads and answers every complete request in the input, in order, then writes the replies. */
static void
conn_process(struct http_conn *c)
{
	int rc;

	c->c_running = 1;
	while (c->c_state == CONN_HEAD || c->c_state == CONN_BODY) {
		if (c->c_busy)
			break;
		if (c->c_state == CONN_HEAD) {
			if ((rc = conn_head(c)) != 1)
				break;
			if (c->c_state == CONN_BODY)
				continue;
		} else if ((rc = conn_body(c)) != 1)
			break;
		evtimer_del(c->c_timer);
		c->c_busy = 1;
		http_dispatch(&c->c_req);
	}
	conn_flush(c);
	c->c_running = 0;
	conn_release(c);
}

void
conn_reply(struct http_conn *c, int status, const char *content_type, const char *body,
    size_t blen)
{
	struct http_req *r = &c->c_req;
	const struct http_config *cfg = c->c_thr->srv->hs_cfg;
	char line[128];
	int n;

	c->c_busy = 0;
	if (c->c_state == CONN_GONE) {		/* the client went away meanwhile */
		conn_release(c);
		return;
	}
	if (c->c_thr->engine->he_stopping)
		c->c_keepalive = 0;
	n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\nX-Served-By: ", status,
	    status_reason(status));
	evbuffer_add(c->c_tx, line, (size_t)n);
	evbuffer_add(c->c_tx, cfg->id, strlen(cfg->id));
	evbuffer_add(c->c_tx, "\r\nX-Request-Id: ", 16);
	evbuffer_add(c->c_tx, r->id, strlen(r->id));
	evbuffer_add(c->c_tx, "\r\nX-Content-Type-Options: nosniff\r\n", 35);
	if (content_type != NULL) {
		evbuffer_add(c->c_tx, "Content-Type: ", 14);
		evbuffer_add(c->c_tx, content_type, strlen(content_type));
		evbuffer_add(c->c_tx, "\r\n", 2);
	}
	if (r->route != NULL && r->route->no_store)
		evbuffer_add(c->c_tx, "Cache-Control: no-store\r\n", 25);
	evbuffer_add_buffer(c->c_tx, r->headers);
	if (!c->c_keepalive)
		evbuffer_add(c->c_tx, "Connection: close\r\n", 19);
	else if (r->minor == 0)
		evbuffer_add(c->c_tx, "Connection: keep-alive\r\n", 24);
	n = snprintf(line, sizeof(line), "Content-Length: %zu\r\n\r\n", blen);
	evbuffer_add(c->c_tx, line, (size_t)n);
	if (body != NULL && r->method != HTTP_HEAD)
		evbuffer_add(c->c_tx, body, blen);
	r->target = NULL;
	if (!c->c_keepalive || c->c_state != CONN_HEAD) {
		c->c_state = CONN_FLUSH;
		evtimer_del(c->c_timer);
	} else
		conn_deadline(c);
	if (!c->c_running)
		conn_process(c);	/* an answer from later: read on, then write */
}

/* ---- Callbacks ---- */

static void
conn_read(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;

	if (c->c_state == CONN_LINGER) {
		evbuffer_drain(bufferevent_get_input(bev),
		    evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	}
	if (!c->c_busy)
		conn_process(c);
}

static void
conn_write(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;

	if (c->c_state == CONN_FLUSH && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_linger(c);
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn *c = arg;

	if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && c->c_state != CONN_LINGER) {
		/* Half-closed: it may still read the answers to what it sent. */
		c->c_eof = 1;
		if (!c->c_busy && c->c_state != CONN_FLUSH)
			conn_process(c);
		return;
	}
	conn_close(c, what & BEV_EVENT_EOF ? NULL : what & BEV_EVENT_TIMEOUT ?
	    "write timeout" : "connection error");
}

/* Answers 408 with message (a static string) for a head or body that came too late, then lets
 * go. */
static void
conn_late(struct http_conn *c, const char *message)
{
	c->c_running = 1;
	conn_fail(c, 408, message);
	conn_flush(c);
	c->c_running = 0;
	conn_release(c);
}

static void
conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	switch (c->c_state) {
	case CONN_HEAD:
		if (evbuffer_get_length(bufferevent_get_input(c->c_bev)) == 0) {
			/* No request begun: nobody waits for an answer. */
			conn_close(c, "idle");
			return;
		}
		conn_late(c, "The request head did not arrive in time.");
		return;
	case CONN_BODY:
		conn_late(c, "The request body did not arrive in time.");
		return;
	default:
		conn_close(c, NULL);
	}
}

/* ---- Accepting ---- */

/*
 * Connections another thread accepted for this one: a ring under a lock, and an event that
 * wakes this thread's loop (event_active() may be called from any thread once
 * evthread_use_pthreads() ran, see http_serve()). A full ring is not waited on: the accepting
 * thread then keeps the connection.
 */
#define CONN_QUEUE_MAX	256

struct conn_handed {
	int			 ch_fd;
	struct sockaddr_storage	 ch_sa;
};

struct conn_queue {
	pthread_mutex_t		 cq_lock;
	struct event		*cq_ev;
	unsigned		 cq_first;
	unsigned		 cq_len;
	struct conn_handed	 cq_ring[CONN_QUEUE_MAX];
};

/* Sets up the connection fd (owned from now) from peer sa on t's loop: the one path for the
 * connections t accepted and those handed to it. */
static void
conn_start(struct http_thread *t, int fd, const struct sockaddr *sa)
{
	struct http_engine *e = t->engine;
	const struct http_config *cfg = t->srv->hs_cfg;
	struct http_conn *c;
	struct timeval tv;
	int one = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->c_peer,
		    sizeof(c->c_peer));
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->c_peer,
		    sizeof(c->c_peer));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->c_thr = t;
	c->c_state = CONN_HEAD;
	c->c_req.thr = t;
	c->c_req.conn = c;
	TAILQ_INSERT_TAIL(&e->he_conns, c, c_entry);
	e->he_nconns++;
	if ((c->c_bev = bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		goto fail;
	}
	if ((c->c_timer = evtimer_new(t->base, conn_timer, c)) == NULL ||
	    (c->c_tx = evbuffer_new()) == NULL || (c->c_req.headers = evbuffer_new()) == NULL)
		goto fail;
	bufferevent_setcb(c->c_bev, conn_read, conn_write, conn_event, c);
	bufferevent_setwatermark(c->c_bev, EV_READ, 0, CONN_INPUT_MAX);
	conn_tv(&tv, cfg->timeout_s * 1000);
	bufferevent_set_timeouts(c->c_bev, NULL, &tv);
	bufferevent_enable(c->c_bev, EV_READ);
	conn_deadline(c);
	return;
 fail:
	log_warnx("%s: out of memory", __func__);
	conn_close(c, NULL);
}

/* Runs on any thread: queues fd and its peer for thread t and wakes t's loop. Returns -1
 * when t's queue is full (fd is then still the caller's). */
static int
conn_hand_over(struct http_thread *t, int fd, const struct sockaddr *sa, int salen)
{
	struct conn_queue *q = t->engine->he_queue;
	struct conn_handed *h;
	int wake;

	pthread_mutex_lock(&q->cq_lock);
	if (q->cq_len == CONN_QUEUE_MAX) {
		pthread_mutex_unlock(&q->cq_lock);
		return -1;
	}
	h = &q->cq_ring[(q->cq_first + q->cq_len) % CONN_QUEUE_MAX];
	h->ch_fd = fd;
	memcpy(&h->ch_sa, sa, (size_t)salen);
	/* A queue that was not empty has a wake-up on its way: t empties it whole. */
	wake = q->cq_len++ == 0;
	pthread_mutex_unlock(&q->cq_lock);
	if (wake)
		event_active(q->cq_ev, EV_READ, 0);
	return 0;
}

/* Takes the oldest connection from q into h. Returns 0 when q is empty. */
static int
conn_queue_take(struct conn_queue *q, struct conn_handed *h)
{
	int took = 0;

	pthread_mutex_lock(&q->cq_lock);
	if (q->cq_len > 0) {
		*h = q->cq_ring[q->cq_first];
		q->cq_first = (q->cq_first + 1) % CONN_QUEUE_MAX;
		q->cq_len--;
		took = 1;
	}
	pthread_mutex_unlock(&q->cq_lock);
	return took;
}

/* On t's loop: sets up the connections handed over, or closes them once t is stopping (as the
 * stop closes the connections that have not begun a request). */
static void
conn_take_handed(evutil_socket_t unused, short what, void *arg)
{
	struct http_thread *t = arg;
	struct conn_handed h;

	while (conn_queue_take(t->engine->he_queue, &h))
		if (t->engine->he_stopping)
			close(h.ch_fd);
		else
			conn_start(t, h.ch_fd, (struct sockaddr *)&h.ch_sa);
}

/*
 * Whichever thread the kernel let accept, connection number n goes to thread n % threads: an
 * even spread, which the shared socket alone does not give (one busy thread may take them all).
 * Once the server stops, each thread keeps what it accepts.
 */
static void
conn_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct http_thread *t = arg, *to = t;
	struct http_server *srv = t->srv;

	if (t->engine->he_queue != NULL && !atomic_load(&srv->hs_stopping))
		to = &srv->hs_threads[atomic_fetch_add(&srv->hs_next, 1) %
		    (unsigned)srv->hs_cfg->threads];
	if (to == t || conn_hand_over(to, fd, sa, salen) == -1)
		conn_start(t, fd, sa);
}

static void
conn_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct http_thread *t = arg;

	if (t->engine->he_lev != NULL)
		evconnlistener_enable(t->engine->he_lev);
}

/* Out of descriptors: pause accepting for a moment instead of spinning on the listener. */
static void
conn_accept_error(struct evconnlistener *lev, void *arg)
{
	static const struct timeval pause = { 0, 250000 };
	struct http_thread *t = arg;
	int err = EVUTIL_SOCKET_ERROR();

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_warnx("accept: %s", evutil_socket_error_to_string(err));
		return;
	}
	log_warnx("accept: %s; pausing for 250 ms", evutil_socket_error_to_string(err));
	evconnlistener_disable(lev);
	evtimer_add(t->engine->he_resume, &pause);
}

/* Gives t the queue other threads hand connections to. */
static int
conn_queue_new(struct http_thread *t)
{
	struct conn_queue *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	if ((q->cq_ev = event_new(t->base, -1, 0, conn_take_handed, t)) == NULL) {
		free(q);
		return -1;
	}
	pthread_mutex_init(&q->cq_lock, NULL);
	t->engine->he_queue = q;
	return 0;
}

/* Frees q and closes the connections still in it, after every thread's loop ended. */
static void
conn_queue_free(struct conn_queue *q)
{
	struct conn_handed h;

	if (q == NULL)
		return;
	while (conn_queue_take(q, &h))
		close(h.ch_fd);
	event_free(q->cq_ev);
	pthread_mutex_destroy(&q->cq_lock);
	free(q);
}

int
conn_engine_init(struct http_thread *t, int fd)
{
	struct http_engine *e;
	struct timeval tv;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		close(fd);
		return -1;
	}
	TAILQ_INIT(&e->he_conns);
	t->engine = e;
	conn_tv(&tv, t->srv->hs_cfg->timeout_s * 1000);
	/* Every connection waits for the same span: libevent keeps such timers in a queue. */
	e->he_timeout = event_base_init_common_timeout(t->base, &tv);
	if (e->he_timeout == NULL ||
	    (e->he_resume = evtimer_new(t->base, conn_accept_resume, t)) == NULL ||
	    (t->srv->hs_threads != NULL && t->srv->hs_cfg->threads > 1 && conn_queue_new(t) == -1)) {
		close(fd);
		return -1;
	}
	if ((e->he_lev = evconnlistener_new(t->base, conn_accept, t, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_CLOSE_ON_EXEC, 0, fd)) == NULL) {
		close(fd);
		return -1;
	}
	evconnlistener_set_error_cb(e->he_lev, conn_accept_error);
	return 0;
}

static void
conn_stop_over(evutil_socket_t fd, short what, void *arg)
{
	struct http_thread *t = arg;

	log_warnx("thread %d: stopping with %d connections still busy", t->index,
	    t->engine->he_nconns);
	event_base_loopexit(t->base, NULL);
}

void
conn_engine_stop(struct http_thread *t, int wait_s)
{
	struct http_engine *e = t->engine;
	struct http_conn *c, *next;
	struct timeval tv = { wait_s, 0 };

	e->he_stopping = 1;
	if (e->he_lev != NULL) {
		evconnlistener_free(e->he_lev);
		e->he_lev = NULL;
	}
	if (e->he_queue != NULL)
		conn_take_handed(-1, 0, t);	/* closes them: he_stopping */
	for (c = TAILQ_FIRST(&e->he_conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, c_entry);
		if (c->c_state == CONN_HEAD && !c->c_busy &&
		    evbuffer_get_length(bufferevent_get_input(c->c_bev)) == 0)
			conn_close(c, "stopping");
	}
	if (e->he_nconns == 0) {
		event_base_loopexit(t->base, NULL);
		return;
	}
	if ((e->he_stopev = evtimer_new(t->base, conn_stop_over, t)) == NULL ||
	    evtimer_add(e->he_stopev, &tv) == -1)
		event_base_loopexit(t->base, NULL);
}

void
conn_engine_free(struct http_thread *t)
{
	struct http_engine *e = t->engine;
	struct http_conn *c;

	if (e == NULL)
		return;
	/* A connection whose request is still with a handler is dropped with the loop. */
	while ((c = TAILQ_FIRST(&e->he_conns)) != NULL) {
		c->c_busy = 0;
		c->c_running = 0;
		if (c->c_state == CONN_GONE)
			conn_release(c);
		else
			conn_close(c, "shutting down");
	}
	if (e->he_lev != NULL)
		evconnlistener_free(e->he_lev);
	if (e->he_resume != NULL)
		event_free(e->he_resume);
	if (e->he_stopev != NULL)
		event_free(e->he_stopev);
	conn_queue_free(e->he_queue);
	free(e);
	t->engine = NULL;
}
