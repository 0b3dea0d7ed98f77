/*
 * session_server: the stateful login server. POST /login sets a cookie holding a random session
 * id; the session itself lives on the server, in this process (--store memory) or in Redis
 * (--store redis://...). The memory store is what breaks behind a round-robin balancer; Redis
 * is the classic fix. The HTTP plumbing is common/http.c; this file is the session policy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "cookie.h"
#include "http.h"
#include "log.h"
#include "rconn.h"
#include "store.h"

#define SID_COOKIE	"sid"

static const char usage[] =
    "usage: session_server --listen HOST:PORT --id NAME --users FILE [options]\n"
    "  --store memory|redis://[USER@]HOST:PORT[/DB]\n"
    "         |redis-sentinel://HOST:PORT[,HOST:PORT...][/DB]#MASTER\n"
    "                          where sessions live (default memory)\n"
    "  --redis-password-file FILE\n"
    "                          Redis password (else $REDISCLI_AUTH; never in the URL)\n"
    "  --redis-wait N[:MS]     after storing a session, wait for N replicas (at most MS,\n"
    "                          default 500) before answering the login\n"
    "  --idle-timeout SECONDS  a session unused this long ends (default 1800)\n"
    "  --absolute-timeout SECONDS\n"
    "                          a session ends this long after login (default 28800)\n"
    "  --max-sessions N        memory store bound; the least recently used session is\n"
    "                          evicted beyond it (default 100000)\n"
    "  --redis-timeout MS      Redis connect and command timeout (default 1000)\n";

enum {
	OPT_STORE = 1, OPT_IDLE, OPT_ABSOLUTE, OPT_MAX_SESSIONS, OPT_REDIS_TIMEOUT,
	OPT_REDIS_PASSWORD, OPT_REDIS_WAIT
};

static const struct option longopts[] = {
	HTTP_LONGOPTS,
	{ "store", required_argument, NULL, OPT_STORE },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE },
	{ "absolute-timeout", required_argument, NULL, OPT_ABSOLUTE },
	{ "max-sessions", required_argument, NULL, OPT_MAX_SESSIONS },
	{ "redis-timeout", required_argument, NULL, OPT_REDIS_TIMEOUT },
	{ "redis-password-file", required_argument, NULL, OPT_REDIS_PASSWORD },
	{ "redis-wait", required_argument, NULL, OPT_REDIS_WAIT },
	{ NULL, 0, NULL, 0 }
};

static struct store *sess_store;

/* A login whose session is being written: freed by sess_login_stored(). */
struct login_state {
	struct http_req	*ls_req;
	char		 ls_sid[STORE_SID_LEN + 1];
	const struct user *ls_user;	/* owned by the server's users */
};

static struct store_conn *
sess_conn(struct http_req *r)
{
	return r->thr->data;
}

/* Sets the session cookie, or its deletion when sid is NULL. It has no Max-Age: it dies with
 * the browser, while the session's lifetime is enforced on the server. */
static void
sess_set_cookie(struct http_req *r, const char *sid)
{
	http_set_auth_cookie(r, SID_COOKIE, sid, -1);
}

/*
 * Finds the session id in the request and derives its key. Returns 0, or replies 401 itself
 * and returns -1: not_authenticated without a cookie, invalid_session for a malformed one.
 */
static int
sess_key(struct http_req *r, char *key)
{
	const char *hdr = http_header(r, "Cookie");
	char sid[STORE_SID_LEN + 2];	/* one more, so that a longer value does not fit */

	if (hdr == NULL || cookie_get(hdr, SID_COOKIE, sid, sizeof(sid)) == -1) {
		http_auth_failure(r, "not_authenticated");
		http_reply_error(r, 401, "not_authenticated", "Log in first.");
		return -1;
	}
	if (secret_hash(sid, strlen(sid), key) == -1) {
		http_auth_failure(r, "invalid_session");
		sess_set_cookie(r, NULL);
		http_reply_error(r, 401, "invalid_session", "The session cookie is not valid.");
		return -1;
	}
	return 0;
}

/* Maps a failed store result to the reply, in one place for every route. */
static void
sess_reply_failure(struct http_req *r, enum store_result res)
{
	switch (res) {
	case STORE_UNAVAILABLE:
		http_reply_error(r, 503, "store_unavailable",
		    "The session store cannot be reached; try again shortly.");
		break;
	case STORE_EXPIRED:
		http_auth_failure(r, "session_expired");
		sess_set_cookie(r, NULL);
		http_reply_error(r, 401, "session_expired", "The session has expired; log in again.");
		break;
	default:
		http_auth_failure(r, "invalid_session");
		sess_set_cookie(r, NULL);
		http_reply_error(r, 401, "invalid_session", "The session is unknown or has ended.");
		break;
	}
}

