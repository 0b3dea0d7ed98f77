/*
 * The front half of POST /login that both login servers share: a cross-site check, the
 * credentials from a JSON or form body, and the password check on a worker thread.
 */
#include "http_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "body.h"

struct login_job {
	struct http_req	*lj_req;
	json_t		*lj_body;
	const char	*lj_username;	/* point into lj_body */
	const char	*lj_password;
	const struct user *lj_user;
	void		(*lj_ok)(struct http_req *, const struct user *);
};

static void
login_work(void *arg)
{
	struct login_job *job = arg;

	job->lj_user = users_authenticate(job->lj_req->thr->srv->hs_users, job->lj_username,
	    job->lj_password);
}

static void
login_done(void *arg)
{
	struct login_job *job = arg;
	struct http_req *r = job->lj_req;

	if (job->lj_user != NULL) {
		job->lj_ok(r, job->lj_user);
	} else {
		http_auth_failure(r, "invalid_credentials");
		http_reply_error(r, 401, "invalid_credentials", "Wrong username or password.");
	}
	json_decref(job->lj_body);
	free(job);
}

/*
 * Login CSRF: a page on another site can make a visitor's browser POST a form to /login with the
 * attacker's own username and password. The browser then holds a session (or token cookie) of
 * the attacker's account, and whatever the visitor does next (a search, a saved card, a message)
 * lands in an account the attacker can read. SameSite cookies do not help: the visitor has no
 * cookie yet, and a form POST needs none. Browsers tell where a request comes from: Sec-Fetch-Site
 * (same-origin, same-site, cross-site, or none for a typed URL) and Origin (scheme://host[:port]
 * of the page). A login is refused when either says another origin; clients that send neither
 * (curl, loadgen, scripts) are not browsers and cannot be driven by another site.
 * Returns 1 when the request comes from another origin.
 */
static int
login_cross_site(struct http_req *r)
{
	const char *site = http_header(r, "Sec-Fetch-Site");
	const char *origin = http_header(r, "Origin");
	const char *host = http_header(r, "Host");
	const char *p;

	if (site != NULL && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
		return 1;
	if (origin == NULL)
		return 0;
	/* "null" (a sandboxed or file page) and every scheme but ours are foreign. */
	if (strncmp(origin, "https://", 8) == 0)
		p = origin + 8;
	else if (strncmp(origin, "http://", 7) == 0)
		p = origin + 7;
	else
		return 1;
	return host == NULL || strcasecmp(p, host) != 0;
}

void
http_login(struct http_req *r, void (*ok)(struct http_req *, const struct user *))
{
	struct login_job *job;
	const char *buf, *why;
	size_t len;
	int unsupported = 0;

	if (login_cross_site(r)) {
		http_auth_failure(r, "cross_site_login");
		http_reply_error(r, 403, "cross_site_login",
		    "A login from a page of another site is refused (login CSRF).");
		return;
	}
	buf = http_body(r, &len);
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		http_reply_error(r, 503, "busy", "The server is out of memory; try again.");
		return;
	}
	job->lj_req = r;
	job->lj_ok = ok;
	job->lj_body = body_parse(http_header(r, "Content-Type"), buf ? buf : "", len, &why,
	    &unsupported);
	if (job->lj_body == NULL) {
		http_reply_error(r, unsupported ? 415 : 400,
		    unsupported ? "unsupported_media_type" : "bad_request", why);
		goto done;
	}
	if (body_credentials(job->lj_body, &job->lj_username, &job->lj_password, &why) == -1) {
		http_reply_error(r, 400, "bad_request", why);
		goto done;
	}
	if (http_offload(r, login_work, login_done, job) == -1) {
		http_reply_error(r, 503, "busy", "Too many logins in progress; try again shortly.");
		goto done;
	}
	return;
done:
	json_decref(job->lj_body);
	free(job);
}

