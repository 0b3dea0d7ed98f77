/*
 * Virtual users and their connections. A worker thread runs one event loop for its share of
 * the users; each user logs in once on one of its connections (the others wait for it), keeps
 * its cookies and token, then asks for the profile over keep-alive connections, closed loop
 * (the next request as soon as the answer is in) or open loop (at a fixed pace, with latency
 * counted from the intended send time as wrk2 does). With --flow refresh a user also trades its
 * refresh token for a new pair (POST /refresh) once 3/4 of its access token's life has passed,
 * on whichever of its connections comes next, counted as one of its requests; the others carry
 * on with the old token meanwhile, as a browser's tabs would. A periodic tick ends the run and expires
 * connects and responses that take longer than --timeout, so there is no timer per request.
 */
#include "loadgen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cli.h"
#include "log.h"

#define VU_TICK_US	10000
#define VU_BACKOFF_US	100000	/* before reconnecting after a failed connect */
#define VU_MAX_TOKEN	8192
#define VU_LOGIN_TRIES	5	/* failed logins in a row before a user gives up */

enum vu_state {
	VU_LOGGED_OUT,
	VU_LOGGING_IN,		/* v_login_conn is sending the login */
	VU_LOGGED_IN,
	VU_FAILED		/* refused, or VU_LOGIN_TRIES failures: the user stops */
};

struct vu {
	struct worker	*v_w;
	enum vu_state	 v_state;
	const struct lg_cred *v_cred;
	struct jar	 v_jar;
	char		*v_token;
	char		*v_req;		/* the profile request, rebuilt when v_dirty */
	size_t		 v_reqlen;
	int		 v_dirty;
	struct conn	**v_conns;
	size_t		 v_nconns;
	struct conn	*v_login_conn;
	int		 v_login_failures;	/* in a row */
	char		*v_refresh;		/* --flow refresh: the refresh token */
	uint64_t	 v_refresh_at_us;	/* when to use it; 0: no refresh token */
	int		 v_refreshing;		/* one connection is sending it */
};

enum conn_state {
	CONN_IDLE,		/* between two steps */
	CONN_CONNECTING,
	CONN_BUSY,		/* a request is in flight */
	CONN_WAIT,		/* c_timer runs: open-loop pacing or back-off */
	CONN_WAIT_LOGIN,	/* another connection of the user is logging in */
	CONN_DONE
};

struct conn {
	struct worker	*c_w;
	struct vu	*c_vu;
	enum conn_state	 c_state;
	int		 c_login;	/* the request in flight is the login */
	int		 c_refresh;	/* the request in flight is POST /refresh */
	int		 c_claimed;	/* holds one request of the --requests budget */
	struct bufferevent *c_bev;
	struct event	*c_timer;
	struct resp	 c_resp;
	struct evbuffer	*c_body;	/* the login answer */
	uint64_t	 c_sent_us;
	uint64_t	 c_intended_us;
	uint64_t	 c_deadline_us;	/* 0: nothing to expire */
	double		 c_next_us;	/* open loop: the next intended send time */
};

static void	conn_next(struct conn *);

static uint64_t
vu_rand(struct worker *w)
{
	/* xorshift64: the phases of the open loop only need to be spread out. */
	w->w_rand ^= w->w_rand << 13;
	w->w_rand ^= w->w_rand >> 7;
	w->w_rand ^= w->w_rand << 17;
	return w->w_rand;
}

/* Rebuilds the profile request from the user's cookies and token into vu->v_req, which the
 * user owns (freed by vu_worker_free()). Returns 0, or -1 with the old request kept. */