static void
sess_login_stored(enum store_result res, const struct session *unused, void *arg)
{
	struct login_state *ls = arg;
	struct http_req *r = ls->ls_req;
	const struct store_limits *lim = &sess_store->st_limits;

	if (res != STORE_OK) {
		sess_reply_failure(r, STORE_UNAVAILABLE);
	} else {
		sess_set_cookie(r, ls->ls_sid);
		http_reply_json(r, 200, json_pack("{s:s, s:s, s:s, s:I, s:I}",
		    "username", ls->ls_user->username, "served_by", http_cfg(r->thr->srv)->id,
		    "auth", "session", "idle_timeout", (json_int_t)(lim->idle_ms / 1000),
		    "absolute_timeout", (json_int_t)(lim->absolute_ms / 1000)));
	}
	OPENSSL_cleanse(ls->ls_sid, sizeof(ls->ls_sid));
	free(ls);
}

static void
sess_ignore(enum store_result res, const struct session *unused, void *arg)
{
}

/* The password was right: always a fresh id, whatever cookie the client sent (no fixation). */
static void
sess_login_ok(struct http_req *r, const struct user *user)
{
	struct login_state *ls;
	struct session s;
	char key[STORE_KEY_LEN + 1], oldsid[STORE_SID_LEN + 2];
	const char *hdr = http_header(r, "Cookie");

	/* The session this browser had ends here: a login never keeps the old one alive. */
	if (hdr != NULL && cookie_get(hdr, SID_COOKIE, oldsid, sizeof(oldsid)) != -1 &&
	    secret_hash(oldsid, strlen(oldsid), key) == 0)
		store_delete(sess_conn(r), key, store_now(), sess_ignore, NULL);
	if ((ls = calloc(1, sizeof(*ls))) == NULL) {
		http_reply_error(r, 503, "busy", "The server is out of memory; try again.");
		return;
	}
	if (secret_new(ls->ls_sid, key) == -1) {
		log_warnx("%s: the CSPRNG failed", __func__);
		free(ls);
		http_reply_error(r, 503, "busy", "Cannot make a session id; try again.");
		return;
	}
	ls->ls_req = r;
	ls->ls_user = user;
	memset(&s, 0, sizeof(s));
	snprintf(s.s_user, sizeof(s.s_user), "%s", user->username);
	s.s_created = s.s_seen = store_now();
	store_create(sess_conn(r), key, &s, sess_login_stored, ls);
}

static void
sess_login(struct http_req *r)
{
	/* No point hashing a password for a session that cannot be stored. */
	if (!store_up(sess_conn(r))) {
		sess_reply_failure(r, STORE_UNAVAILABLE);
		return;
	}
	http_login(r, sess_login_ok);
}

static void
sess_profile_found(enum store_result res, const struct session *s, void *arg)
{
	struct http_req *r = arg;
	const struct user *u;

	if (res != STORE_OK) {
		sess_reply_failure(r, res);
		return;
	}
	/* A user removed from the file since the login has no profile any more. */
	if ((u = users_find(http_users(r->thr->srv), s->s_user)) == NULL) {
		sess_reply_failure(r, STORE_NOTFOUND);
		return;
	}
	http_reply_json(r, 200, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
	    "username", u->username, "name", u->name, "email", u->email, "role", u->role,
	    "served_by", http_cfg(r->thr->srv)->id, "auth", "session"));
}

static void
sess_profile(struct http_req *r)
{
	char key[STORE_KEY_LEN + 1];

	if (sess_key(r, key) == 0)
		store_lookup(sess_conn(r), key, store_now(), sess_profile_found, r);
}

static void
sess_logout_done(enum store_result res, const struct session *unused, void *arg)
{
	struct http_req *r = arg;

	if (res != STORE_OK) {
		sess_reply_failure(r, res);
		return;
	}
	sess_set_cookie(r, NULL);
	http_reply_json(r, 200, json_pack("{s:s}", "status", "logged_out"));
}

static void
sess_logout(struct http_req *r)
{
	char key[STORE_KEY_LEN + 1];

	if (sess_key(r, key) == 0)
		store_delete(sess_conn(r), key, store_now(), sess_logout_done, r);
}

/* ---- POST /logout/all ---- */

static void
sess_logout_all_done(enum store_result res, long n, void *arg)
{
	struct http_req *r = arg;
	char msg[320];

	if (res != STORE_OK) {
		sess_reply_failure(r, res);
		return;
	}
	if (store_shared(sess_conn(r)))
		snprintf(msg, sizeof(msg), "%ld session%s ended on every server.", n,
		    n == 1 ? "" : "s");
	else
		snprintf(msg, sizeof(msg), "%ld session%s ended on this server (%s) only: with the "
		    "memory store each server keeps its own sessions, and sessions on the other "
		    "servers stay valid.", n, n == 1 ? "" : "s", http_cfg(r->thr->srv)->id);
	sess_set_cookie(r, NULL);
	http_reply_json(r, 200, json_pack("{s:s, s:s, s:I, s:s}", "status", "logged_out_everywhere",
	    "scope", store_shared(sess_conn(r)) ? "cluster" : "this_server", "ended", (json_int_t)n,
	    "message", msg));
}

