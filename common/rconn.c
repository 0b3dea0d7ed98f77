/*
 * One asynchronous Redis connection per event loop (see rconn.h for the contract). hiredis does
 * the protocol and its libevent adapter the I/O; this file adds what hiredis 0.14 lacks:
 * timeouts, reconnection with backoff and an honest up/down state.
 *
 * Every command, ours (SELECT, PING) or the caller's, is a struct rconn_cmd queued in send
 * order. Redis answers in order, so the head of the queue is always the oldest command, and one
 * timer armed for its deadline is enough to enforce the command timeout. Dropping a context with
 * redisAsyncFree() makes hiredis call every pending callback with a NULL reply, which is how
 * every accepted command gets exactly one answer even on timeouts and disconnects.
 *
 * hiredis frees a context itself after its connect or disconnect callbacks report a failure, and
 * a context must never be freed from inside one of its callbacks: so callbacks only mark
 * (rconn_lost, rconn_drop_later) and the freeing happens from our own timers.
 */
#include <sys/queue.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "cli.h"
#include "log.h"
#include "rconn.h"

struct rconn_cmd {
	TAILQ_ENTRY(rconn_cmd)	 cmd_entry;
	struct rconn		*cmd_rc;
	rconn_cb		 cmd_cb;
	void			*cmd_arg;
	uint64_t		 cmd_deadline;	/* monotonic ms */
	int			 cmd_user;	/* the caller's, counted in the stats */
};

struct rconn {
	struct event_base	*rc_base;
	struct rconn_config	 rc_cfg;
	redisAsyncContext	*rc_ac;		/* NULL while down */
	enum rconn_state	 rc_state;
	TAILQ_HEAD(, rconn_cmd)	 rc_cmds;
	int			 rc_npending;
	int			 rc_backoff_ms;	/* the next reconnect delay */
	struct event		*rc_stateev;	/* connect timeout, or reconnect delay */
	struct event		*rc_cmdev;	/* command timeout of the queue's head */
	struct event		*rc_pingev;	/* idle PING */
	struct event		*rc_laterev;	/* deferred drop or free, outside hiredis */
	int			 rc_entered;	/* inside a command callback */
	int			 rc_freeing;	/* rconn_free() was called */
	const char		*rc_dropwhy;	/* drop pending on rc_laterev */
	int			 rc_warned;	/* the outage was logged once already */
	struct rconn_stats	 rc_stats;
};

static void	rconn_connect(struct rconn *);
static void	rconn_drop(struct rconn *, const char *);

static uint64_t
rconn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
rconn_timer_ms(struct event *ev, long ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(ev, &tv);
}

void
rconn_config_init(struct rconn_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->host, "127.0.0.1");
	cfg->port = 6379;
	cfg->connect_timeout_ms = 1000;
	cfg->command_timeout_ms = 1000;
	cfg->backoff_min_ms = 100;
	cfg->backoff_max_ms = 2000;
	cfg->ping_interval_ms = 1000;
}

int
rconn_parse_url(const char *url, struct rconn_config *cfg, char *err, size_t errlen)
{
	static const char scheme[] = "redis://";
	char hostport[300], host[256];
	const char *rest, *slash;
	unsigned short port;
	size_t len;
	char *end;
	long db = 0;

	if (strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
		snprintf(err, errlen, "'%s' does not start with redis://", url);
		return -1;
	}
	rest = url + sizeof(scheme) - 1;
	slash = strchr(rest, '/');
	len = slash ? (size_t)(slash - rest) : strlen(rest);
	if (len >= sizeof(hostport))
		goto bad;
	memcpy(hostport, rest, len);
	hostport[len] = '\0';
	if (cli_addr(hostport, host, sizeof(host), &port) == -1 || port == 0)
		goto bad;
	if (slash != NULL) {
		errno = 0;
		db = strtol(slash + 1, &end, 10);
		if (errno != 0 || end == slash + 1 || *end != '\0' || db < 0 || db > INT_MAX)
			goto bad;
	}
	strcpy(cfg->host, host);	/* both 256 bytes */
	cfg->port = port;
	cfg->db = (int)db;
	return 0;
 bad:
	snprintf(err, errlen, "'%s' is not redis://HOST:PORT[/DB]", url);
	return -1;
}

/* Logs an outage once, not on every failed retry. */
static void
rconn_warn(struct rconn *rc, const char *why)
{
	if (rc->rc_warned)
		log_debug("redis %s:%d: still down: %s", rc->rc_cfg.host, rc->rc_cfg.port, why);
	else
		log_warnx("redis %s:%d: down: %s", rc->rc_cfg.host, rc->rc_cfg.port, why);
	rc->rc_warned = 1;
}

