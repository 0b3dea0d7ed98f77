/*
 * The proxy's connections: a nonblocking socket, plain or TLS, driven by the event loop
 * directly, with an input and an output evbuffer. It takes what bufferevent_openssl did, but
 * the way HAProxy does it: the read event stays registered for the life of the connection
 * (level-triggered, no re-arming per request), the write event only while the socket is full,
 * reads go into large buffers without asking FIONREAD first, TLS records are read ahead so
 * one read(2) brings all the client sent, all a callback sends leaves in one TLS write, and
 * OpenSSL keeps its buffers for the life of the connection. Deadlines are checked lazily: the
 * timer fires once per period and looks at the time of the last progress, instead of being
 * moved on every read and write.
 */
#include "lb.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "log.h"

#define CONN_READ_SIZE	(16384 - 128)	/* with the evbuffer chain header: one 16 KiB block */
#define CONN_TLS_WRITE	16384		/* one TLS record, one write(2) */

struct conn {
	struct event_base	*c_base;
	int			 c_fd;
	SSL			*c_ssl;
	struct event		*c_rev;		/* persistent read event */
	struct event		*c_wev;		/* persistent write event, added while blocked */
	struct event		*c_tev;		/* the read and write deadlines */
	struct evbuffer		*c_in;
	struct evbuffer		*c_out;
	struct evbuffer_cb_entry *c_incb;	/* resumes reading when the input drains */
	conn_cb			 c_readcb;
	conn_cb			 c_writecb;
	conn_eventcb		 c_eventcb;
	void			*c_arg;
	int			 c_connecting;
	int			 c_handshaken;	/* TLS: the handshake is done (plain: always) */
	int			 c_ren;		/* reading enabled by the user */
	int			 c_rsusp;	/* ... but suspended: the input is full */
	int			 c_rdone;	/* EOF, error or timeout: no more reading */
	int			 c_radded;	/* c_rev is in the loop */
	int			 c_wadded;	/* c_wev is in the loop */
	int			 c_wdone;	/* error or timeout: no more writing */
	int			 c_rwantw;	/* SSL_read needs the socket writable */
	int			 c_wwantr;	/* SSL_write needs the socket readable */
	int			 c_wtrig;	/* conn_trigger_write() was called */
	int			 c_err;		/* an error to report from the loop (errno) */
	short			 c_errwhat;
	int			 c_tlserr;	/* no close_notify on a broken TLS session */
	size_t			 c_wretry;	/* TLS: length of the SSL_write to repeat */
	size_t			 c_rhigh;	/* read high watermark, 0 for none */
	size_t			 c_wlow;	/* write low watermark */
	int			 c_rto;		/* read and write timeouts, ms, 0 for none */
	int			 c_wto;
	uint64_t		 c_rlast;	/* when reading last made progress, ms */
	uint64_t		 c_wlast;	/* when writing last made progress, ms */
	uint64_t		 c_tdue;	/* when c_tev fires, if pending */
	int			 c_busy;	/* callbacks on the stack */
	int			 c_dead;	/* conn_free() was called meanwhile */
};

static void conn_io(evutil_socket_t, short, void *);
static void conn_timer(evutil_socket_t, short, void *);
static void conn_input_drained(struct evbuffer *, const struct evbuffer_cb_info *, void *);
static void conn_flush(struct conn *);

/* A cheap clock for deadlines: the coarse monotonic one is read without a system call. */
static uint64_t
conn_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A connection around fd (owned from now on) with events on base; NULL on error (fd closed). */
static struct conn *
conn_alloc(struct event_base *base, int fd)
{
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return NULL;
	}
	c->c_base = base;
	c->c_fd = fd;
	c->c_handshaken = 1;
	c->c_rev = event_new(base, fd, EV_READ | EV_PERSIST, conn_io, c);
	c->c_wev = event_new(base, fd, EV_WRITE | EV_PERSIST, conn_io, c);
	c->c_tev = evtimer_new(base, conn_timer, c);
	c->c_in = evbuffer_new();
	c->c_out = evbuffer_new();
	if (c->c_rev == NULL || c->c_wev == NULL || c->c_tev == NULL || c->c_in == NULL ||
	    c->c_out == NULL ||
	    (c->c_incb = evbuffer_add_cb(c->c_in, conn_input_drained, c)) == NULL) {
		conn_free(c);
		return NULL;
	}
	evbuffer_cb_set_flags(c->c_in, c->c_incb, 0);
	c->c_rlast = c->c_wlast = conn_now();
	return c;
}

