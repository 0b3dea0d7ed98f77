/*
 * The relay's sessions: one accepted client, one connection to the target, and a direction
 * each way. Every read becomes a mark (when it is due, how many bytes) at the tail of its
 * direction's queue; one timer per direction releases the marks in order as they fall due. A
 * direction that holds max_buffer bytes (waiting, or written but not yet taken by the peer)
 * stops reading its source until the peer catches up, so memory stays bounded whatever the ends do.
 */
#include "relay.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"

/* Reads this close together share one mark: it bounds the marks per direction to the delay
 * divided by this, and releases data at most this early. */
#define RELAY_MERGE_US	20

/* How fast the estimate of the machine's timer lateness moves, per timer that fires. */
#define RELAY_LATE_STEP_US	2

static struct relay_sessions	 relay_all = TAILQ_HEAD_INITIALIZER(relay_all);
/*
 * A timer fires some time after it was due (timer slack, scheduling; 0.1-0.3 ms on a busy
 * virtual machine), and a round trip pays that twice. relay_late_us tracks the median lateness
 * (one step up when a timer fires later than it, one down otherwise); timers are armed that
 * much early, so that the data leaves on time in the median.
 */
static uint64_t			 relay_late_us;
static uint64_t			 relay_next_id;
static const struct relay_config *relay_conf;

static void	relay_close(struct relay_session *, const char *);

uint64_t
relay_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
relay_tv(struct timeval *tv, uint64_t us)
{
	tv->tv_sec = (time_t)(us / 1000000u);
	tv->tv_usec = (suseconds_t)(us % 1000000u);
}

/* Bytes this direction holds: waiting for their time, plus written but not yet sent. */
static size_t
dir_queued(const struct relay_dir *d)
{
	return evbuffer_get_length(d->d_held) +
	    evbuffer_get_length(bufferevent_get_output(d->d_to));
}

/* Reads from the source only while the direction has room (and the source is open). */
static void
dir_throttle(struct relay_dir *d)
{
	if (d->d_eof || dir_queued(d) >= relay_conf->max_buffer)
		bufferevent_disable(d->d_from, EV_READ);
	else if (!(bufferevent_get_enabled(d->d_from) & EV_READ))
		bufferevent_enable(d->d_from, EV_READ);
}

/*
 * Moves every due mark's bytes to the destination and arms the timer for the next one. When
 * the source has closed and everything has left, the session ends; the caller must not touch
 * d afterwards when this returns -1.
 */
static int
dir_flush(struct relay_dir *d)
{
	struct evbuffer *out = bufferevent_get_output(d->d_to);
	struct relay_mark *m;
	struct timeval tv;
	uint64_t now = relay_now_us();

	while ((m = TAILQ_FIRST(&d->d_marks)) != NULL && m->m_due_us <= now + relay_late_us) {
		evbuffer_remove_buffer(d->d_held, out, m->m_len);
		d->d_bytes += m->m_len;
		TAILQ_REMOVE(&d->d_marks, m, m_entry);
		free(m);
	}
	if (m != NULL && !evtimer_pending(d->d_timer, NULL)) {
		d->d_armed_us = m->m_due_us - relay_late_us;
		relay_tv(&tv, d->d_armed_us - now);
		evtimer_add(d->d_timer, &tv);
	}
	if (d->d_eof && dir_queued(d) == 0) {
		relay_close(d->d_session, d->d_name[0] == 'c' ? "client closed" :
		    "server closed");
		return -1;
	}
	dir_throttle(d);
	return 0;
}

static void
dir_timer(evutil_socket_t fd, short what, void *arg)
{
	struct relay_dir *d = arg;
	uint64_t now = relay_now_us();

	if (now - d->d_armed_us > relay_late_us) {
		if (relay_late_us + RELAY_LATE_STEP_US <= relay_conf->delay_us / 2)
			relay_late_us += RELAY_LATE_STEP_US;
	} else if (relay_late_us >= RELAY_LATE_STEP_US)
		relay_late_us -= RELAY_LATE_STEP_US;
	dir_flush(d);
}

/* Bytes arrived from d_from: they become due one delay from now. */
static void
relay_read(struct bufferevent *bev, void *arg)
{
	struct relay_dir *d = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct relay_mark *last;
	size_t len = evbuffer_get_length(in);
	uint64_t now = relay_now_us(), due = now + relay_conf->delay_us;

	if (len == 0)
		return;
	d->d_session->s_last_us = now;
	last = TAILQ_LAST(&d->d_marks, relay_marks);
	if (last != NULL && due - last->m_due_us <= RELAY_MERGE_US)
		last->m_len += len;
	else {
		if ((last = malloc(sizeof(*last))) == NULL) {
			relay_close(d->d_session, "out of memory");
			return;
		}
		last->m_due_us = due;
		last->m_len = len;
		TAILQ_INSERT_TAIL(&d->d_marks, last, m_entry);
	}
	evbuffer_add_buffer(d->d_held, in);
	dir_flush(d);
}

/* The destination of arg's peer direction took bytes: it may read again, or finish. */
static void
relay_written(struct bufferevent *bev, void *arg)
{
	struct relay_dir *d = ((struct relay_dir *)arg)->d_peer;

	if (d->d_eof && dir_queued(d) == 0)
		relay_close(d->d_session, d->d_name[0] == 'c' ? "client closed" : "server closed");
	else
		dir_throttle(d);
}