static int
vu_build(struct vu *vu)
{
	const struct lg_config *cfg = vu->v_w->w_run->cfg;
	char *cookie = NULL, *req = NULL;
	int n;

	if (vu->v_jar.j_n > 0) {
		n = JAR_MAX_COOKIES * (JAR_MAX_NAME + JAR_MAX_VALUE + 3);
		if ((cookie = malloc((size_t)n)) == NULL ||
		    jar_header(&vu->v_jar, cookie, (size_t)n) == -1)
			goto fail;
	}
	n = asprintf(&req, "GET %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: loadgen/%s\r\n"
	    "Accept: application/json\r\n%s%s%s%s%s%s\r\n",
	    cfg->url.u_base, cfg->path, cfg->url.u_authority, AUTH_VERSION,
	    cookie ? "Cookie: " : "", cookie ? cookie : "", cookie ? "\r\n" : "",
	    vu->v_token ? "Authorization: Bearer " : "", vu->v_token ? vu->v_token : "",
	    vu->v_token ? "\r\n" : "");
	if (n < 0)
		goto fail;
	free(cookie);
	free(vu->v_req);
	vu->v_req = req;
	vu->v_reqlen = (size_t)n;
	vu->v_dirty = 0;
	return 0;
fail:
	free(cookie);
	return -1;
}

/* Appends the login request (JSON body, the user's cookies if any) to out; what it allocates
 * on the way is freed before it returns. Returns 0 or -1. */
static int
vu_login_request(struct vu *vu, struct evbuffer *out)
{
	const struct lg_config *cfg = vu->v_w->w_run->cfg;
	json_t *o;
	char *body = NULL, *cookie = NULL;
	size_t clen = JAR_MAX_COOKIES * (JAR_MAX_NAME + JAR_MAX_VALUE + 3);
	int rc = -1;

	o = json_pack("{s:s, s:s}", "username", vu->v_cred->cr_user,
	    "password", vu->v_cred->cr_pass);
	if (o == NULL || (body = json_dumps(o, JSON_COMPACT)) == NULL)
		goto done;
	if (vu->v_jar.j_n > 0 && ((cookie = malloc(clen)) == NULL ||
	    jar_header(&vu->v_jar, cookie, clen) == -1))
		goto done;
	if (evbuffer_add_printf(out, "POST %s/login HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: loadgen/%s\r\nAccept: application/json\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n%s%s%s\r\n%s",
	    cfg->url.u_base, cfg->url.u_authority, AUTH_VERSION, strlen(body),
	    cookie ? "Cookie: " : "", cookie ? cookie : "", cookie ? "\r\n" : "", body) < 0)
		goto done;
	rc = 0;
done:
	free(cookie);
	free(body);
	json_decref(o);
	return rc;
}

/* A copy of a string that is safe to put in a header (malloc'd, the caller's), or NULL. */
static char *
vu_header_safe(const char *t)
{
	size_t i;

	if (t == NULL || strlen(t) == 0 || strlen(t) > VU_MAX_TOKEN)
		return NULL;
	for (i = 0; t[i] > 0x20 && t[i] < 0x7f && t[i] != '"' && t[i] != '\\'; i++)
		;
	return t[i] == '\0' ? strdup(t) : NULL;
}

/*
 * Takes the access token (and with --flow refresh the refresh token and when to use it) out of
 * a JSON login or refresh answer into the user, replacing what it held. Returns 0, or -1 when
 * one is missing or unusable (the user is then unchanged).
 */
static int
vu_tokens(struct vu *vu, struct evbuffer *body, uint64_t now)
{
	size_t len = evbuffer_get_length(body);
	char *tok = NULL, *rt = NULL;
	json_int_t exp = 0;
	json_t *o;
	int rc = -1;

	o = json_loadb((const char *)evbuffer_pullup(body, (ssize_t)len), len, 0, NULL);
	if (o == NULL || (tok = vu_header_safe(json_string_value(json_object_get(o,
	    "access_token")))) == NULL)
		goto done;
	if (vu->v_w->w_run->cfg->flow == FLOW_REFRESH) {
		exp = json_integer_value(json_object_get(o, "expires_in"));
		if ((rt = vu_header_safe(json_string_value(json_object_get(o,
		    "refresh_token")))) == NULL || exp <= 0)
			goto done;
		free(vu->v_refresh);
		vu->v_refresh = rt;
		vu->v_refresh_at_us = now + (uint64_t)exp * 750000u;
		rt = NULL;
	}
	free(vu->v_token);
	vu->v_token = tok;
	tok = NULL;
	vu->v_dirty = 1;
	rc = 0;
done:
	free(tok);
	free(rt);
	json_decref(o);
	return rc;
}

static void
vu_warn(enum lg_err err, const char *why)
{
	static atomic_int warned[ERR__MAX];

	/* Once per kind and run: the report has the counts. */
	if (atomic_exchange(&warned[err], 1) == 0)
		log_warnx("first %s error: %s", stats_err_name(err), why);
}