struct conn *
conn_accept(struct event_base *base, int fd, SSL_CTX *tls)
{
	struct conn *c;

	if ((c = conn_alloc(base, fd)) == NULL)
		return NULL;
	if (tls == NULL)
		return c;
	if ((c->c_ssl = SSL_new(tls)) == NULL || SSL_set_fd(c->c_ssl, fd) != 1) {
		ERR_clear_error();
		conn_free(c);
		return NULL;
	}
	SSL_set_accept_state(c->c_ssl);
	c->c_handshaken = 0;
	return c;
}

struct conn *
conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen)
{
	struct conn *c;
	int fd;

	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		return NULL;
	if ((c = conn_alloc(base, fd)) == NULL)
		return NULL;
	c->c_connecting = 1;
	if (connect(fd, sa, salen) == -1 && errno != EINPROGRESS) {
		if (errno != ECONNREFUSED && errno != ENETUNREACH && errno != EHOSTUNREACH &&
		    errno != ETIMEDOUT) {
			conn_free(c);	/* a local failure */
			return NULL;
		}
		/* Reported from the loop, like a refusal that takes a round trip. */
		c->c_err = errno;
		c->c_errwhat = CONN_ERROR;
		event_active(c->c_wev, EV_WRITE, 1);
		return c;
	}
	/* Done or in progress: writable once it is connected, or failed. */
	if (event_add(c->c_wev, NULL) == -1) {
		conn_free(c);
		return NULL;
	}
	c->c_wadded = 1;
	return c;
}

static void
conn_destroy(struct conn *c)
{
	if (c->c_ssl != NULL) {
		/* A clean close tells the client that nothing was cut off; best effort. */
		if (c->c_handshaken && !c->c_tlserr)
			SSL_shutdown(c->c_ssl);
		ERR_clear_error();
		SSL_free(c->c_ssl);
	}
	if (c->c_rev != NULL)
		event_free(c->c_rev);
	if (c->c_wev != NULL)
		event_free(c->c_wev);
	if (c->c_tev != NULL)
		event_free(c->c_tev);
	if (c->c_in != NULL)
		evbuffer_free(c->c_in);
	if (c->c_out != NULL)
		evbuffer_free(c->c_out);
	if (c->c_fd != -1)
		close(c->c_fd);
	free(c);
}

void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->c_busy == 0) {
		conn_destroy(c);
		return;
	}
	/* A callback of c is on the stack: silence c now, free it when that returns. */
	c->c_dead = 1;
	c->c_readcb = c->c_writecb = NULL;
	c->c_eventcb = NULL;
	event_del(c->c_rev);
	event_del(c->c_wev);
	event_del(c->c_tev);
}

void
conn_setcb(struct conn *c, conn_cb readcb, conn_cb writecb, conn_eventcb eventcb, void *arg)
{
	c->c_readcb = readcb;
	c->c_writecb = writecb;
	c->c_eventcb = eventcb;
	c->c_arg = arg;
}

struct evbuffer *
conn_input(struct conn *c)
{
	return c->c_in;
}

size_t
conn_output_length(struct conn *c)
{
	return evbuffer_get_length(c->c_out);
}

void
conn_drop_output(struct conn *c)
{
	evbuffer_drain(c->c_out, evbuffer_get_length(c->c_out));
}

int
conn_fd(struct conn *c)
{
	return c->c_fd;
}

/* ---- Deadlines ---- */

static int
conn_reading(const struct conn *c)
{
	return c->c_ren && !c->c_rsusp && !c->c_rdone;
}

static int
conn_writing(const struct conn *c)
{
	return !c->c_wdone && (c->c_connecting || evbuffer_get_length(c->c_out) > 0);
}

/* Makes sure that c_tev fires no later than the earliest deadline in force. */
static void
conn_timer_arm(struct conn *c)
{
	uint64_t due = UINT64_MAX, now;
	struct timeval tv;

	if (c->c_rto > 0 && conn_reading(c))
		due = c->c_rlast + (uint64_t)c->c_rto;
	if (c->c_wto > 0 && conn_writing(c) && c->c_wlast + (uint64_t)c->c_wto < due)
		due = c->c_wlast + (uint64_t)c->c_wto;
	if (due == UINT64_MAX || (evtimer_pending(c->c_tev, NULL) && c->c_tdue <= due))
		return;
	now = conn_now();
	due = due > now ? due - now : 0;
	tv.tv_sec = (time_t)(due / 1000);
	tv.tv_usec = (suseconds_t)(due % 1000) * 1000;
	evtimer_add(c->c_tev, &tv);
	c->c_tdue = now + due;
}

