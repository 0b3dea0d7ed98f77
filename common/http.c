/*
 * Routing and replies of the login servers' HTTP scaffolding (see http.h): request accessors,
 * the routes with their allowed methods, JSON replies and errors with the headers every reply
 * carries, request ids and client facts from trusted proxies, the access log, and the built-in
 * GET /healthz and GET /metrics.
 */
#include "http_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bearer.h"
#include "cookie.h"
#include "log.h"
#include "status.h"

/* ---- Requests ---- */

const char *
http_header(struct http_req *r, const char *name)
{
	size_t i, n = strlen(name);
	char *value;

	for (i = 0; i < r->nhdrs; i++) {
		const struct parse_hdr *f = &r->hdrs[i];

		if (f->namelen != n || strncasecmp(f->name, name, n) != 0)
			continue;
		/* The value is followed by its line's CR or trailing blanks: terminate it there, in
		 * the connection's own copy of the head, which is only read field by field. */
		value = (char *)f->value;
		value[f->valuelen] = '\0';
		return value;
	}
	return NULL;
}

void
http_add_header(struct http_req *r, const char *name, const char *value)
{
	evbuffer_add(r->headers, name, strlen(name));
	evbuffer_add(r->headers, ": ", 2);
	evbuffer_add(r->headers, value, strlen(value));
	evbuffer_add(r->headers, "\r\n", 2);
}

const char *
http_body(struct http_req *r, size_t *len)
{
	*len = r->bodylen;
	return r->bodylen > 0 ? r->body : NULL;
}

unsigned
http_method(struct http_req *r)
{
	return r->method;
}

const struct users *http_users(struct http_server *srv) { return srv->hs_users; }
const struct http_config *http_cfg(struct http_server *srv) { return srv->hs_cfg; }

struct http_thread *
http_thread_at(struct http_server *srv, int i)
{
	if (srv->hs_threads == NULL || i < 0 || i >= srv->hs_cfg->threads)
		return NULL;	/* an embedded listener has no loop threads */
	return &srv->hs_threads[i];
}

static const char *
http_method_name(unsigned m)
{
	switch (m) {
	case HTTP_GET: return "GET";
	case HTTP_POST: return "POST";
	case HTTP_HEAD: return "HEAD";
	case HTTP_PUT: return "PUT";
	case HTTP_DELETE: return "DELETE";
	case HTTP_OPTIONS: return "OPTIONS";
	case HTTP_PATCH: return "PATCH";
	case HTTP_TRACE: return "TRACE";
	default: return "OTHER";
	}
}

/* Appends len bytes of s to out (outsz bytes, *o of them used), control and non-ASCII bytes
 * as '?', cut at outsz - 1; out stays NUL-terminated. */
/* Writes the access-log line. */
static void
http_access_log(struct http_req *r, int status, size_t bytes, double seconds)
{
	char target[160] = "-";

	if (r->target != NULL)
		log_target(r->target, r->targetlen, target, sizeof(target));
	log_info("%s \"%s %s\" %d %zu %.3fms id=%s%s%s", r->peer,
	    r->target ? http_method_name(r->method) : "-", target, status, bytes,
	    seconds * 1e3, r->id, r->authfail ? " auth=" : "", r->authfail ? r->authfail : "");
}

/* Counts and logs the reply, then hands it to the connection. body stays the caller's. */
static void
http_finish(struct http_req *r, int status, const char *content_type, const char *body,
    size_t len)
{
	struct http_server *srv = r->thr->srv;
	struct timespec end;
	double secs;
	int route;

	clock_gettime(CLOCK_MONOTONIC, &end);
	secs = (double)(end.tv_sec - r->start.tv_sec) + (end.tv_nsec - r->start.tv_nsec) / 1e9;
	route = r->route ? (int)(r->route - srv->hs_app->routes) : HTTP_MAX_ROUTES;
	metrics_count(route, status, secs);
	if (!srv->hs_cfg->quiet)
		http_access_log(r, status, len, secs);
	conn_reply(r->conn, status, content_type, body, len);
}