/*
 * Says once per run why a login failed: which user, and what the server answered (status and
 * the JSON error body), so that "no virtual user could log in" at the end has its reason. A 200
 * without a token is a failed login too (counted in the report's logins, not as a protocol
 * error): a session server answering --flow jwt.
 */
static void
vu_login_warn(struct conn *c, int status)
{
	static atomic_int warned;
	size_t len = evbuffer_get_length(c->c_body);
	const char *error = NULL, *message = NULL;
	json_t *o;

	if (atomic_exchange(&warned, 1) != 0)
		return;
	o = json_loadb((const char *)evbuffer_pullup(c->c_body, (ssize_t)len), len, 0, NULL);
	error = json_string_value(json_object_get(o, "error"));
	message = json_string_value(json_object_get(o, "message"));
	if (status == 200)
		log_warnx("first failed login: %s got 200 without a usable access_token (a session "
		    "server? try --flow session)", c->c_vu->v_cred->cr_user);
	else
		log_warnx("first failed login: %s got %d%s%s%s%s", c->c_vu->v_cred->cr_user, status,
		    error ? " " : "", error ? error : "", message ? ": " : "", message ? message : "");
	json_decref(o);
}

/* Frees the bufferevent: the connection is gone, nothing else changes. */
static void
conn_close_bev(struct conn *c)
{
	if (c->c_bev != NULL) {
		bufferevent_free(c->c_bev);
		c->c_bev = NULL;
	}
	c->c_deadline_us = 0;
}

static void
conn_wait(struct conn *c, uint64_t us)
{
	struct timeval tv = { (time_t)(us / 1000000), (suseconds_t)(us % 1000000) };

	c->c_state = CONN_WAIT;
	evtimer_add(c->c_timer, &tv);
}

/* The connection is not needed any more; the worker ends when none is left. */
static void
conn_finish(struct conn *c)
{
	struct worker *w = c->c_w;

	if (c->c_state == CONN_DONE)
		return;
	conn_close_bev(c);
	evtimer_del(c->c_timer);
	c->c_state = CONN_DONE;
	if (--w->w_active == 0)
		event_base_loopbreak(w->w_base);
}

/*
 * Counts a failed login. A refusal (status 4xx) will not change by retrying, nor will a
 * server that fails every try: after VU_LOGIN_TRIES in a row the user gives up and its
 * connections finish. Otherwise the user is logged out and the login is tried again.
 */
static enum vu_state
vu_login_failed(struct vu *vu, int status)
{
	size_t i;

	vu->v_w->w_stats.st_logins_failed++;
	if ((status >= 400 && status < 500 && status != 408 && status != 429) ||
	    ++vu->v_login_failures >= VU_LOGIN_TRIES) {
		vu->v_state = VU_FAILED;
		for (i = 0; i < vu->v_nconns; i++)
			conn_finish(vu->v_conns[i]);
	} else
		vu->v_state = VU_LOGGED_OUT;
	return vu->v_state;
}

/*
 * The one place a failed connection goes: counts the error, gives the login back to the user
 * (it will be retried) or consumes the request attempt, and reconnects later.
 */
static void
conn_drop(struct conn *c, enum lg_err err, const char *why)
{
	struct vu *vu = c->c_vu;
	struct stats *st = &c->c_w->w_stats;

	conn_close_bev(c);
	st->st_errors[err]++;
	vu_warn(err, why);
	c->c_login = 0;
	if (c->c_refresh) {
		c->c_refresh = 0;
		vu->v_refreshing = 0;	/* the token is still there: the next request retries */
	}
	if (vu->v_state == VU_LOGGING_IN && vu->v_login_conn == c) {
		vu->v_login_conn = NULL;
		if (vu_login_failed(vu, 0) == VU_FAILED)
			return;
	} else
		c->c_claimed = 0;
	conn_wait(c, err == ERR_CONNECT || err == ERR_TLS ? VU_BACKOFF_US : 0);
}