static void
relay_event(struct bufferevent *bev, short what, void *arg)
{
	struct relay_dir *d = arg;
	struct relay_session *s = d->d_session;
	struct timeval tv;
	int fd, one = 1;

	if (what & BEV_EVENT_CONNECTED) {
		s->s_connected = 1;
		fd = bufferevent_getfd(bev);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		relay_tv(&tv, (uint64_t)relay_conf->idle_ms * 1000u);
		bufferevent_set_timeouts(bev, &tv, &tv);
		dir_throttle(d);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (!s->s_connected)
			relay_close(s, "connect to the target timed out");
		else if (what & BEV_EVENT_WRITING)
			relay_close(s, "a peer stopped reading");
		else if (relay_now_us() - s->s_last_us >= (uint64_t)relay_conf->idle_ms * 1000u)
			relay_close(s, "idle");
		else
			dir_throttle(d);	/* the other direction is busy: keep waiting */
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		relay_close(s, d->d_name[0] == 'c' ? "client connection failed" :
		    "server connection failed");
		return;
	}
	if (what & BEV_EVENT_EOF) {
		d->d_eof = 1;
		bufferevent_disable(bev, EV_READ);
		/* What the source sent before closing still goes out, after its delay. */
		if (dir_queued(d) == 0 && TAILQ_EMPTY(&d->d_marks))
			relay_close(s, d->d_name[0] == 'c' ? "client closed" : "server closed");
	}
}

static void
dir_free(struct relay_dir *d)
{
	struct relay_mark *m;

	while ((m = TAILQ_FIRST(&d->d_marks)) != NULL) {
		TAILQ_REMOVE(&d->d_marks, m, m_entry);
		free(m);
	}
	if (d->d_timer != NULL)
		event_free(d->d_timer);
	if (d->d_held != NULL)
		evbuffer_free(d->d_held);
	if (d->d_from != NULL)
		bufferevent_free(d->d_from);
}

/* The one teardown: logs why, closes both sockets and frees everything held. */
static void
relay_close(struct relay_session *s, const char *why)
{
	if (!relay_conf->quiet)
		log_info("session %llu from %s closed: %s (up %llu bytes, down %llu bytes)",
		    (unsigned long long)s->s_id, s->s_peer, why,
		    (unsigned long long)s->s_up.d_bytes, (unsigned long long)s->s_down.d_bytes);
	TAILQ_REMOVE(&relay_all, s, s_entry);
	dir_free(&s->s_up);
	dir_free(&s->s_down);
	free(s);
}

static int
dir_init(struct relay_dir *d, struct event_base *base)
{
	d->d_held = evbuffer_new();
	d->d_timer = evtimer_new(base, dir_timer, d);
	if (d->d_held == NULL || d->d_timer == NULL)
		return -1;
	bufferevent_setcb(d->d_from, relay_read, relay_written, relay_event, d);
	/* Hear about the destination draining well before it is empty. */
	bufferevent_setwatermark(d->d_to, EV_WRITE, relay_conf->max_buffer / 2, 0);
	return 0;
}

/* Ties the two directions of s to their sockets; they own them from here on. */
static void
dir_pair(struct relay_session *s, struct bufferevent *client, struct bufferevent *server)
{
	struct relay_dir *up = &s->s_up, *down = &s->s_down;

	up->d_session = down->d_session = s;
	up->d_peer = down;
	down->d_peer = up;
	up->d_from = down->d_to = client;
	down->d_from = up->d_to = server;
	up->d_name = "client";
	down->d_name = "server";
	TAILQ_INIT(&up->d_marks);
	TAILQ_INIT(&down->d_marks);
}

int
relay_accept(struct event_base *base, const struct relay_config *conf, int fd,
    const struct sockaddr *peer, socklen_t peerlen)
{
	struct bufferevent *client = NULL, *server = NULL;
	struct relay_session *s = NULL;
	struct timeval idle, connect;
	char host[INET6_ADDRSTRLEN] = "?";
	int one = 1;

	relay_conf = conf;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (client = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		goto fail;
	}
	if ((server = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) == NULL)
		goto fail;
	if (peer->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, host, sizeof(host));
	else if (peer->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, host,
		    sizeof(host));
	snprintf(s->s_peer, sizeof(s->s_peer), "%s", host);
	s->s_id = ++relay_next_id;
	s->s_last_us = relay_now_us();
	dir_pair(s, client, server);
	TAILQ_INSERT_TAIL(&relay_all, s, s_entry);
	if (dir_init(&s->s_up, base) == -1 || dir_init(&s->s_down, base) == -1) {
		relay_close(s, "out of memory");
		return -1;
	}
	relay_tv(&idle, (uint64_t)conf->idle_ms * 1000u);
	relay_tv(&connect, (uint64_t)conf->connect_ms * 1000u);
	bufferevent_set_timeouts(client, &idle, &idle);
	bufferevent_set_timeouts(server, NULL, &connect);
	bufferevent_enable(client, EV_READ | EV_WRITE);
	bufferevent_enable(server, EV_WRITE);
	if (!conf->quiet)
		log_info("session %llu from %s to %s", (unsigned long long)s->s_id, s->s_peer,
		    conf->target_text);
	if (bufferevent_socket_connect(server, (const struct sockaddr *)&conf->target,
	    (int)conf->targetlen) == -1) {
		relay_close(s, "cannot connect to the target");
		return -1;
	}
	return 0;
 fail:
	log_warnx("cannot set up a session: out of memory");
	if (client != NULL)
		bufferevent_free(client);
	if (server != NULL)
		bufferevent_free(server);
	free(s);
	return -1;
}

void
relay_close_all(void)
{
	struct relay_session *s;

	while ((s = TAILQ_FIRST(&relay_all)) != NULL)
		relay_close(s, "relay stopping");
}

size_t
relay_held_bytes(size_t *sessions)
{
	struct relay_session *s;
	size_t n = 0;

	*sessions = 0;
	TAILQ_FOREACH(s, &relay_all, s_entry) {
		n += dir_queued(&s->s_up) + dir_queued(&s->s_down);
		(*sessions)++;
	}
	return n;
}