void
conn_set_timeouts(struct conn *c, int read_ms, int write_ms)
{
	c->c_rto = read_ms;
	c->c_wto = write_ms;
	c->c_rlast = c->c_wlast = conn_now();
	/* A shorter deadline than the one the timer waits for must not wait for it. */
	evtimer_del(c->c_tev);
	conn_timer_arm(c);
}

/* Leaves a callback section; frees c if conn_free() was called inside it. Returns 1 then. */
static int
conn_leave(struct conn *c)
{
	if (--c->c_busy == 0 && c->c_dead) {
		conn_destroy(c);
		return 1;
	}
	return 0;
}

/* Reports what to the user. Returns 1 when c was freed meanwhile (it must not be touched). */
static int
conn_report(struct conn *c, short what)
{
	if (c->c_eventcb == NULL)
		return c->c_dead;
	c->c_busy++;
	c->c_eventcb(c, what, c->c_arg);
	c->c_busy--;
	return c->c_dead;
}

static void
conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t now = conn_now();

	c->c_busy++;
	if (c->c_rto > 0 && conn_reading(c) && now - c->c_rlast >= (uint64_t)c->c_rto) {
		conn_disable_read(c);
		if (conn_report(c, CONN_TIMEOUT | CONN_READING))
			goto out;
	} else if (c->c_wto > 0 && conn_writing(c) && now - c->c_wlast >= (uint64_t)c->c_wto) {
		c->c_wdone = 1;
		if (conn_report(c, CONN_TIMEOUT | CONN_WRITING))
			goto out;
	}
	conn_timer_arm(c);
 out:
	conn_leave(c);
}

/* ---- Reading ---- */

/* Adds or removes the read event so that it is in the loop exactly while reading. */
static void
conn_read_update(struct conn *c)
{
	int want = conn_reading(c) && !c->c_connecting;

	if (want == c->c_radded || c->c_dead)
		return;
	if (want) {
		event_add(c->c_rev, NULL);
		c->c_rlast = conn_now();
		conn_timer_arm(c);
		/* Records already read ahead never make the socket readable again. */
		if (c->c_ssl != NULL && SSL_has_pending(c->c_ssl))
			event_active(c->c_rev, EV_READ, 1);
	} else
		event_del(c->c_rev);
	c->c_radded = want;
}

void
conn_enable_read(struct conn *c)
{
	c->c_ren = 1;
	if (!c->c_radded)
		c->c_rlast = conn_now();
	conn_read_update(c);
}

void
conn_disable_read(struct conn *c)
{
	c->c_ren = 0;
	conn_read_update(c);
}

void
conn_set_read_high(struct conn *c, size_t high)
{
	c->c_rhigh = high;
}

static void
conn_input_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	if (c->c_rsusp && evbuffer_get_length(buf) < c->c_rhigh) {
		c->c_rsusp = 0;
		evbuffer_cb_set_flags(c->c_in, c->c_incb, 0);
		conn_read_update(c);
	}
}

/*
 * Reads what the socket has into the input, up to the high watermark. Returns the number of
 * bytes added; on EOF or error sets *what to the event to report after the read callback.
 */
static size_t
conn_read_some(struct conn *c, short *what)
{
	struct evbuffer_iovec v;
	size_t got = 0, n;
	ssize_t r = 1;
	int e;

	for (;;) {
		if (c->c_rhigh > 0 && evbuffer_get_length(c->c_in) >= c->c_rhigh) {
			c->c_rsusp = 1;
			evbuffer_cb_set_flags(c->c_in, c->c_incb, EVBUFFER_CB_ENABLED);
			break;
		}
		if (evbuffer_reserve_space(c->c_in, CONN_READ_SIZE, &v, 1) < 1) {
			*what = CONN_ERROR | CONN_READING;
			break;
		}
		if (c->c_ssl == NULL) {
			r = read(c->c_fd, v.iov_base, v.iov_len);
			if (r > 0) {
				v.iov_len = (size_t)r;
				evbuffer_commit_space(c->c_in, &v, 1);
				got += (size_t)r;
			} else if (r == 0)
				*what = CONN_EOF | CONN_READING;
			else if (errno != EAGAIN && errno != EINTR)
				*what = CONN_ERROR | CONN_READING;
			/* Level-triggered: whatever is left makes the socket readable again. */
			break;
		}
		/* TLS: one read(2) fills OpenSSL's read-ahead buffer; drain its records. */
		n = 0;
		while (n < v.iov_len) {
			r = SSL_read(c->c_ssl, (char *)v.iov_base + n, (int)(v.iov_len - n));
			if (r <= 0)
				break;
			n += (size_t)r;
			if (!SSL_has_pending(c->c_ssl))
				break;
		}
		v.iov_len = n;
		evbuffer_commit_space(c->c_in, &v, 1);
		got += n;
		if (r > 0) {
			if (SSL_has_pending(c->c_ssl))
				continue;
			break;
		}
		switch ((e = SSL_get_error(c->c_ssl, (int)r))) {
		case SSL_ERROR_WANT_READ:
			break;
		case SSL_ERROR_WANT_WRITE:
			c->c_rwantw = 1;
			if (!c->c_wadded && event_add(c->c_wev, NULL) == 0)
				c->c_wadded = 1;
			break;
		case SSL_ERROR_ZERO_RETURN:	/* close_notify, or a dirty EOF (ignored) */
			*what = CONN_EOF | CONN_READING;
			break;
		default:
			log_debug("%s: TLS read: %s", __func__, e == SSL_ERROR_SYSCALL ?
			    "connection error" : "protocol error");
			c->c_tlserr = 1;
			*what = CONN_ERROR | CONN_READING;
			break;
		}
		ERR_clear_error();
		break;
	}
	if (got > 0)
		c->c_rlast = conn_now();
	return got;
}