/* Why a TLS bufferevent failed, or NULL when OpenSSL has no error for it. */
static const char *
conn_tls_error(struct conn *c, char *buf, size_t len)
{
	unsigned long e;

	if (c->c_w->w_run->ssl == NULL || (e = bufferevent_get_openssl_error(c->c_bev)) == 0)
		return NULL;
	ERR_error_string_n(e, buf, len);
	return buf;
}

static void
conn_record(struct conn *c, uint64_t now)
{
	struct stats *st = &c->c_w->w_stats;
	const struct lg_config *cfg = c->c_w->w_run->cfg;
	int status = c->c_resp.r_status;

	st->st_requests++;
	st->st_status[status]++;
	stats_backend(st, c->c_resp.r_served_by);
	if (status == 401 && cfg->flow != FLOW_NONE)
		st->st_auth_failures++;		/* every profile request follows a login */
	hist_record(&st->st_latency, now - (cfg->rate > 0 ? c->c_intended_us : c->c_sent_us));
	c->c_claimed = 0;
}

/* The login answer is in: on success every connection of the user starts. */
static void
conn_login_done(struct conn *c, uint64_t now)
{
	struct vu *vu = c->c_vu;
	struct worker *w = c->c_w;
	const struct lg_config *cfg = w->w_run->cfg;
	int status = c->c_resp.r_status;
	size_t i;

	c->c_login = 0;
	vu->v_login_conn = NULL;
	if (status == 200 && (cfg->flow == FLOW_SESSION || vu_tokens(vu, c->c_body, now) == 0) &&
	    vu_build(vu) == 0) {
		w->w_stats.st_logins_ok++;
		vu->v_state = VU_LOGGED_IN;
		for (i = 0; i < vu->v_nconns; i++)
			vu->v_conns[i]->c_next_us = (double)now +
			    (double)(vu_rand(w) % 1000000) / 1e6 * w->w_run->interval_us;
		vu->v_login_failures = 0;
		for (i = 0; i < vu->v_nconns; i++)
			if (vu->v_conns[i] == c || vu->v_conns[i]->c_state == CONN_WAIT_LOGIN)
				conn_next(vu->v_conns[i]);
		return;
	}
	vu_login_warn(c, status);
	if (vu_login_failed(vu, status) == VU_LOGGED_OUT)
		conn_wait(c, VU_BACKOFF_US);
}

/*
 * The refresh answer is in (already recorded as a request). A new pair replaces the old one; a
 * refusal (reused, revoked, expired) sends the user back to the login; anything else (503) is
 * retried with the next request.
 */
static void
conn_refresh_done(struct conn *c, uint64_t now)
{
	struct vu *vu = c->c_vu;
	int status = c->c_resp.r_status;

	c->c_refresh = 0;
	vu->v_refreshing = 0;
	if (status == 200 && vu_tokens(vu, c->c_body, now) == 0)
		return;
	if (status == 200)
		vu_warn(ERR_PROTOCOL, "refresh answer without a usable token pair");
	if (status == 401 && vu->v_state == VU_LOGGED_IN) {
		vu->v_state = VU_LOGGED_OUT;
		vu->v_refresh_at_us = 0;
	}
}

/* A complete response is in. */
static void
conn_done(struct conn *c)
{
	uint64_t now = lg_now_us();

	c->c_deadline_us = 0;
	c->c_state = CONN_IDLE;
	if (c->c_resp.r_jar_changed)
		c->c_vu->v_dirty = 1;
	if (c->c_resp.r_close)
		conn_close_bev(c);
	if (c->c_login) {
		conn_login_done(c, now);
		return;
	}
	conn_record(c, now);
	if (c->c_refresh)
		conn_refresh_done(c, now);
	conn_next(c);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	int rc;

	if (c->c_state != CONN_BUSY) {
		conn_drop(c, ERR_PROTOCOL, "data while no request was in flight");
		return;
	}
	if ((rc = resp_feed(&c->c_resp, in)) == 0)
		return;
	if (rc == -1) {
		conn_drop(c, ERR_PROTOCOL, "malformed response or a limit exceeded");
		return;
	}
	if (evbuffer_get_length(in) > 0) {
		conn_drop(c, ERR_PROTOCOL, "data after the response");
		return;
	}
	conn_done(c);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	char buf[256];
	const char *tls;

	if (what & BEV_EVENT_CONNECTED) {
		c->c_deadline_us = 0;
		c->c_state = CONN_IDLE;
		conn_next(c);
		return;
	}
	tls = conn_tls_error(c, buf, sizeof(buf));
	switch (c->c_state) {
	case CONN_CONNECTING:
		if (tls != NULL)
			conn_drop(c, ERR_TLS, tls);
		else
			conn_drop(c, ERR_CONNECT, evutil_socket_error_to_string(
			    EVUTIL_SOCKET_ERROR()));
		break;
	case CONN_BUSY:
		if ((what & BEV_EVENT_EOF) && resp_eof(&c->c_resp) == 1)
			conn_done(c);
		else if (what & BEV_EVENT_EOF)
			conn_drop(c, ERR_READ, "connection closed before the response ended");
		else if (tls != NULL)
			conn_drop(c, ERR_TLS, tls);
		else
			conn_drop(c, ERR_READ, evutil_socket_error_to_string(
			    EVUTIL_SOCKET_ERROR()));
		break;
	default:
		conn_close_bev(c);	/* the server closed an idle keep-alive connection */
		break;
	}
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	c->c_state = CONN_IDLE;
	conn_next(c);
}

