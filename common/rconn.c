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
 *
 * Only rc's own thread writes rc, but GET /metrics, answered by any thread, reads the state,
 * the pending count and the stats of every thread's connection. Those fields are therefore
 * written with relaxed atomic stores (RCONN_SET) and read elsewhere with relaxed atomic loads
 * (rconn_is_up, rconn_pending, rconn_stats): each value is whole, with no order between them,
 * which is all a metric needs. rc's thread, the only writer, reads them plainly.
 */
#include <sys/queue.h>

#include <sys/stat.h>

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
	enum rconn_state	 rc_state;	/* written with RCONN_SET */
	TAILQ_HEAD(, rconn_cmd)	 rc_cmds;
	int			 rc_npending;	/* written with RCONN_SET */
	int			 rc_backoff_ms;	/* the next reconnect delay */
	struct event		*rc_stateev;	/* connect timeout, or reconnect delay */
	struct event		*rc_cmdev;	/* command timeout of the queue's head */
	struct event		*rc_pingev;	/* idle PING (ROLE with Sentinel) */
	struct event		*rc_laterev;	/* deferred drop or free, outside hiredis */
	int			 rc_entered;	/* inside a command callback */
	int			 rc_freeing;	/* rconn_free() was called */
	int			 rc_dropping;	/* drop pending on rc_laterev, for rc_dropwhy */
	char			 rc_dropwhy[300];
	int			 rc_warned;	/* the outage was logged once already */
	char			 rc_peer[300];	/* "HOST:PORT" or "sentinel HOST:PORT", for logs */
	/* Sentinel only. */
	int			 rc_asking;	/* the current connection is to a sentinel */
	int			 rc_sidx;	/* the sentinel to ask next */
	int			 rc_tried;	/* sentinels tried since one last answered */
	int			 rc_found;	/* rc_master holds the sentinels' answer */
	int			 rc_switching;	/* leaving the sentinel for the master it named */
	struct rconn_addr	 rc_master;
	struct rconn_stats	 rc_stats;	/* written with RCONN_COUNT */
};

/* Writes a field that other threads read (see the top of the file). */
#define RCONN_SET(field, value)	__atomic_store_n(&(field), (value), __ATOMIC_RELAXED)
#define RCONN_COUNT(field)	RCONN_SET(field, (field) + 1)

static void	rconn_connect(struct rconn *);
static void	rconn_drop(struct rconn *, const char *);
static void	rconn_drop_later(struct rconn *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

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
	cfg->backoff_max_ms = 1000;
	cfg->ping_interval_ms = 1000;
}

/* Copies src[0..len) into dst (size dstlen) as a C string; -1 when it does not fit or is empty. */
static int
rconn_copy(char *dst, size_t dstlen, const char *src, size_t len)
{
	if (len == 0 || len >= dstlen)
		return -1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

/* A name we put in a command (ACL user, master name): printable, no space. */
static int
rconn_name_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s > '~')
			return 0;
	return 1;
}

/* Parses HOST:PORT[,HOST:PORT...] (one address unless many) into c. Returns 0 or -1. */
static int
rconn_parse_hosts(char *hosts, int many, struct rconn_config *c)
{
	char host[256], *tok;
	unsigned short port;

	c->nsentinels = 0;
	while ((tok = strsep(&hosts, ",")) != NULL) {
		if (cli_addr(tok, host, sizeof(host), &port) == -1 || port == 0)
			return -1;
		if (!many) {
			if (hosts != NULL)
				return -1;
			strcpy(c->host, host);	/* both 256 bytes */
			c->port = port;
			return 0;
		}
		if (c->nsentinels == RCONN_MAX_SENTINELS)
			return -1;
		strcpy(c->sentinels[c->nsentinels].host, host);
		c->sentinels[c->nsentinels++].port = port;
	}
	return 0;
}