/* The TLS handshake step; 0 when done, 1 to wait for the socket, -1 on failure. */
static int
conn_handshake(struct conn *c)
{
	int r;

	if ((r = SSL_do_handshake(c->c_ssl)) == 1) {
		c->c_handshaken = 1;
		return 0;
	}
	switch (SSL_get_error(c->c_ssl, r)) {
	case SSL_ERROR_WANT_READ:
		ERR_clear_error();
		if (c->c_wadded) {	/* level-triggered: writable would wake us in a loop */
			event_del(c->c_wev);
			c->c_wadded = 0;
		}
		return 1;
	case SSL_ERROR_WANT_WRITE:
		ERR_clear_error();
		if (!c->c_wadded && event_add(c->c_wev, NULL) == 0)
			c->c_wadded = 1;
		return 1;
	default:
		ERR_clear_error();
		c->c_tlserr = 1;
		return -1;
	}
}

/* Reads, calls the read callback for new data, then reports EOF or an error. 1: c freed. */
static int
conn_do_read(struct conn *c)
{
	short what = 0;
	size_t got;

	if (!conn_reading(c))
		return 0;
	got = conn_read_some(c, &what);
	if (what != 0) {
		c->c_rdone = 1;
		conn_read_update(c);
	} else if (c->c_rsusp)
		conn_read_update(c);
	if (got > 0 && c->c_readcb != NULL) {
		c->c_busy++;
		c->c_readcb(c, c->c_arg);
		c->c_busy--;
		if (c->c_dead)
			return 1;
	}
	if (what != 0)
		return conn_report(c, what);
	return 0;
}

/* ---- Writing ---- */

static void
conn_write_update(struct conn *c)
{
	/* A pending report or trigger keeps it too: deleting the event would cancel them. */
	int want = c->c_err != 0 || c->c_wtrig || (!c->c_wdone && (c->c_connecting ||
	    c->c_rwantw || (evbuffer_get_length(c->c_out) > 0 && !c->c_wwantr)));

	if (want == c->c_wadded || c->c_dead)
		return;
	if (want)
		event_add(c->c_wev, NULL);
	else
		event_del(c->c_wev);
	c->c_wadded = want;
}

/* Records a write error, to be reported from the loop (never from inside conn_send()). */
static void
conn_write_failed(struct conn *c, int err)
{
	c->c_wdone = 1;
	c->c_err = err;
	c->c_errwhat = CONN_ERROR | CONN_WRITING;
	evbuffer_drain(c->c_out, evbuffer_get_length(c->c_out));
	event_active(c->c_wev, EV_WRITE, 1);
}