static void
conn_connect(struct conn *c)
{
	struct lg_run *run = c->c_w->w_run;
	const struct lg_url *u = &run->cfg->url;
	struct in6_addr ip;
	SSL *ssl;

	if (run->ssl != NULL) {
		if ((ssl = SSL_new(run->ssl)) == NULL)
			goto fail;
		/* Verify the name the user asked for: an IP address or a host name. */
		if (inet_pton(AF_INET, u->u_host, &ip) == 1 ||
		    inet_pton(AF_INET6, u->u_host, &ip) == 1) {
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), u->u_host);
		} else {
			SSL_set_tlsext_host_name(ssl, u->u_host);
			SSL_set1_host(ssl, u->u_host);
		}
		c->c_bev = bufferevent_openssl_socket_new(c->c_w->w_base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->c_bev == NULL) {
			SSL_free(ssl);
			goto fail;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(c->c_bev, 1);
	} else if ((c->c_bev = bufferevent_socket_new(c->c_w->w_base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		goto fail;
	bufferevent_setcb(c->c_bev, conn_read_cb, NULL, conn_event_cb, c);
	bufferevent_enable(c->c_bev, EV_READ);
	c->c_state = CONN_CONNECTING;
	c->c_deadline_us = lg_now_us() + (uint64_t)(run->cfg->timeout * 1e6);
	if (bufferevent_socket_connect(c->c_bev, (struct sockaddr *)&run->addr,
	    (int)run->addrlen) == -1)
		goto fail;
	return;
fail:
	conn_drop(c, ERR_CONNECT, "cannot start a connection");
}

/* Queues POST /refresh with the user's refresh token; the answer goes to c_body. */
static void
conn_send_refresh(struct conn *c)
{
	const struct lg_config *cfg = c->c_w->w_run->cfg;
	struct vu *vu = c->c_vu;
	uint64_t now = lg_now_us();

	c->c_refresh = 1;
	vu->v_refreshing = 1;
	evbuffer_drain(c->c_body, evbuffer_get_length(c->c_body));
	resp_reset(&c->c_resp, NULL, c->c_body);
	if (evbuffer_add_printf(bufferevent_get_output(c->c_bev), "POST %s/refresh HTTP/1.1\r\n"
	    "Host: %s\r\nUser-Agent: loadgen/%s\r\nAccept: application/json\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n"
	    "{\"refresh_token\":\"%s\"}", cfg->url.u_base, cfg->url.u_authority, AUTH_VERSION,
	    strlen(vu->v_refresh) + 20, vu->v_refresh) < 0)
		fatalx("out of memory building a refresh request");
	c->c_sent_us = now;
	c->c_deadline_us = now + (uint64_t)(cfg->timeout * 1e6);
	c->c_state = CONN_BUSY;
}

static void
conn_send(struct conn *c, int login)
{
	struct vu *vu = c->c_vu;
	struct evbuffer *out = bufferevent_get_output(c->c_bev);
	uint64_t now = lg_now_us();
	size_t sent = 0;
	ssize_t n;

	c->c_login = login;
	if (login) {
		evbuffer_drain(c->c_body, evbuffer_get_length(c->c_body));
		/* A refresh-flow user is an API client: it holds its tokens, not cookies. */
		resp_reset(&c->c_resp, c->c_w->w_run->cfg->flow == FLOW_REFRESH ? NULL : &vu->v_jar,
		    c->c_body);
		if (vu_login_request(vu, out) == -1)
			fatalx("out of memory building a login request");
	} else {
		resp_reset(&c->c_resp, &vu->v_jar, NULL);
		if (c->c_w->w_run->ssl == NULL && evbuffer_get_length(out) == 0) {
			/* Send at once rather than in the next loop turn: this saves two
			 * epoll_ctl calls and a turn of latency per request, and is what lets
			 * loadgen keep up with wrk. Only what the socket refuses is queued. */
			n = send(bufferevent_getfd(c->c_bev), vu->v_req, vu->v_reqlen,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				conn_drop(c, ERR_READ, strerror(errno));
				return;
			}
			sent = n > 0 ? (size_t)n : 0;
		}
		if (sent < vu->v_reqlen &&
		    evbuffer_add(out, vu->v_req + sent, vu->v_reqlen - sent) == -1)
			fatalx("out of memory queueing a request");
	}
	c->c_sent_us = now;
	c->c_deadline_us = now + (uint64_t)(c->c_w->w_run->cfg->timeout * 1e6);
	c->c_state = CONN_BUSY;
}

/* Decides what the connection does next: log in, wait for the login, pace, connect, ask. */
static void
conn_next(struct conn *c)
{
	struct vu *vu = c->c_vu;
	struct worker *w = c->c_w;
	struct lg_run *run = w->w_run;
	const struct lg_config *cfg = run->cfg;
	uint64_t now;

	if (w->w_stopping || c->c_state == CONN_DONE)
		return;
	switch (vu->v_state) {
	case VU_FAILED:
		conn_finish(c);
		return;
	case VU_LOGGED_OUT:
		vu->v_state = VU_LOGGING_IN;
		vu->v_login_conn = c;
		/* FALLTHROUGH */
	case VU_LOGGING_IN:
		if (c != vu->v_login_conn) {
			c->c_state = CONN_WAIT_LOGIN;
			return;
		}
		if (c->c_bev == NULL)
			conn_connect(c);
		else
			conn_send(c, 1);
		return;
	case VU_LOGGED_IN:
		break;
	}
	if (!c->c_claimed) {
		if (cfg->requests > 0 && atomic_fetch_add(&run->claimed, 1) >= cfg->requests) {
			conn_finish(c);
			return;
		}
		c->c_claimed = 1;
		if (cfg->rate > 0) {
			c->c_intended_us = (uint64_t)c->c_next_us;
			c->c_next_us += run->interval_us;
		}
	}
	if (cfg->rate > 0 && (now = lg_now_us()) < c->c_intended_us) {
		conn_wait(c, c->c_intended_us - now);
		return;
	}
	if (c->c_bev == NULL) {
		conn_connect(c);
		return;
	}
	if (vu->v_refresh_at_us != 0 && !vu->v_refreshing && lg_now_us() >= vu->v_refresh_at_us) {
		conn_send_refresh(c);
		return;
	}
	if (vu->v_dirty && vu_build(vu) == -1)
		fatalx("out of memory building a request");
	conn_send(c, 0);
}

static void
vu_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	uint64_t now = lg_now_us();
	struct conn *c;
	size_t i;

	stats_sample(&w->w_stats, now - w->w_run->start_us);
	if (now >= w->w_run->end_us || atomic_load(&w->w_run->stop)) {
		w->w_stopping = 1;
		event_base_loopbreak(w->w_base);
		return;
	}
	for (i = 0; i < w->w_nconns; i++) {
		c = &w->w_conns[i];
		if (c->c_deadline_us != 0 && now >= c->c_deadline_us)
			conn_drop(c, c->c_state == CONN_CONNECTING ? ERR_CONNECT : ERR_TIMEOUT,
			    c->c_state == CONN_CONNECTING ? "connect timed out" :
			    "no complete response in time");
	}
}

int
vu_worker_init(struct worker *w, struct lg_run *run, size_t idx, size_t nworkers)
{
	const struct lg_config *cfg = run->cfg;
	size_t users = (size_t)cfg->users, conns = (size_t)cfg->concurrency, i, k, n;
	struct timeval tick = { 0, VU_TICK_US };
	struct conn *c;
	struct vu *vu;

	memset(w, 0, sizeof(*w));
	w->w_run = run;
	w->w_rand = 0x9e3779b97f4a7c15ULL ^ (idx + 1) * 0xbf58476d1ce4e5b9ULL;
	stats_init(&w->w_stats);
	if ((w->w_base = event_base_new()) == NULL)
		goto fail;
	w->w_nvus = (users + nworkers - 1 - idx) / nworkers;
	for (i = 0; i < conns; i++)
		if ((i % users) % nworkers == idx)
			w->w_nconns++;
	w->w_vus = calloc(w->w_nvus, sizeof(*w->w_vus));
	w->w_conns = calloc(w->w_nconns, sizeof(*w->w_conns));
	if (w->w_vus == NULL || w->w_conns == NULL)
		goto fail;
	for (k = 0; k < w->w_nvus; k++) {
		vu = &w->w_vus[k];
		vu->v_w = w;
		jar_init(&vu->v_jar);
		if (run->ncreds > 0)
			vu->v_cred = &run->creds[(k * nworkers + idx) % (size_t)run->ncreds];
		vu->v_state = cfg->flow == FLOW_NONE ? VU_LOGGED_IN : VU_LOGGED_OUT;
		n = conns / users + ((k * nworkers + idx) < conns % users);
		if ((vu->v_conns = calloc(n, sizeof(*vu->v_conns))) == NULL)
			goto fail;
		if (vu_build(vu) == -1)
			goto fail;
	}
	for (i = 0, n = 0; i < conns; i++) {
		if ((i % users) % nworkers != idx)
			continue;
		c = &w->w_conns[n++];
		vu = &w->w_vus[(i % users) / nworkers];
		c->c_w = w;
		c->c_vu = vu;
		vu->v_conns[vu->v_nconns++] = c;
		if ((c->c_timer = evtimer_new(w->w_base, conn_timer_cb, c)) == NULL ||
		    (c->c_body = evbuffer_new()) == NULL)
			goto fail;
	}
	if ((w->w_tick = event_new(w->w_base, -1, EV_PERSIST, vu_tick, w)) == NULL ||
	    event_add(w->w_tick, &tick) == -1)
		goto fail;
	return 0;
fail:
	log_warnx("out of memory setting up worker %zu", idx);
	return -1;
}

void *
vu_worker_run(void *arg)
{
	struct worker *w = arg;
	uint64_t now = lg_now_us();
	size_t i;

	w->w_active = w->w_nconns;
	for (i = 0; i < w->w_nconns; i++)
		w->w_conns[i].c_next_us = (double)now +
		    (double)(vu_rand(w) % 1000000) / 1e6 * w->w_run->interval_us;
	for (i = 0; i < w->w_nconns; i++)
		conn_next(&w->w_conns[i]);
	if (w->w_active > 0)
		event_base_dispatch(w->w_base);
	return NULL;
}

void
vu_worker_free(struct worker *w)
{
	size_t i;

	for (i = 0; i < w->w_nconns; i++) {
		conn_close_bev(&w->w_conns[i]);
		if (w->w_conns[i].c_timer != NULL)
			event_free(w->w_conns[i].c_timer);
		if (w->w_conns[i].c_body != NULL)
			evbuffer_free(w->w_conns[i].c_body);
	}
	for (i = 0; i < w->w_nvus; i++) {
		jar_free(&w->w_vus[i].v_jar);
		free(w->w_vus[i].v_token);
		free(w->w_vus[i].v_refresh);
		free(w->w_vus[i].v_req);
		free(w->w_vus[i].v_conns);
	}
	free(w->w_conns);
	free(w->w_vus);
	w->w_conns = NULL;
	w->w_vus = NULL;
	if (w->w_tick != NULL)
		event_free(w->w_tick);
	if (w->w_base != NULL)
		event_base_free(w->w_base);
	w->w_tick = NULL;
	w->w_base = NULL;
}