int
rconn_parse_url(const char *url, struct rconn_config *cfg, char *err, size_t errlen)
{
	static const char plain[] = "redis://", sentinel[] = "redis-sentinel://";
	struct rconn_config c = *cfg;
	const char *rest, *at;
	char buf[2048], *hash, *slash, *hosts, *end;
	int many;
	long db = 0;

	/* USER:PASSWORD@ or :PASSWORD@ is checked first, so that no message echoes a password. */
	rest = (rest = strstr(url, "://")) != NULL ? rest + 3 : url;
	if ((at = strrchr(rest, '@')) != NULL && memchr(rest, ':', (size_t)(at - rest)) != NULL) {
		snprintf(err, errlen, "a password does not go in the URL: use "
		    "--redis-password-file FILE or the environment variable REDISCLI_AUTH");
		return -1;
	}
	if (strncmp(url, plain, sizeof(plain) - 1) == 0) {
		rest = url + sizeof(plain) - 1;
		many = 0;
	} else if (strncmp(url, sentinel, sizeof(sentinel) - 1) == 0) {
		rest = url + sizeof(sentinel) - 1;
		many = 1;
	} else
		goto bad;
	if (rconn_copy(buf, sizeof(buf), rest, strlen(rest)) == -1)
		goto bad;
	memset(c.master, 0, sizeof(c.master));
	if ((hash = strchr(buf, '#')) != NULL) {
		*hash++ = '\0';
		if (!many || rconn_copy(c.master, sizeof(c.master), hash, strlen(hash)) == -1 ||
		    !rconn_name_ok(c.master))
			goto bad;
	} else if (many)
		goto bad;
	if ((slash = strchr(buf, '/')) != NULL) {
		*slash++ = '\0';
		errno = 0;
		db = strtol(slash, &end, 10);
		if (errno != 0 || end == slash || *end != '\0' || db < 0 || db > INT_MAX)
			goto bad;
	}
	hosts = buf;
	memset(c.user, 0, sizeof(c.user));
	if ((at = strrchr(buf, '@')) != NULL) {
		if (rconn_copy(c.user, sizeof(c.user), buf, (size_t)(at - buf)) == -1 ||
		    !rconn_name_ok(c.user))
			goto bad;
		hosts = buf + (at - buf) + 1;
	}
	if (rconn_parse_hosts(hosts, many, &c) == -1)
		goto bad;
	c.db = (int)db;
	*cfg = c;
	return 0;
 bad:
	snprintf(err, errlen, "'%s' is not redis://[USER@]HOST:PORT[/DB] or "
	    "redis-sentinel://[USER@]HOST:PORT[,HOST:PORT...][/DB]#MASTER", url);
	return -1;
}