/* Authenticated by the session (which also checks it has not ended), then every one of the
 * user's sessions goes. */
static void
sess_logout_all_found(enum store_result res, const struct session *s, void *arg)
{
	struct http_req *r = arg;

	if (res != STORE_OK)
		sess_reply_failure(r, res);
	else
		store_delete_user(sess_conn(r), s->s_user, sess_logout_all_done, r);
}

static void
sess_logout_all(struct http_req *r)
{
	char key[STORE_KEY_LEN + 1];

	if (sess_key(r, key) == 0)
		store_lookup(sess_conn(r), key, store_now(), sess_logout_all_found, r);
}

static const struct http_route routes[] = {
	{ "/login", HTTP_POST, sess_login, 1 },
	{ "/profile", HTTP_GET, sess_profile, 1 },
	{ "/logout", HTTP_POST, sess_logout, 1 },
	{ "/logout/all", HTTP_POST, sess_logout_all, 1 },
	{ NULL, 0, NULL, 0 }
};

static int
sess_thread_init(struct http_thread *t)
{
	if ((t->data = store_conn_new(sess_store, t->base, t->index)) == NULL) {
		log_warnx("thread %d: cannot set up the session store", t->index);
		return -1;
	}
	return 0;
}

static void
sess_thread_fini(struct http_thread *t)
{
	store_conn_free(t->data);
	t->data = NULL;
}

static int
sess_health(struct http_thread *t, json_t *body)
{
	int up = store_up(t->data);

	json_object_set_new(body, "store", json_string(store_name(t->data)));
	json_object_set_new(body, "store_status", json_string(up ? "up" : "down"));
	return up ? 200 : 503;
}

static void
sess_metrics(struct http_server *srv, struct evbuffer *out)
{
	struct store_conn *conns[HTTP_MAX_THREADS];
	int i, n = http_cfg(srv)->threads;

	for (i = 0; i < n; i++)
		conns[i] = http_thread_at(srv, i)->data;
	store_metrics(conns, n, out);
}

int
main(int argc, char *argv[])
{
	struct http_config cfg;
	struct rconn_config rcfg;
	struct store_limits lim = { 1800 * 1000, 28800 * 1000, 100000 };
	struct http_app app = {
		.routes = routes,
		.thread_init = sess_thread_init,
		.thread_fini = sess_thread_fini,
		.health = sess_health,
		.metrics = sess_metrics,
	};
	const char *store = "memory", *redis_password = NULL;
	char *colon;
	int wait_n = 0, wait_ms = 500;
	int opt, rv;

	http_cli_init("session_server", usage);
	http_config_init(&cfg);
	rconn_config_init(&rcfg);
	while ((opt = cli_next(argc, argv, longopts)) != -1) {
		if (http_config_opt(&cfg, opt, optarg))
			continue;
		switch (opt) {
		case OPT_STORE:
			store = optarg;
			break;
		case OPT_IDLE:
			lim.idle_ms = cli_num("--idle-timeout", optarg, 1, 30L * 86400) * 1000;
			break;
		case OPT_ABSOLUTE:
			lim.absolute_ms = cli_num("--absolute-timeout", optarg, 1, 365L * 86400) *
			    1000;
			break;
		case OPT_MAX_SESSIONS:
			lim.max_sessions = cli_num("--max-sessions", optarg, 1, 10000000);
			break;
		case OPT_REDIS_TIMEOUT:
			rcfg.connect_timeout_ms = rcfg.command_timeout_ms =
			    (int)cli_num("--redis-timeout", optarg, 10, 60000);
			break;
		case OPT_REDIS_PASSWORD:
			redis_password = optarg;
			break;
		case OPT_REDIS_WAIT:
			if ((colon = strchr(optarg, ':')) != NULL) {
				*colon = '\0';
				wait_ms = (int)cli_num("--redis-wait MS", colon + 1, 1, 60000);
			}
			wait_n = (int)cli_num("--redis-wait", optarg, 1, 100);
			break;
		}
	}
	if (optind < argc)
		cli_bad("unexpected argument '%s'", argv[optind]);
	http_config_check(&cfg);
	if (strcmp(store, "memory") == 0) {
		sess_store = store_memory_new(&lim);
	} else {
		rconn_config_cli(&rcfg, "--store", store, redis_password);
		if (wait_n > 0 && wait_ms >= rcfg.command_timeout_ms)
			cli_bad("--redis-wait: MS must be below --redis-timeout (%d)",
			    rcfg.command_timeout_ms);
		sess_store = store_redis_new(&lim, &rcfg, wait_n, wait_ms);
	}
	if (sess_store == NULL)
		fatalx("cannot create the session store");
	rv = http_serve(&cfg, &app);
	store_free(sess_store);
	return rv;
}