/* Enters the down state and schedules the next connect attempt with exponential backoff. */
static void
rconn_set_down(struct rconn *rc, const char *why)
{
	if (rc->rc_state == RCONN_UP)
		rc->rc_stats.disconnects++;
	rc->rc_state = RCONN_DOWN;
	if (rc->rc_freeing)
		return;
	rconn_warn(rc, why);
	rconn_timer_ms(rc->rc_stateev, rc->rc_backoff_ms);
	rc->rc_backoff_ms *= 2;
	if (rc->rc_backoff_ms > rc->rc_cfg.backoff_max_ms)
		rc->rc_backoff_ms = rc->rc_cfg.backoff_max_ms;
}

/*
 * The context is going away on hiredis's side (it frees it itself after this callback chain):
 * forget it without freeing it. Safe from inside hiredis callbacks, and idempotent.
 */
static void
rconn_lost(struct rconn *rc, redisAsyncContext *ac, const char *why)
{
	if (ac == NULL || ac != rc->rc_ac)
		return;
	ac->data = NULL;
	rc->rc_ac = NULL;
	rconn_set_down(rc, why);
}

/* Asks for a drop from outside hiredis: for use inside callbacks. */
static void
rconn_drop_later(struct rconn *rc, const char *why)
{
	rc->rc_dropwhy = why;
	event_active(rc->rc_laterev, EV_TIMEOUT, 1);
}

/*
 * Closes the current context ourselves. hiredis calls the pending callbacks with NULL before
 * redisAsyncFree() returns; the state is already down then, so they cannot queue new commands
 * on the dying context. Never call this from inside a hiredis callback.
 */
static void
rconn_drop(struct rconn *rc, const char *why)
{
	redisAsyncContext *ac = rc->rc_ac;

	if (ac == NULL)
		return;
	ac->data = NULL;	/* our disconnect callback then ignores it */
	rc->rc_ac = NULL;
	rconn_set_down(rc, why);
	redisAsyncFree(ac);
}

static void
rconn_free_now(struct rconn *rc)
{
	rc->rc_freeing = 1;
	rconn_drop(rc, "closing");
	event_free(rc->rc_stateev);
	event_free(rc->rc_cmdev);
	event_free(rc->rc_pingev);
	event_free(rc->rc_laterev);
	free(rc);
}

static void
rconn_later(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *rc = arg;

	if (rc->rc_freeing) {
		rconn_free_now(rc);
		return;
	}
	if (rc->rc_dropwhy != NULL) {
		const char *why = rc->rc_dropwhy;

		rc->rc_dropwhy = NULL;
		rconn_drop(rc, why);
	}
}

/* Connect timeout while connecting; the end of the backoff delay while down. */
static void
rconn_state_timer(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *rc = arg;

	if (rc->rc_state == RCONN_CONNECTING)
		rconn_drop(rc, "connect timeout");
	else if (rc->rc_state == RCONN_DOWN)
		rconn_connect(rc);
}

/* Fires at the deadline of the oldest command (or later): drops the connection when it passed. */
static void
rconn_cmd_timer(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *rc = arg;
	struct rconn_cmd *head = TAILQ_FIRST(&rc->rc_cmds);
	uint64_t now = rconn_now_ms();

	if (head == NULL)
		return;
	if (head->cmd_deadline <= now) {
		rc->rc_stats.timeouts++;
		rconn_drop(rc, "command timeout");
		return;
	}
	rconn_timer_ms(rc->rc_cmdev, (long)(head->cmd_deadline - now));
}

/*
 * The hiredis callback of every command: unqueues it and calls its callback exactly once.
 * A NULL reply means the context is dying (hiredis is flushing its callbacks).
 */
static void
rconn_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rconn_cmd *cmd = privdata;
	struct rconn *rc = cmd->cmd_rc;

	TAILQ_REMOVE(&rc->rc_cmds, cmd, cmd_entry);
	rc->rc_npending--;
	if (reply == NULL) {
		if (cmd->cmd_user)
			rc->rc_stats.failed++;
		rconn_lost(rc, ac, ac->errstr[0] ? ac->errstr : "connection lost");
	}
	rc->rc_entered++;
	cmd->cmd_cb(rc, reply, cmd->cmd_arg);
	rc->rc_entered--;
	free(cmd);
}

/*
 * Queues a record for a command about to be handed to hiredis. Returns it (owned by the queue
 * until rconn_on_reply() frees it), or NULL when out of memory.
 */
