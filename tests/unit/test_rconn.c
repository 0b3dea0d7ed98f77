/*
 * Unit tests of common/rconn.c against a tiny fake Redis that runs on the same event loop, so
 * that every failure can be staged on cue: refused connections, a server that appears late, a
 * command that never gets an answer, a server that hangs up, -LOADING, and rconn_free() called
 * from inside a callback. The real redis-server is exercised by the integration tests.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "rconn.h"
#include "unit.h"

#define FAKE_MAXCONN	8

/* The fake server: answers PING, SELECT and ECHO; stops answering at HANG; hangs up at CLOSE. */
static struct {
	struct event_base	*base;
	struct evconnlistener	*lev;
	struct bufferevent	*conns[FAKE_MAXCONN];
	int			 port;
	int			 loading;	/* answer PING with -LOADING */
	int			 accepted;
	int			 selected;	/* the last SELECT argument */
} fake;

/* Parses one RESP array of bulk strings at p. Returns the bytes it takes, 0 if incomplete,
 * with the upper-cased command in cmd and the first argument in arg. */
static size_t
fake_parse(const char *p, size_t n, char *cmd, char *arg)
{
	const char *end = p + n, *q = p;
	long argc, i, len;
	char *e;

	if (n < 4 || *q != '*' || memchr(q, '\n', n) == NULL)
		return 0;
	argc = strtol(q + 1, &e, 10);
	q = strchr(e, '\n') + 1;
	cmd[0] = arg[0] = '\0';
	for (i = 0; i < argc; i++) {
		if (q >= end || memchr(q, '\n', (size_t)(end - q)) == NULL)
			return 0;
		len = strtol(q + 1, &e, 10);
		q = strchr(e, '\n') + 1;
		if (end - q < len + 2)
			return 0;
		if (i < 2 && len < 64) {
			char *dst = i == 0 ? cmd : arg;
			memcpy(dst, q, (size_t)len);
			dst[len] = '\0';
		}
		q += len + 2;
	}
	for (e = cmd; *e; e++)
		*e = (char)toupper((unsigned char)*e);
	return (size_t)(q - p);
}

static void
fake_drop(struct bufferevent *bev)
{
	int i;

	for (i = 0; i < FAKE_MAXCONN; i++)
		if (fake.conns[i] == bev)
			fake.conns[i] = NULL;
	bufferevent_free(bev);
}

static void
fake_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	char cmd[64], a[64];
	size_t used;

	for (;;) {
		size_t n = evbuffer_get_length(in);
		const char *p = (const char *)evbuffer_pullup(in, -1);

		if (n == 0 || (used = fake_parse(p, n, cmd, a)) == 0)
			return;
		evbuffer_drain(in, used);
		if (strcmp(cmd, "PING") == 0)
			bufferevent_write(bev, fake.loading ? "-LOADING loading\r\n" : "+PONG\r\n",
			    fake.loading ? 18 : 7);
		else if (strcmp(cmd, "SELECT") == 0) {
			fake.selected = atoi(a);
			bufferevent_write(bev, "+OK\r\n", 5);
		} else if (strcmp(cmd, "ECHO") == 0)
			evbuffer_add_printf(bufferevent_get_output(bev), "$%zu\r\n%s\r\n", strlen(a), a);
		else if (strcmp(cmd, "CLOSE") == 0) {
			fake_drop(bev);
			return;
		} else if (strcmp(cmd, "HANG") == 0) {
			/* Like a stuck server: nothing more is read or answered. */
			bufferevent_disable(bev, EV_READ);
			return;
		} else
			bufferevent_write(bev, "-ERR unknown\r\n", 14);
	}
}

static void
fake_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		fake_drop(bev);
}

