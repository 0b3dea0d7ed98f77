/*
 * relay's private header. The relay stands in for network distance where tc netem is not
 * available: it forwards TCP both ways and holds every chunk for half the configured round
 * trip, in order, with bounded buffers.
 */
#ifndef RELAY_H
#define RELAY_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event;
struct event_base;
struct evbuffer;

struct relay_config {
	struct sockaddr_storage	 target;
	socklen_t		 targetlen;
	const char		*target_text;
	uint64_t		 delay_us;	/* one way: half the round trip */
	size_t			 max_buffer;	/* bytes held per direction before reading stops */
	int			 idle_ms;	/* no byte either way for this long: close */
	int			 connect_ms;
	int			 quiet;
};

/* A run of bytes read at one moment, due at m_due_us. */
struct relay_mark {
	TAILQ_ENTRY(relay_mark)	 m_entry;
	uint64_t		 m_due_us;
	size_t			 m_len;
};
TAILQ_HEAD(relay_marks, relay_mark);

struct relay_session;

/* One direction: bytes read from d_from wait in d_held until due, then go to d_to. */
struct relay_dir {
	struct relay_session	*d_session;
	struct relay_dir	*d_peer;	/* the other direction */
	struct bufferevent	*d_from;
	struct bufferevent	*d_to;
	struct evbuffer		*d_held;
	struct relay_marks	 d_marks;
	struct event		*d_timer;
	uint64_t		 d_armed_us;	/* when d_timer was meant to fire */
	uint64_t		 d_bytes;	/* forwarded so far */
	int			 d_eof;		/* d_from closed: finish delivering, then close */
	const char		*d_name;	/* "client" or "server": who d_from is */
};

struct relay_session {
	TAILQ_ENTRY(relay_session) s_entry;
	uint64_t		 s_id;
	uint64_t		 s_last_us;	/* last byte read either way */
	int			 s_connected;	/* to the target */
	struct relay_dir	 s_up;		/* client to server */
	struct relay_dir	 s_down;	/* server to client */
	char			 s_peer[64];
};
TAILQ_HEAD(relay_sessions, relay_session);

/* relay.c */

/*
 * Takes ownership of the accepted socket fd: connects to the target and relays until either
 * side closes, a timeout, or relay_close_all(). Returns 0, or -1 (fd closed, logged).
 */
int	relay_accept(struct event_base *base, const struct relay_config *conf, int fd,
	    const struct sockaddr *peer, socklen_t peerlen);
/* Closes every session (at shutdown). */
void	relay_close_all(void);
/* Bytes held by the relay right now, over all sessions and both directions; the number of
 * sessions goes to *sessions. */
size_t	relay_held_bytes(size_t *sessions);
/* Monotonic microseconds. */
uint64_t relay_now_us(void);

#endif