static struct rconn_cmd *
rconn_cmd_new(struct rconn *rc, rconn_cb cb, void *arg, int user)
{
	struct rconn_cmd *cmd;

	if ((cmd = calloc(1, sizeof(*cmd))) == NULL)
		return NULL;
	cmd->cmd_rc = rc;
	cmd->cmd_cb = cb;
	cmd->cmd_arg = arg;
	cmd->cmd_user = user;
	cmd->cmd_deadline = rconn_now_ms() + (uint64_t)rc->rc_cfg.command_timeout_ms;
	if (TAILQ_EMPTY(&rc->rc_cmds) && !evtimer_pending(rc->rc_cmdev, NULL))
		rconn_timer_ms(rc->rc_cmdev, rc->rc_cfg.command_timeout_ms);
	TAILQ_INSERT_TAIL(&rc->rc_cmds, cmd, cmd_entry);
	rc->rc_npending++;
	return cmd;
}

/* hiredis refused the command: unqueue and free the record, no callback. */
static void
rconn_cmd_abort(struct rconn *rc, struct rconn_cmd *cmd)
{
	TAILQ_REMOVE(&rc->rc_cmds, cmd, cmd_entry);
	rc->rc_npending--;
	free(cmd);
}

static int
rconn_vsend(struct rconn *rc, int user, rconn_cb cb, void *arg, const char *fmt, va_list ap)
{
	struct rconn_cmd *cmd;

	if (rc->rc_ac == NULL || rc->rc_npending >= RCONN_MAX_PENDING)
		return -1;
	if ((cmd = rconn_cmd_new(rc, cb, arg, user)) == NULL)
		return -1;
	if (redisvAsyncCommand(rc->rc_ac, rconn_on_reply, cmd, fmt, ap) != REDIS_OK) {
		rconn_cmd_abort(rc, cmd);
		return -1;
	}
	return 0;
}

/* For our own commands, sent while connecting too. */
static int
rconn_send(struct rconn *rc, rconn_cb cb, const char *fmt, ...)
{
	va_list ap;
	int rv;

	va_start(ap, fmt);
	rv = rconn_vsend(rc, 0, cb, NULL, fmt, ap);
	va_end(ap);
	return rv;
}

static void
rconn_on_select(struct rconn *rc, redisReply *reply, void *arg)
{
	if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		rconn_drop_later(rc, "SELECT refused");
}

/* The last handshake reply: a PONG means the server answers commands (not -LOADING). */
static void
rconn_on_hello(struct rconn *rc, redisReply *reply, void *arg)
{
	if (reply == NULL || rc->rc_state != RCONN_CONNECTING || rc->rc_dropwhy != NULL)
		return;
	if (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "PONG") != 0) {
		rconn_drop_later(rc, reply->type == REDIS_REPLY_ERROR ? "PING refused" :
		    "unexpected PING reply");
		return;
	}
	evtimer_del(rc->rc_stateev);
	rc->rc_state = RCONN_UP;
	rc->rc_backoff_ms = rc->rc_cfg.backoff_min_ms;
	rc->rc_stats.connects++;
	if (rc->rc_warned || rc->rc_stats.connects == 1)
		log_info("redis %s:%d/%d: up", rc->rc_cfg.host, rc->rc_cfg.port, rc->rc_cfg.db);
	rc->rc_warned = 0;
}

static void
rconn_on_ping(struct rconn *rc, redisReply *reply, void *arg)
{
	if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		rconn_drop_later(rc, "PING refused");
}

static void
rconn_ping_timer(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *rc = arg;

	if (rc->rc_state == RCONN_UP && rc->rc_npending == 0)
		(void)rconn_send(rc, rconn_on_ping, "PING");
}

static void
rconn_on_connect(const redisAsyncContext *cac, int status)
{
	redisAsyncContext *ac = (redisAsyncContext *)cac;	/* hiredis passes it const */
	struct rconn *rc = ac->data;

	if (rc != NULL && status != REDIS_OK)
		rconn_lost(rc, ac, ac->errstr[0] ? ac->errstr : "connect failed");
}

static void
rconn_on_disconnect(const redisAsyncContext *cac, int status)
{
	redisAsyncContext *ac = (redisAsyncContext *)cac;
	struct rconn *rc = ac->data;

	if (rc != NULL)
		rconn_lost(rc, ac, ac->errstr[0] ? ac->errstr : "disconnected");
}