void
http_reply_buffer(struct http_req *r, int status, const char *content_type,
    struct evbuffer *body)
{
	size_t len = body != NULL ? evbuffer_get_length(body) : 0;

	http_finish(r, status, content_type,
	    len > 0 ? (const char *)evbuffer_pullup(body, -1) : NULL, len);
	if (body != NULL)
		evbuffer_free(body);
}

void
http_reply_json(struct http_req *r, int status, json_t *body)
{
	char *text;
	size_t len;

	if (body == NULL) {
		http_finish(r, status, NULL, NULL, 0);
		return;
	}
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL) {
		log_warnx("%s: out of memory", __func__);
		http_finish(r, 503, NULL, NULL, 0);
		return;
	}
	/* The text ends with a newline: its NUL becomes one, for whoever reads it in a terminal. */
	len = strlen(text);
	text[len++] = '\n';
	http_finish(r, status, "application/json", text, len);
	free(text);
}

void
http_reply_error(struct http_req *r, int status, const char *code, const char *message)
{
	http_reply_json(r, status, json_pack("{s:s, s:s}", "error", code, "message", message));
}

void
http_fail(struct http_req *r, int status, const char *message)
{
	http_reply_error(r, status, status_error(status), message);
}

void
http_set_auth_cookie(struct http_req *r, const char *name, const char *value, long max_age)
{
	struct cookie_attrs a = {
		.max_age = value ? max_age : 0,
		.secure = r->secure,
		.http_only = 1,
		.same_site = "Lax",
		.path = "/",
	};
	char buf[BEARER_MAX_TOKEN + 256];

	if (cookie_build(buf, sizeof(buf), name, value ? value : "", &a) == 0)
		http_add_header(r, "Set-Cookie", buf);
	else
		log_warnx("%s: cannot build the %s cookie", __func__, name);
}

int
http_offload(struct http_req *r, void (*work)(void *), void (*done)(void *), void *arg)
{
	return pool_submit(r->thr->srv->hs_pool, r->thr->base, work, done, arg);
}

/* ---- Built-in routes ---- */

static void
http_healthz(struct http_req *r)
{
	struct http_server *srv = r->thr->srv;
	json_t *body;
	int status = 200;

	body = json_pack("{s:s, s:s, s:I, s:I}", "status", "ok", "id", srv->hs_cfg->id,
	    "uptime_s", (json_int_t)(time(NULL) - srv->hs_started),
	    "users", (json_int_t)users_count(srv->hs_users));
	if (body != NULL && srv->hs_app->health != NULL)
		status = srv->hs_app->health(r->thr, body);
	if (status != 200) {
		json_object_set_new(body, "status", json_string("unavailable"));
		if (json_object_get(body, "error") == NULL)
			json_object_set_new(body, "error", json_string("unavailable"));
		if (json_object_get(body, "message") == NULL)
			json_object_set_new(body, "message", json_string(
			    "A store this server needs cannot be reached; it cannot serve now."));
	}
	http_reply_json(r, status, body);
}

static void
http_metrics(struct http_req *r)
{
	struct evbuffer *out = evbuffer_new();

	if (out == NULL) {
		http_reply_error(r, 503, "out_of_memory", "The server is out of memory.");
		return;
	}
	metrics_render(r->thr, out);
	http_reply_buffer(r, 200, "text/plain; version=0.0.4", out);
}

static const struct http_route builtin_routes[] = {
	{ "/healthz", HTTP_GET, http_healthz, 0 },
	{ "/metrics", HTTP_GET, http_metrics, 0 },
};

/* ---- Dispatch ---- */

static int
http_sane_id(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++)
		if (n >= 63 || !(isalnum((unsigned char)s[n]) || strchr("._-", s[n]) != NULL))
			return 0;
	return n > 0;
}

/* Headers that must appear at most once: with two, one part of a system could read the first and
 * another the last (credentials or client facts smuggled past a check). Returns the repeated
 * name, or NULL. */