static void
fake_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int len,
    void *arg)
{
	struct bufferevent *bev;
	int i;

	bev = bufferevent_socket_new(fake.base, fd, BEV_OPT_CLOSE_ON_FREE);
	for (i = 0; i < FAKE_MAXCONN && fake.conns[i] != NULL; i++)
		;
	if (i == FAKE_MAXCONN) {
		bufferevent_free(bev);
		return;
	}
	fake.conns[i] = bev;
	fake.accepted++;
	bufferevent_setcb(bev, fake_read, NULL, fake_event, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* Listens on fake.port (a fresh port when 0). */
static void
fake_start(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((unsigned short)fake.port);
	fake.lev = evconnlistener_new_bind(fake.base, fake_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&sin, sizeof(sin));
	if (fake.lev == NULL) {
		fprintf(stderr, "cannot listen on %d\n", fake.port);
		exit(1);
	}
	getsockname(evconnlistener_get_fd(fake.lev), (struct sockaddr *)&sin, &sl);
	fake.port = ntohs(sin.sin_port);
}

/* Stops listening and hangs up on every client. */
static void
fake_stop(void)
{
	int i;

	if (fake.lev != NULL)
		evconnlistener_free(fake.lev);
	fake.lev = NULL;
	for (i = 0; i < FAKE_MAXCONN; i++)
		if (fake.conns[i] != NULL)
			fake_drop(fake.conns[i]);
}

static void
setup(void)
{
	memset(&fake, 0, sizeof(fake));
	fake.base = event_base_new();
}

static void
teardown(void)
{
	fake_stop();
	event_base_free(fake.base);
}

static void
loop_ms(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(fake.base, &tv);
	event_base_dispatch(fake.base);
}

/* Runs the loop until rc is up, at most ms. */
static int
wait_up(struct rconn *rc, int ms)
{
	for (; ms > 0 && !rconn_is_up(rc); ms -= 10)
		loop_ms(10);
	return rconn_is_up(rc);
}

static struct rconn_config
config(int db)
{
	struct rconn_config cfg;

	rconn_config_init(&cfg);
	cfg.port = fake.port;
	cfg.db = db;
	cfg.command_timeout_ms = 200;
	cfg.connect_timeout_ms = 200;
	cfg.backoff_min_ms = 20;
	cfg.backoff_max_ms = 80;
	cfg.ping_interval_ms = 0;
	return cfg;
}

/* Records each callback: how often, and what it got. */
struct seen {
	int	calls;
	int	null;
	char	str[64];
};

static void
record(struct rconn *rc, redisReply *reply, void *arg)
{
	struct seen *s = arg;

	s->calls++;
	if (reply == NULL)
		s->null++;
	else if (reply->str != NULL)
		snprintf(s->str, sizeof(s->str), "%s", reply->str);
}

static void
test_parse_url(void)
{
	struct rconn_config cfg;
	char err[256];

	rconn_config_init(&cfg);
	CHECK_INT(rconn_parse_url("redis://127.0.0.1:6380/2", &cfg, err, sizeof(err)), 0);
	CHECK_STR(cfg.host, "127.0.0.1");
	CHECK_INT(cfg.port, 6380);
	CHECK_INT(cfg.db, 2);
	CHECK_INT(rconn_parse_url("redis://[::1]:7000", &cfg, err, sizeof(err)), 0);
	CHECK_STR(cfg.host, "::1");
	CHECK_INT(cfg.port, 7000);
	CHECK_INT(cfg.db, 0);
	CHECK_INT(rconn_parse_url("redis://localhost:1/15", &cfg, err, sizeof(err)), 0);
	CHECK_INT(cfg.db, 15);
	CHECK_INT(rconn_parse_url("http://h:1", &cfg, err, sizeof(err)), -1);
	CHECK(strstr(err, "redis://") != NULL);
	CHECK_INT(rconn_parse_url("redis://h", &cfg, err, sizeof(err)), -1);
	CHECK_INT(rconn_parse_url("redis://h:0", &cfg, err, sizeof(err)), -1);
	CHECK_INT(rconn_parse_url("redis://h:70000", &cfg, err, sizeof(err)), -1);
	CHECK_INT(rconn_parse_url("redis://h:1/", &cfg, err, sizeof(err)), -1);
	CHECK_INT(rconn_parse_url("redis://h:1/-1", &cfg, err, sizeof(err)), -1);
	CHECK_INT(rconn_parse_url("redis://h:1/2x", &cfg, err, sizeof(err)), -1);
	CHECK_INT(rconn_parse_url("redis://:1", &cfg, err, sizeof(err)), -1);
	CHECK_INT(rconn_parse_url("redis://::1:1", &cfg, err, sizeof(err)), -1);
	CHECK_STR(cfg.host, "localhost");	/* failures leave cfg alone */
}

static void
test_parse_url_user_sentinel_and_password_refused(void)
{
	struct rconn_config cfg;
	char err[256];

	rconn_config_init(&cfg);
	CHECK_INT(rconn_parse_url("redis://app@127.0.0.1:6380/1", &cfg, err, sizeof(err)), 0);
	CHECK_STR(cfg.user, "app");
	CHECK_STR(cfg.host, "127.0.0.1");
	CHECK_INT(cfg.nsentinels, 0);
	CHECK_INT(rconn_parse_url("redis-sentinel://127.0.0.1:26379,[::1]:26380/3#auth", &cfg, err,
	    sizeof(err)), 0);
	CHECK_INT(cfg.nsentinels, 2);
	CHECK_STR(cfg.sentinels[1].host, "::1");
	CHECK_INT(cfg.sentinels[1].port, 26380);
	CHECK_INT(cfg.db, 3);
	CHECK_STR(cfg.master, "auth");
	CHECK_STR(cfg.user, "");
	/* No master name, an empty one, a name on a plain URL, an empty host in the list. */
	CHECK_INT(rconn_parse_url("redis-sentinel://h:1", &cfg, err, sizeof(err)), -1);
	CHECK_INT(rconn_parse_url("redis-sentinel://h:1#", &cfg, err, sizeof(err)), -1);
	CHECK_INT(rconn_parse_url("redis://h:1#m", &cfg, err, sizeof(err)), -1);
	CHECK_INT(rconn_parse_url("redis-sentinel://h:1,,h:2#m", &cfg, err, sizeof(err)), -1);
	CHECK_INT(rconn_parse_url("redis-sentinel://h:1,h#m", &cfg, err, sizeof(err)), -1);
	CHECK_INT(rconn_parse_url("redis://h:1,h:2", &cfg, err, sizeof(err)), -1);
	/* A password is refused and never echoed. */
	CHECK_INT(rconn_parse_url("redis://app:Secret9@h:1", &cfg, err, sizeof(err)), -1);
	CHECK(strstr(err, "password") != NULL && strstr(err, "Secret9") == NULL);
	CHECK_INT(rconn_parse_url("redis://:Secret9@h:1", &cfg, err, sizeof(err)), -1);
	CHECK(strstr(err, "Secret9") == NULL);
	CHECK_INT(rconn_parse_url("redis-sentinel://u:Secret9@h:1#m", &cfg, err, sizeof(err)), -1);
	CHECK(strstr(err, "Secret9") == NULL);
	CHECK_INT(rconn_parse_url("redis://u:S/e#c@h:1", &cfg, err, sizeof(err)), -1);
	CHECK(strstr(err, "S/e#c") == NULL);
}

static void
test_commands_and_select(void)
{
	struct rconn_config cfg;
	struct rconn *rc;
	struct seen a = { 0 }, b = { 0 };

	setup();
	fake_start();
	cfg = config(5);
	rc = rconn_new(fake.base, &cfg);
	CHECK(rc != NULL);
	CHECK(!rconn_is_up(rc));
	CHECK(wait_up(rc, 1000));
	CHECK_INT(fake.selected, 5);
	CHECK_STR(rconn_state_name(rconn_state(rc)), "up");
	/* Two commands pipelined on the one connection, answered in order. */
	CHECK_INT(rconn_command(rc, record, &a, "ECHO %s", "one"), 0);
	CHECK_INT(rconn_command(rc, record, &b, "ECHO %b", "two", (size_t)3), 0);
	CHECK_INT(rconn_pending(rc), 2);
	loop_ms(50);
	CHECK_INT(a.calls, 1);
	CHECK_STR(a.str, "one");
	CHECK_INT(b.calls, 1);
	CHECK_STR(b.str, "two");
	CHECK_INT(rconn_pending(rc), 0);
	CHECK_INT(rconn_stats(rc).commands, 2);
	CHECK_INT(rconn_stats(rc).connects, 1);
	rconn_free(rc);
	teardown();
}

static void
test_refused_while_down_then_server_appears(void)
{
	struct rconn_config cfg;
	struct rconn *rc;
	struct seen a = { 0 };

	setup();
	fake_start();			/* learn a free port, then close it */
	fake_stop();
	cfg = config(0);
	rc = rconn_new(fake.base, &cfg);
	loop_ms(100);
	CHECK(!rconn_is_up(rc));
	CHECK_INT(rconn_command(rc, record, &a, "ECHO x"), -1);
	CHECK_INT(rconn_stats(rc).refused, 1);
	fake_start();
	CHECK(wait_up(rc, 1000));	/* the backoff is at most 80 ms here */
	CHECK_INT(rconn_command(rc, record, &a, "ECHO x"), 0);
	loop_ms(50);
	CHECK_INT(a.calls, 1);
	CHECK_INT(a.null, 0);
	rconn_free(rc);
	teardown();
}

static void
test_timeout_fails_every_pending_command_once_and_reconnects(void)
{
	struct rconn_config cfg;
	struct rconn *rc;
	struct seen hang = { 0 }, behind = { 0 }, after = { 0 };

	setup();
	fake_start();
	cfg = config(0);
	rc = rconn_new(fake.base, &cfg);
	CHECK(wait_up(rc, 1000));
	CHECK_INT(rconn_command(rc, record, &hang, "HANG"), 0);
	CHECK_INT(rconn_command(rc, record, &behind, "ECHO late"), 0);
	loop_ms(100);
	CHECK_INT(hang.calls, 0);	/* not before the 200 ms timeout */
	loop_ms(200);
	CHECK_INT(hang.calls, 1);
	CHECK_INT(hang.null, 1);
	CHECK_INT(behind.calls, 1);
	CHECK_INT(behind.null, 1);
	CHECK_INT(rconn_stats(rc).timeouts, 1);
	CHECK_INT(rconn_stats(rc).failed, 2);
	CHECK(wait_up(rc, 1000));
	CHECK_INT(rconn_stats(rc).connects, 2);
	CHECK_INT(rconn_command(rc, record, &after, "ECHO back"), 0);
	loop_ms(50);
	CHECK_STR(after.str, "back");
	CHECK_INT(hang.calls, 1);	/* still exactly once */
	rconn_free(rc);
	teardown();
}

static void
test_server_hangup_fails_pending_and_reconnects(void)
{
	struct rconn_config cfg;
	struct rconn *rc;
	struct seen a = { 0 }, b = { 0 };

	setup();
	fake_start();
	cfg = config(0);
	rc = rconn_new(fake.base, &cfg);
	CHECK(wait_up(rc, 1000));
	CHECK_INT(rconn_command(rc, record, &a, "CLOSE"), 0);
	CHECK_INT(rconn_command(rc, record, &b, "ECHO x"), 0);
	loop_ms(30);
	CHECK_INT(a.calls, 1);
	CHECK_INT(a.null, 1);
	CHECK_INT(b.calls, 1);
	CHECK_INT(b.null, 1);
	CHECK_INT(rconn_stats(rc).timeouts, 0);
	CHECK(wait_up(rc, 1000));
	CHECK_INT(rconn_stats(rc).disconnects, 1);
	CHECK_INT(fake.accepted, 2);
	rconn_free(rc);
	teardown();
}

static void
test_loading_server_is_not_up(void)
{
	struct rconn_config cfg;
	struct rconn *rc;

	setup();
	fake.loading = 1;
	fake_start();
	cfg = config(0);
	rc = rconn_new(fake.base, &cfg);
	loop_ms(300);
	CHECK(!rconn_is_up(rc));
	CHECK(fake.accepted >= 2);	/* it keeps retrying */
	fake.loading = 0;
	CHECK(wait_up(rc, 1000));
	rconn_free(rc);
	teardown();
}

static struct seen free_seen[3];

static void
free_from_callback(struct rconn *rc, redisReply *reply, void *arg)
{
	record(rc, reply, arg);
	rconn_free(rc);
	/* Deferred: rc stays usable until this callback returns, and refuses commands. */
	CHECK_INT(rconn_command(rc, record, &free_seen[2], "ECHO no"), -1);
}

static void
test_free_inside_a_callback_is_deferred(void)
{
	struct rconn_config cfg;
	struct rconn *rc;

	setup();
	memset(free_seen, 0, sizeof(free_seen));
	fake_start();
	cfg = config(0);
	rc = rconn_new(fake.base, &cfg);
	CHECK(wait_up(rc, 1000));
	CHECK_INT(rconn_command(rc, free_from_callback, &free_seen[0], "ECHO first"), 0);
	CHECK_INT(rconn_command(rc, record, &free_seen[1], "HANG"), 0);
	loop_ms(50);
	CHECK_INT(free_seen[0].calls, 1);
	CHECK_STR(free_seen[0].str, "first");
	CHECK_INT(free_seen[1].calls, 1);	/* failed by the deferred free */
	CHECK_INT(free_seen[1].null, 1);
	CHECK_INT(free_seen[2].calls, 0);
	teardown();
}

static void
test_free_fails_pending_commands(void)
{
	struct rconn_config cfg;
	struct rconn *rc;
	struct seen a = { 0 };

	setup();
	fake_start();
	cfg = config(0);
	rc = rconn_new(fake.base, &cfg);
	CHECK(wait_up(rc, 1000));
	CHECK_INT(rconn_command(rc, record, &a, "HANG"), 0);
	rconn_free(rc);
	CHECK_INT(a.calls, 1);
	CHECK_INT(a.null, 1);
	teardown();
}

static void
test_connect_timeout(void)
{
	struct rconn_config cfg;
	struct rconn *rc;
	int s;

	/* A listener whose backlog nobody accepts from still completes the TCP handshake, so
	 * this stages a server that connects but never answers the handshake's PING. */
	setup();
	fake_start();
	s = evconnlistener_get_fd(fake.lev);
	evconnlistener_disable(fake.lev);
	cfg = config(0);
	rc = rconn_new(fake.base, &cfg);
	loop_ms(500);
	CHECK(!rconn_is_up(rc));
	CHECK(rconn_stats(rc).connects == 0);
	CHECK(s >= 0);
	evconnlistener_enable(fake.lev);
	CHECK(wait_up(rc, 1500));
	rconn_free(rc);
	teardown();
}

UNIT_MAIN(CASE(test_parse_url), CASE(test_parse_url_user_sentinel_and_password_refused),
    CASE(test_commands_and_select),
    CASE(test_refused_while_down_then_server_appears),
    CASE(test_timeout_fails_every_pending_command_once_and_reconnects),
    CASE(test_server_hangup_fails_pending_and_reconnects), CASE(test_loading_server_is_not_up),
    CASE(test_free_inside_a_callback_is_deferred), CASE(test_free_fails_pending_commands),
    CASE(test_connect_timeout))
