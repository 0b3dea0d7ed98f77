/*
 * Path routes: --route /memory/=HOST:PORT,... sends the requests whose path starts with
 * /memory/ to a pool of its own, the way nginx's `location /memory/ { proxy_pass http://pool/; }`
 * does. The prefix is replaced by "/" on the way in, and the pool's cookies get the prefix
 * added to their Path on the way out (nginx's proxy_cookie_path), so two applications that both
 * use a cookie named "sid" can share one origin without overwriting each other's.
 */
#include "lb.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

struct route lb_routes[LB_MAX_ROUTES];
int lb_nroutes = 1;

/* A prefix goes into Set-Cookie headers and JSON unescaped, so only plain path characters. */
static int
route_prefix_ok(const char *p, size_t len)
{
	size_t i;

	if (len < 3 || len > LB_PREFIX_MAX || p[0] != '/' || p[len - 1] != '/')
		return 0;
	for (i = 0; i < len; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~-/",
		    p[i]) == NULL)
			return 0;
	/* Segments that a browser or a backend would normalise away could never match. */
	for (i = 0; i + 1 < len; i++)
		if (p[i] == '/' && (p[i + 1] == '/' ||
		    (p[i + 1] == '.' && (p[i + 2] == '/' || (p[i + 2] == '.' && p[i + 3] == '/')))))
			return 0;
	return 1;
}

void
route_add(const char *spec)
{
	struct route *rt;
	const char *eq, *list;
	char *copy, *item, *save;
	int i;

	if (lb_nroutes == LB_MAX_ROUTES)
		cli_bad("at most %d --route", LB_MAX_ROUTES - 1);
	if ((eq = strchr(spec, '=')) == NULL)
		cli_bad("--route %s: expected PREFIX=[sticky:]HOST:PORT[,HOST:PORT...]", spec);
	if (!route_prefix_ok(spec, (size_t)(eq - spec)))
		cli_bad("--route %s: the prefix must start and end with '/', hold only letters, "
		    "digits and ._~-, and be at most %d characters", spec, LB_PREFIX_MAX);
	for (i = 1; i < lb_nroutes; i++)
		if (lb_routes[i].rt_prefixlen == (size_t)(eq - spec) &&
		    memcmp(lb_routes[i].rt_prefix, spec, (size_t)(eq - spec)) == 0)
			cli_bad("--route %s: the prefix is already routed", spec);
	rt = &lb_routes[lb_nroutes++];
	memcpy(rt->rt_prefix, spec, (size_t)(eq - spec));
	rt->rt_prefixlen = (size_t)(eq - spec);
	list = eq + 1;
	if (strncmp(list, "sticky:", 7) == 0) {
		rt->rt_sticky = 1;
		list += 7;
	}
	if (*list == '\0')
		cli_bad("--route %s: no backend", spec);
	if ((copy = strdup(list)) == NULL)
		cli_bad("out of memory");
	for (item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save))
		backend_add(lb_nroutes - 1, item);
	free(copy);
	if (rt->rt_nbe == 0)
		cli_bad("--route %s: no backend", spec);
}

int
route_match(const char *target, size_t len)
{
	size_t best = 0;
	int i, r = 0;

	for (i = 1; i < lb_nroutes; i++)
		if (lb_routes[i].rt_prefixlen <= len && lb_routes[i].rt_prefixlen > best &&
		    memcmp(lb_routes[i].rt_prefix, target, lb_routes[i].rt_prefixlen) == 0) {
			best = lb_routes[i].rt_prefixlen;
			r = i;
		}
	return r;
}

/* Appends s[0..n) to out[0..size) at *len, counting what does not fit. */
static void
route_put(char *out, size_t size, size_t *len, const char *s, size_t n)
{
	if (*len < size)
		memcpy(out + *len, s, n < size - *len ? n : size - *len);
	*len += n;
}

size_t
route_cookie_path(const struct route *rt, const char *v, size_t len, char *out, size_t size)
{
	size_t from = 0, outlen = 0, i, a, n, e, vs;
	int lastok = 0;

	/* RFC 6265 5.2: attributes follow the first ';'; the last Path wins, and one whose value
	 * does not start with '/' means the default path. Valid ones are rewritten in place. */
	for (i = 0; i < len && v[i] != ';'; i++)
		;
	while (i < len) {
		for (e = i + 1; e < len && v[e] != ';'; e++)
			;
		for (a = i + 1; a < e && (v[a] == ' ' || v[a] == '\t'); a++)
			;
		for (n = a; n < e && v[n] != '=' && v[n] != ' ' && v[n] != '\t'; n++)
			;
		for (vs = n; vs < e && (v[vs] == ' ' || v[vs] == '\t'); vs++)
			;
		/* The name is all that precedes '=', trimmed: "Path x=/" is no Path attribute. */
		if (n - a == 4 && strncasecmp(v + a, "path", 4) == 0 && (vs == e || v[vs] == '=')) {
			lastok = 0;
			if (vs < e) {
				for (vs++; vs < e && (v[vs] == ' ' || v[vs] == '\t'); vs++)
					;
				lastok = vs < e && v[vs] == '/';
			}
			if (lastok) {
				route_put(out, size, &outlen, v + from, vs - from);
				route_put(out, size, &outlen, rt->rt_prefix, rt->rt_prefixlen);
				from = vs + 1;
			}
		}
		i = e;
	}
	route_put(out, size, &outlen, v + from, len - from);
	if (!lastok) {
		route_put(out, size, &outlen, "; Path=", 7);
		route_put(out, size, &outlen, rt->rt_prefix, rt->rt_prefixlen);
	}
	return outlen;
}