int
rconn_config_password(struct rconn_config *cfg, const char *path, char *err, size_t errlen)
{
	char buf[sizeof(cfg->password) + 2];
	const char *env;
	struct stat st;
	size_t n;
	FILE *f;

	if (path == NULL) {
		env = getenv("REDISCLI_AUTH");
		if (env == NULL || *env == '\0')
			return 0;
		if (strlen(env) >= sizeof(cfg->password)) {
			snprintf(err, errlen, "REDISCLI_AUTH is too long");
			return -1;
		}
		strcpy(cfg->password, env);
		return 0;
	}
	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
		log_warnx("--redis-password-file %s is readable by others; chmod 600 it", path);
	fclose(f);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	if (n == 0 || n >= sizeof(cfg->password) || strlen(buf) != n || strchr(buf, '\n')) {
		snprintf(err, errlen, "%s: want one line of 1 to %zu bytes", path,
		    sizeof(cfg->password) - 1);
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	memcpy(cfg->password, buf, n + 1);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

void
rconn_config_cli(struct rconn_config *cfg, const char *flag, const char *url, const char *path)
{
	char err[512];

	if (rconn_parse_url(url, cfg, err, sizeof(err)) == -1)
		cli_bad("%s: %s", flag, err);
	if (rconn_config_password(cfg, path, err, sizeof(err)) == -1)
		cli_bad("--redis-password-file: %s", err);
	if (cfg->user[0] != '\0' && cfg->password[0] == '\0')
		cli_bad("%s: the user %s needs a password: --redis-password-file FILE or "
		    "REDISCLI_AUTH", flag, cfg->user);
}

/* Logs an outage once, not on every failed retry. */
static void
rconn_warn(struct rconn *rc, const char *why)
{
	if (rc->rc_warned)
		log_debug("redis %s: still down: %s", rc->rc_peer, why);
	else
		log_warnx("redis %s: down: %s", rc->rc_peer, why);
	rc->rc_warned = 1;
}

/* When the next connect attempt starts, in ms: at once to the master a sentinel just named or
 * to the next sentinel not tried yet; else after the backoff delay, doubled each time. */
static long
rconn_next_delay(struct rconn *rc)
{
	long ms;

	if (rc->rc_switching) {
		rc->rc_switching = 0;
		return 0;
	}
	if (rc->rc_cfg.nsentinels > 0) {
		if (!rc->rc_asking)
			rc->rc_found = 0;	/* lost the master: ask again */
		else {
			rc->rc_sidx = (rc->rc_sidx + 1) % rc->rc_cfg.nsentinels;
			if (++rc->rc_tried < rc->rc_cfg.nsentinels)
				return 0;
			rc->rc_tried = 0;
		}
	}
	ms = rc->rc_backoff_ms;
	rc->rc_backoff_ms *= 2;
	if (rc->rc_backoff_ms > rc->rc_cfg.backoff_max_ms)
		rc->rc_backoff_ms = rc->rc_cfg.backoff_max_ms;
	return ms;
}

/* Enters the down state and schedules the next connect attempt. */
static void
rconn_set_down(struct rconn *rc, const char *why)
{
	int switching = rc->rc_switching;

	if (rc->rc_state == RCONN_UP)
		RCONN_COUNT(rc->rc_stats.disconnects);
	RCONN_SET(rc->rc_state, RCONN_DOWN);
	rc->rc_dropping = 0;	/* a pending drop was for the context that just went */
	if (rc->rc_freeing)
		return;
	if (!switching)
		rconn_warn(rc, why);
	rconn_timer_ms(rc->rc_stateev, rconn_next_delay(rc));
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

/* Asks for a drop from outside hiredis: for use inside callbacks. The first reason wins. */
static void
rconn_drop_later(struct rconn *rc, const char *fmt, ...)
{
	va_list ap;

	if (rc->rc_dropping)
		return;
	va_start(ap, fmt);
	vsnprintf(rc->rc_dropwhy, sizeof(rc->rc_dropwhy), fmt, ap);
	va_end(ap);
	rc->rc_dropping = 1;
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
	if (rc->rc_dropping) {
		rc->rc_dropping = 0;
		rconn_drop(rc, rc->rc_dropwhy);
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
		RCONN_COUNT(rc->rc_stats.timeouts);
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
	RCONN_SET(rc->rc_npending, rc->rc_npending - 1);
	if (reply == NULL) {
		if (cmd->cmd_user)
			RCONN_COUNT(rc->rc_stats.failed);
		rconn_lost(rc, ac, ac->errstr[0] ? ac->errstr : "connection lost");
	} else if (rc->rc_cfg.nsentinels > 0 && ((redisReply *)reply)->type == REDIS_REPLY_ERROR &&
	    strncmp(((redisReply *)reply)->str, "READONLY", 8) == 0)
		rconn_drop_later(rc, "READONLY: the master became a replica");
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
	RCONN_SET(rc->rc_npending, rc->rc_npending + 1);
	return cmd;
}

/* hiredis refused the command: unqueue and free the record, no callback. */
static void
rconn_cmd_abort(struct rconn *rc, struct rconn_cmd *cmd)
{
	TAILQ_REMOVE(&rc->rc_cmds, cmd, cmd_entry);
	RCONN_SET(rc->rc_npending, rc->rc_npending - 1);
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

/* AUTH refused: a wrong password or user is an outage with a cause, never "not logged in". A
 * sentinel without a password of its own refuses AUTH harmlessly. */
static void
rconn_on_auth(struct rconn *rc, redisReply *reply, void *arg)
{
	if (reply == NULL || reply->type != REDIS_REPLY_ERROR)
		return;
	if (rc->rc_asking && strstr(reply->str, "without any password configured") != NULL)
		return;
	rconn_drop_later(rc, "AUTH failed: %s", reply->str);
}

static void
rconn_on_select(struct rconn *rc, redisReply *reply, void *arg)
{
	if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		rconn_drop_later(rc, "SELECT refused: %s", reply->str);
}

/* ROLE on the master the sentinels named, at connect and when idle: anything but "master"
 * (a demoted or stale one) sends us back to the sentinels. */
static void
rconn_on_role(struct rconn *rc, redisReply *reply, void *arg)
{
	if (reply == NULL)
		return;
	if (reply->type == REDIS_REPLY_ERROR)
		rconn_drop_later(rc, "ROLE refused: %s", reply->str);
	else if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(reply->element[0]->str, "master") != 0)
		rconn_drop_later(rc, "ROLE is not master: asking the sentinels again");
}

/* The answer to SENTINEL get-master-addr-by-name: [host, port], or nil for an unknown name. */
static void
rconn_on_sentinel(struct rconn *rc, redisReply *reply, void *arg)
{
	struct rconn_addr a;
	char *end;
	long port;

	if (reply == NULL || rc->rc_dropping)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		rconn_drop_later(rc, "SENTINEL refused: %s", reply->str);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING ||
	    rconn_copy(a.host, sizeof(a.host), reply->element[0]->str, reply->element[0]->len) ||
	    (port = strtol(reply->element[1]->str, &end, 10)) <= 0 || port > 65535 || *end) {
		rconn_drop_later(rc, "the sentinel knows no master named '%s'", rc->rc_cfg.master);
		return;
	}
	a.port = (int)port;
	if (strcmp(a.host, rc->rc_master.host) != 0 || a.port != rc->rc_master.port)
		log_info("redis %s: master %s is %s:%d", rc->rc_peer, rc->rc_cfg.master, a.host,
		    a.port);
	rc->rc_master = a;
	rc->rc_found = 1;
	rc->rc_tried = 0;
	rc->rc_switching = 1;
	rconn_drop_later(rc, "asked");
}

/* The last handshake reply: a PONG means the server answers commands (not -LOADING). */
static void
rconn_on_hello(struct rconn *rc, redisReply *reply, void *arg)
{
	if (reply == NULL || rc->rc_state != RCONN_CONNECTING || rc->rc_dropping)
		return;
	if (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "PONG") != 0) {
		if (reply->type == REDIS_REPLY_ERROR)
			rconn_drop_later(rc, "PING refused: %s", reply->str);
		else
			rconn_drop_later(rc, "unexpected PING reply");
		return;
	}
	evtimer_del(rc->rc_stateev);
	RCONN_SET(rc->rc_state, RCONN_UP);
	rc->rc_backoff_ms = rc->rc_cfg.backoff_min_ms;
	RCONN_COUNT(rc->rc_stats.connects);
	if (rc->rc_warned || rc->rc_stats.connects == 1)
		log_info("redis %s/%d: up", rc->rc_peer, rc->rc_cfg.db);
	rc->rc_warned = 0;
	if (rc->rc_cfg.on_up != NULL)
		rc->rc_cfg.on_up(rc, rc->rc_cfg.on_up_arg);
}

static void
rconn_on_ping(struct rconn *rc, redisReply *reply, void *arg)
{
	if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		rconn_drop_later(rc, "PING refused: %s", reply->str);
}

static void
rconn_ping_timer(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *rc = arg;

	if (rc->rc_state != RCONN_UP || rc->rc_npending != 0)
		return;
	if (rc->rc_cfg.nsentinels > 0)
		(void)rconn_send(rc, rconn_on_role, "ROLE");
	else
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

/*
 * Queues the handshake. To a sentinel: AUTH when there is a password, then the question. To the
 * server: AUTH, SELECT, ROLE when a sentinel named it, and PING, whose answer brings it up.
 * Returns 0 or -1.
 */
static int
rconn_handshake(struct rconn *rc)
{
	const struct rconn_config *c = &rc->rc_cfg;
	int rv = 0;

	if (c->password[0] != '\0' && c->user[0] != '\0' && !rc->rc_asking)
		rv = rconn_send(rc, rconn_on_auth, "AUTH %s %s", c->user, c->password);
	else if (c->password[0] != '\0')
		rv = rconn_send(rc, rconn_on_auth, "AUTH %s", c->password);
	if (rv == -1)
		return -1;
	if (rc->rc_asking)
		return rconn_send(rc, rconn_on_sentinel, "SENTINEL get-master-addr-by-name %s",
		    c->master);
	if ((c->db != 0 && rconn_send(rc, rconn_on_select, "SELECT %d", c->db) == -1) ||
	    (c->nsentinels > 0 && rconn_send(rc, rconn_on_role, "ROLE") == -1))
		return -1;
	return rconn_send(rc, rconn_on_hello, "PING");
}

/* Starts a non-blocking connect, to a sentinel while the master is not known, and queues the
 * handshake behind it. */
static void
rconn_connect(struct rconn *rc)
{
	const struct rconn_addr *to;
	struct rconn_addr plain;
	redisAsyncContext *ac;

	rc->rc_asking = rc->rc_cfg.nsentinels > 0 && !rc->rc_found;
	if (rc->rc_asking)
		to = &rc->rc_cfg.sentinels[rc->rc_sidx];
	else if (rc->rc_cfg.nsentinels > 0)
		to = &rc->rc_master;
	else {
		strcpy(plain.host, rc->rc_cfg.host);
		plain.port = rc->rc_cfg.port;
		to = &plain;
	}
	snprintf(rc->rc_peer, sizeof(rc->rc_peer), "%s%s%s%s:%d", rc->rc_asking ? "sentinel " : "",
	    strchr(to->host, ':') ? "[" : "", to->host, strchr(to->host, ':') ? "]" : "", to->port);
	RCONN_SET(rc->rc_state, RCONN_CONNECTING);
	ac = redisAsyncConnect(to->host, to->port);
	if (ac == NULL || ac->err) {
		rconn_set_down(rc, ac ? ac->errstr : "out of memory");
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
	if (rconn_handshake(rc) == -1)
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
	RCONN_SET(rc->rc_state, RCONN_DOWN);
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
		RCONN_SET(rc->rc_state, RCONN_DOWN);
		event_active(rc->rc_laterev, EV_TIMEOUT, 1);
		return;
	}
	rconn_free_now(rc);
}

enum rconn_state
rconn_state(const struct rconn *rc)
{
	return __atomic_load_n(&rc->rc_state, __ATOMIC_RELAXED);
}

int
rconn_is_up(const struct rconn *rc)
{
	return rconn_state(rc) == RCONN_UP;
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

struct rconn_stats
rconn_stats(const struct rconn *rc)
{
	const struct rconn_stats *s = &rc->rc_stats;
	struct rconn_stats copy;

	copy.commands = __atomic_load_n(&s->commands, __ATOMIC_RELAXED);
	copy.refused = __atomic_load_n(&s->refused, __ATOMIC_RELAXED);
	copy.failed = __atomic_load_n(&s->failed, __ATOMIC_RELAXED);
	copy.timeouts = __atomic_load_n(&s->timeouts, __ATOMIC_RELAXED);
	copy.connects = __atomic_load_n(&s->connects, __ATOMIC_RELAXED);
	copy.disconnects = __atomic_load_n(&s->disconnects, __ATOMIC_RELAXED);
	return copy;
}

int
rconn_pending(const struct rconn *rc)
{
	return __atomic_load_n(&rc->rc_npending, __ATOMIC_RELAXED);
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
		RCONN_COUNT(rc->rc_stats.commands);
	else
		RCONN_COUNT(rc->rc_stats.refused);
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
	RCONN_COUNT(rc->rc_stats.commands);
	return 0;
 refused:
	RCONN_COUNT(rc->rc_stats.refused);
	return -1;
}
