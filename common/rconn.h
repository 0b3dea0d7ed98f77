/*
 * One asynchronous Redis connection per event loop, on hiredis's async API and its libevent
 * adapter. hiredis 0.14 has no timeouts and no reconnection, so this module adds them: a connect
 * timeout, a command timeout driven by a libevent timer (a command that outlives it drops the
 * connection, which fails every pending command), reconnection with exponential backoff, and a
 * plain up/down state for /healthz. Commands on one connection are pipelined by nature.
 *
 * Every (re)connection authenticates (AUTH, with an ACL user when the URL names one) when a
 * password is configured, and SELECTs the database. With Redis Sentinel, the master is found the
 * way Redis' Sentinel client guidelines say: ask the sentinels in turn (SENTINEL
 * get-master-addr-by-name), confirm with ROLE on the master, and ask again after a lost
 * connection, a READONLY reply or a ROLE that is not "master"; so a failover is followed without
 * a restart, with the connection down (commands refused) in between.
 *
 * The callback contract: every command that rconn_command() accepted (returned 0) gets its
 * callback called exactly once, later, from the loop: with the reply, or with NULL on a
 * timeout, a dropped connection or rconn_free(). A command issued while the connection is not up
 * is refused at once (returns -1, no callback), so the caller can answer 503 without waiting.
 *
 * Not thread-safe: an rconn belongs to the thread that runs its event_base; only
 * rconn_state(), rconn_is_up(), rconn_pending() and rconn_stats() may be called from any thread
 * (for metrics: each value is current, but they are not one snapshot). Give HOST as an address:
 * hiredis resolves a name with a blocking getaddrinfo() on every (re)connect.
 */
#ifndef RCONN_H
#define RCONN_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#define RCONN_MAX_PENDING	10000	/* commands in flight; more are refused (back-pressure) */
#define RCONN_MAX_SENTINELS	8

struct rconn;

/* Called each time the connection comes up, before any caller's command is sent on it. */
typedef void (*rconn_up_fn)(struct rconn *rc, void *arg);

struct rconn_addr {
	char	 host[256];
	int	 port;
};

/* Where and how to connect. rconn_config_init() sets the defaults noted here. */
struct rconn_config {
	char	 host[256];
	int	 port;			/* 6379 */
	int	 db;			/* 0; SELECTed on every (re)connect */
	char	 user[128];		/* ACL user; "": AUTH with the password only */
	char	 password[512];		/* "": no AUTH */
	struct rconn_addr sentinels[RCONN_MAX_SENTINELS];
	int	 nsentinels;		/* 0: host and port are the server; else ask these */
	char	 master[128];		/* the master's name at the sentinels */
	rconn_up_fn on_up;		/* NULL: nothing to do */
	void	*on_up_arg;
	int	 connect_timeout_ms;	/* 1000 */
	int	 command_timeout_ms;	/* 1000 */
	int	 backoff_min_ms;	/* 100: first reconnect delay, doubled after each failure */
	int	 backoff_max_ms;	/* 1000: a failover is followed within a second */
	int	 ping_interval_ms;	/* 1000: PING when idle so a dead server shows; 0: never */
};

enum rconn_state {
	RCONN_DOWN,		/* waiting for the next connect attempt */
	RCONN_CONNECTING,	/* TCP connect, SELECT and PING in progress */
	RCONN_UP		/* commands accepted */
};

/* Counters for the metrics (this connection only). */
struct rconn_stats {
	uint64_t	commands;	/* accepted */
	uint64_t	refused;	/* rconn_command() returned -1 */
	uint64_t	failed;		/* callback got NULL */
	uint64_t	timeouts;	/* connections dropped because a command timed out */
	uint64_t	connects;	/* successful (re)connections */
	uint64_t	disconnects;	/* lost or dropped connections */
};

/*
 * Called once per accepted command. reply is owned by hiredis and valid only during the call:
 * copy what you need. It may be a REDIS_REPLY_ERROR reply (the server refused the command);
 * NULL means there was no reply (timeout, disconnect or rconn_free()). The callback may issue
 * new commands, and may call rconn_free() (the free is then deferred until it is safe).
 */
typedef void (*rconn_cb)(struct rconn *rc, redisReply *reply, void *arg);

/* Sets the defaults above and host 127.0.0.1. */
void rconn_config_init(struct rconn_config *cfg);

/*
 * Parses "redis://[USER@]HOST:PORT[/DB]" ("redis://[::1]:6379" for IPv6; DB 0 when absent) or
 * "redis-sentinel://[USER@]HOST:PORT[,HOST:PORT...][/DB]#MASTER" into cfg. Returns 0, or -1
 * with a sentence in err and cfg unchanged. A URL with a password is refused (without echoing
 * it): passwords come from rconn_config_password().
 */
int rconn_parse_url(const char *url, struct rconn_config *cfg, char *err, size_t errlen);

/*
 * Sets the password from the file path (its bytes, one trailing newline dropped), or when path
 * is NULL from the environment variable REDISCLI_AUTH (redis-cli's convention; no password when
 * it is unset or empty). Returns 0, or -1 with a sentence in err. Warns when the file is
 * readable by others.
 */
int rconn_config_password(struct rconn_config *cfg, const char *path, char *err, size_t errlen);

/* For the programs' flag parsing: rconn_parse_url(url) and rconn_config_password(path), exiting
 * 2 with one line naming flag (or --redis-password-file) on an error. */
void rconn_config_cli(struct rconn_config *cfg, const char *flag, const char *url,
    const char *path);

/*
 * Creates the connection on base and starts connecting at once. Returns NULL only when memory or
 * libevent fail; an unreachable server is not an error (the state stays down and it retries).
 * The rconn is the caller's: free it with rconn_free() before freeing base. cfg is copied.
 */
struct rconn *rconn_new(struct event_base *base, const struct rconn_config *cfg);

/* Fails every pending command (callbacks with NULL), closes the connection and frees rc. */
void rconn_free(struct rconn *rc);

enum rconn_state rconn_state(const struct rconn *rc);
/* 1 when commands are accepted. */
int rconn_is_up(const struct rconn *rc);
/* "up", "connecting" or "down". */
const char *rconn_state_name(enum rconn_state s);
/* A copy of the counters. */
struct rconn_stats rconn_stats(const struct rconn *rc);
/* Commands sent and not yet answered. */
int rconn_pending(const struct rconn *rc);

/*
 * Sends one command, built by hiredis from fmt like redisAsyncCommand() (%s, %b with a length,
 * %d...; arguments are copied before return). Returns 0 when accepted (cb will be called exactly
 * once), or -1 when the connection is not up, RCONN_MAX_PENDING commands are in flight, or the
 * command cannot be formatted: then cb is never called. arg stays the caller's.
 */
int rconn_command(struct rconn *rc, rconn_cb cb, void *arg, const char *fmt, ...);
/* The same with an argument vector (copied before return). */
int rconn_command_argv(struct rconn *rc, rconn_cb cb, void *arg, int argc, const char **argv,
    const size_t *argvlen);

#endif