/* Starts a non-blocking connect and queues the handshake behind it. */
static void
rconn_connect(struct rconn *rc)
{
	redisAsyncContext *ac;

	rc->rc_state = RCONN_CONNECTING;
	ac = redisAsyncConnect(rc->rc_cfg.host, rc->rc_cfg.port);
	if (ac == NULL || ac->err) {
		const char *why = ac ? ac->errstr : "out of memory";

		rc->rc_state = RCONN_DOWN;
		rconn_set_down(rc, why);
		if (ac != NULL)
			redisAsyncFree(ac);
		return;
	}
	if (redisLibeventAttach(ac, rc->rc_base) != REDIS_OK) {
		redisAsyncFree(ac);
		rconn_set_down(rc, "cannot attach to the event loop");
		return;
	}
	ac->data = rc;
	rc->rc_ac = ac;
	redisAsyncSetConnectCallback(ac, rconn_on_connect);
	redisAsyncSetDisconnectCallback(ac, rconn_on_disconnect);
	rconn_timer_ms(rc->rc_stateev, rc->rc_cfg.connect_timeout_ms);
	if ((rc->rc_cfg.db != 0 && rconn_send(rc, rconn_on_select, "SELECT %d", rc->rc_cfg.db) == -1) ||
	    rconn_send(rc, rconn_on_hello, "PING") == -1)
		rconn_drop(rc, "cannot queue the handshake");
}

struct rconn *
rconn_new(struct event_base *base, const struct rconn_config *cfg)
{
	struct rconn *rc;

	if ((rc = calloc(1, sizeof(*rc))) == NULL)
		return NULL;
	rc->rc_base = base;
	rc->rc_cfg = *cfg;
	rc->rc_state = RCONN_DOWN;
	rc->rc_backoff_ms = cfg->backoff_min_ms;
	TAILQ_INIT(&rc->rc_cmds);
	rc->rc_stateev = evtimer_new(base, rconn_state_timer, rc);
	rc->rc_cmdev = evtimer_new(base, rconn_cmd_timer, rc);
	rc->rc_pingev = event_new(base, -1, EV_PERSIST, rconn_ping_timer, rc);
	rc->rc_laterev = event_new(base, -1, 0, rconn_later, rc);
	if (rc->rc_stateev == NULL || rc->rc_cmdev == NULL || rc->rc_pingev == NULL ||
	    rc->rc_laterev == NULL)
		goto fail;
	if (cfg->ping_interval_ms > 0)
		rconn_timer_ms(rc->rc_pingev, cfg->ping_interval_ms);
	rconn_connect(rc);
	return rc;
 fail:
	if (rc->rc_stateev)
		event_free(rc->rc_stateev);
	if (rc->rc_cmdev)
		event_free(rc->rc_cmdev);
	if (rc->rc_pingev)
		event_free(rc->rc_pingev);
	if (rc->rc_laterev)
		event_free(rc->rc_laterev);
	free(rc);
	return NULL;
}

void
rconn_free(struct rconn *rc)
{
	if (rc == NULL || rc->rc_freeing)
		return;
	if (rc->rc_entered) {
		/* A callback is on the stack: free from the loop, outside hiredis. */
		rc->rc_freeing = 1;
		rc->rc_state = RCONN_DOWN;
		event_active(rc->rc_laterev, EV_TIMEOUT, 1);
		return;
	}
	rconn_free_now(rc);
}

enum rconn_state
rconn_state(const struct rconn *rc)
{
	return rc->rc_state;
}

int
rconn_is_up(const struct rconn *rc)
{
	return rc->rc_state == RCONN_UP;
}

const char *
rconn_state_name(enum rconn_state s)
{
	switch (s) {
	case RCONN_UP:
		return "up";
	case RCONN_CONNECTING:
		return "connecting";
	default:
		return "down";
	}
}

const struct rconn_stats *
rconn_stats(const struct rconn *rc)
{
	return &rc->rc_stats;
}

int
rconn_pending(const struct rconn *rc)
{
	return rc->rc_npending;
}

int
rconn_command(struct rconn *rc, rconn_cb cb, void *arg, const char *fmt, ...)
{
	va_list ap;
	int rv = -1;

	if (rc->rc_state == RCONN_UP) {
		va_start(ap, fmt);
		rv = rconn_vsend(rc, 1, cb, arg, fmt, ap);
		va_end(ap);
	}
	if (rv == 0)
		rc->rc_stats.commands++;
	else
		rc->rc_stats.refused++;
	return rv;
}

int
rconn_command_argv(struct rconn *rc, rconn_cb cb, void *arg, int argc, const char **argv,
    const size_t *argvlen)
{
	struct rconn_cmd *cmd;

	if (rc->rc_state != RCONN_UP || rc->rc_ac == NULL ||
	    rc->rc_npending >= RCONN_MAX_PENDING ||
	    (cmd = rconn_cmd_new(rc, cb, arg, 1)) == NULL)
		goto refused;
	if (redisAsyncCommandArgv(rc->rc_ac, rconn_on_reply, cmd, argc, argv, argvlen) !=
	    REDIS_OK) {
		rconn_cmd_abort(rc, cmd);
		goto refused;
	}
	rc->rc_stats.commands++;
	return 0;
 refused:
	rc->rc_stats.refused++;
	return -1;
}