static const char *
http_repeated_header(struct http_req *r)
{
	static const char *const single[] = { "Authorization", "Cookie", "Content-Type", "Host",
	    "X-Forwarded-Proto", "X-Request-Id" };
	size_t i, k, len;
	int n;

	for (i = 0; i < sizeof(single) / sizeof(single[0]); i++) {
		len = strlen(single[i]);
		n = 0;
		for (k = 0; k < r->nhdrs; k++)
			if (r->hdrs[k].namelen == len &&
			    strncasecmp(r->hdrs[k].name, single[i], len) == 0 && ++n > 1)
				return single[i];
	}
	return NULL;
}

void
http_req_init(struct http_req *r, const char *addr)
{
	static _Thread_local unsigned long seq;
	const struct http_config *cfg = r->thr->srv->hs_cfg;
	const char *xff, *proto, *rid, *last;
	size_t n;
	int trusted;

	snprintf(r->peer, sizeof(r->peer), "%s", addr);
	trusted = http_trusted(cfg, addr);
	if (trusted && (xff = http_header(r, "X-Forwarded-For")) != NULL) {
		/* The rightmost entry is the one our proxy added: the others are the client's word. */
		last = strrchr(xff, ',');
		last = last ? last + 1 : xff;
		last += strspn(last, " \t");
		n = strcspn(last, " \t");
		if (n > 0 && n < sizeof(r->peer)) {
			memcpy(r->peer, last, n);
			r->peer[n] = '\0';
		}
	}
	proto = trusted ? http_header(r, "X-Forwarded-Proto") : NULL;
	r->secure = proto != NULL && strcasecmp(proto, "https") == 0;
	rid = trusted ? http_header(r, "X-Request-Id") : NULL;
	if (rid != NULL && http_sane_id(rid))
		snprintf(r->id, sizeof(r->id), "%s", rid);
	else
		snprintf(r->id, sizeof(r->id), "%s-%d-%lu", r->thr->srv->hs_idprefix, r->thr->index,
		    ++seq);
}

/* The route for the request's path (the target up to '?'), or NULL. */
static const struct http_route *
http_route_find(struct http_req *r)
{
	const struct http_route *routes = r->thr->srv->hs_app->routes;
	const char *q = memchr(r->target, '?', r->targetlen);
	size_t len = q ? (size_t)(q - r->target) : r->targetlen, i;

	for (i = 0; routes[i].path != NULL; i++)
		if (strlen(routes[i].path) == len && memcmp(routes[i].path, r->target, len) == 0)
			return &routes[i];
	if (r->thr->srv->hs_users == NULL)	/* embedded: only the application's routes */
		return NULL;
	for (i = 0; i < sizeof(builtin_routes) / sizeof(builtin_routes[0]); i++)
		if (strlen(builtin_routes[i].path) == len &&
		    memcmp(builtin_routes[i].path, r->target, len) == 0)
			return &builtin_routes[i];
	return NULL;
}

void
http_dispatch(struct http_req *r)
{
	const struct http_app *app = r->thr->srv->hs_app;
	const struct http_route *route;
	const char *name;
	char allow[64], msg[96];
	unsigned allowed;

	if ((name = http_repeated_header(r)) != NULL) {
		snprintf(msg, sizeof(msg), "The %s header may appear only once.", name);
		http_reply_error(r, 400, "bad_request", msg);
		return;
	}
	if ((route = http_route_find(r)) == NULL) {
		http_reply_error(r, 404, "not_found", "There is nothing at this path.");
		return;
	}
	if (route >= app->routes && route < app->routes + HTTP_MAX_ROUTES)
		r->route = route;	/* built-in routes are counted as "other" */
	allowed = route->methods | ((route->methods & HTTP_GET) ? HTTP_HEAD : 0);
	if ((r->method & allowed) == 0) {
		snprintf(allow, sizeof(allow), "%s%s%s",
		    (route->methods & HTTP_GET) ? "GET, HEAD" : "",
		    (route->methods & HTTP_GET) && (route->methods & HTTP_POST) ? ", " : "",
		    (route->methods & HTTP_POST) ? "POST" : "");
		http_add_header(r, "Allow", allow);
		http_reply_error(r, 405, "method_not_allowed", "This method is not allowed here.");
		return;
	}
	route->fn(r);
}