/* Writes as much of the output as the socket takes; 1 if something was written. */
static int
conn_write_some(struct conn *c)
{
	size_t len, n;
	int r, e, progress = 0;
	unsigned char *p;

	while ((len = evbuffer_get_length(c->c_out)) > 0 && !c->c_wdone) {
		if (c->c_ssl == NULL) {
			if ((r = evbuffer_write(c->c_out, c->c_fd)) > 0) {
				progress = 1;
				continue;
			}
			if (r == -1 && errno != EAGAIN && errno != EINTR)
				conn_write_failed(c, errno);
			break;
		}
		/* A repeated SSL_write must have the same length; the buffer may move. */
		n = c->c_wretry > 0 ? c->c_wretry : len < CONN_TLS_WRITE ? len : CONN_TLS_WRITE;
		if ((p = evbuffer_pullup(c->c_out, (ev_ssize_t)n)) == NULL) {
			conn_write_failed(c, ENOMEM);
			break;
		}
		if ((r = SSL_write(c->c_ssl, p, (int)n)) > 0) {
			c->c_wretry = 0;
			evbuffer_drain(c->c_out, (size_t)r);
			progress = 1;
			continue;
		}
		e = SSL_get_error(c->c_ssl, r);
		ERR_clear_error();
		if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
			c->c_wretry = n;
			c->c_wwantr = e == SSL_ERROR_WANT_READ;
			break;
		}
		c->c_tlserr = 1;
		conn_write_failed(c, e == SSL_ERROR_SYSCALL && errno != 0 ? errno : EPROTO);
		break;
	}
	if (progress)
		c->c_wlast = conn_now();
	return progress;
}

/* Writes what can be written now and registers for the rest. */
static void
conn_flush(struct conn *c)
{
	if (c->c_connecting || !c->c_handshaken)
		return;
	conn_write_some(c);
	conn_write_update(c);
	if (evbuffer_get_length(c->c_out) > 0)
		conn_timer_arm(c);
}

void
conn_send(struct conn *c, struct evbuffer *buf)
{
	if (evbuffer_get_length(buf) == 0)
		return;
	if (c->c_wdone) {
		evbuffer_drain(buf, evbuffer_get_length(buf));
		return;
	}
	if (evbuffer_get_length(c->c_out) == 0)
		c->c_wlast = conn_now();
	evbuffer_add_buffer(c->c_out, buf);
	if (!c->c_wadded)
		conn_flush(c);
}

void
conn_set_write_low(struct conn *c, size_t low)
{
	c->c_wlow = low;
}

void
conn_trigger_write(struct conn *c)
{
	c->c_wtrig = 1;
	event_active(c->c_wev, EV_WRITE, 1);
}

/* The nonblocking connect ended; 1 when c was freed. */
static int
conn_connected(struct conn *c)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (c->c_err == 0 && getsockopt(c->c_fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (c->c_err != 0)
		err = c->c_err;
	c->c_connecting = 0;
	if (err != 0) {
		c->c_err = 0;
		c->c_wdone = c->c_rdone = 1;
		conn_write_update(c);
		errno = err;
		return conn_report(c, CONN_ERROR);
	}
	if (conn_report(c, CONN_CONNECTED))
		return 1;
	conn_read_update(c);
	conn_flush(c);
	return 0;
}

/* Runs after the socket became writable, or a deferred report or trigger is due. */
static int
conn_do_write(struct conn *c)
{
	int progress, trig = c->c_wtrig;

	if (c->c_connecting)
		return conn_connected(c);
	if (c->c_err != 0) {
		errno = c->c_err;
		c->c_err = 0;
		conn_write_update(c);
		return conn_report(c, c->c_errwhat);
	}
	if (c->c_rwantw) {
		c->c_rwantw = 0;
		if (conn_do_read(c))
			return 1;
	}
	c->c_wtrig = 0;
	progress = conn_write_some(c);
	conn_write_update(c);
	if ((progress || trig) && evbuffer_get_length(c->c_out) <= c->c_wlow &&
	    c->c_writecb != NULL) {
		c->c_busy++;
		c->c_writecb(c, c->c_arg);
		c->c_busy--;
		return c->c_dead;
	}
	if (evbuffer_get_length(c->c_out) > 0)
		conn_timer_arm(c);
	return 0;
}

static void
conn_io(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int r;

	c->c_busy++;
	if (!c->c_handshaken && !c->c_connecting) {
		if ((r = conn_handshake(c)) == 1)
			goto out;
		if (r == -1) {
			c->c_rdone = c->c_wdone = 1;
			conn_read_update(c);
			conn_write_update(c);
			conn_report(c, CONN_ERROR | CONN_READING);
			goto out;
		}
		/* Done: what was queued meanwhile goes out, and the request may be here. */
		what |= EV_READ | EV_WRITE;
	}
	if ((what & EV_WRITE) && conn_do_write(c))
		goto out;
	if ((what & EV_READ) && c->c_wwantr) {
		c->c_wwantr = 0;
		conn_flush(c);
	}
	if ((what & EV_READ) && !c->c_connecting)
		conn_do_read(c);
 out:
	conn_leave(c);
}
