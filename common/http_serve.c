/*
 * Start and stop of the login servers (see http_serve() in http.h): the users, the password
 * workers, one listening socket shared by the loop threads (which deal what they accept
 * round-robin, see conn_accept()), and the graceful stop on SIGTERM.
 */
#include "http_int.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <event2/thread.h>
#include <openssl/rand.h>

#include "cli.h"
#include "log.h"
#include "sock.h"

#define HTTP_STOP_WAIT_S	5

static void *
http_thread_main(void *arg)
{
	struct http_thread *t = arg;

	event_base_dispatch(t->base);
	return NULL;
}

/* Runs on the thread's own loop: stop accepting, then wait for the requests in flight. */
static void
http_stop_begin(evutil_socket_t fd, short what, void *arg)
{
	conn_engine_stop(arg, HTTP_STOP_WAIT_S);
}

/* Makes thread t's loop and engine (accepting on a dup of lfd), and lets the application set
 * up its state. */
static int
http_thread_setup(struct http_server *srv, struct http_thread *t, int lfd)
{
	int fd;

	t->srv = srv;
	if ((t->base = event_base_new()) == NULL) {
		log_warnx("cannot make an event loop");
		return -1;
	}
	if ((fd = fcntl(lfd, F_DUPFD_CLOEXEC, 0)) == -1 || conn_engine_init(t, fd) == -1) {
		log_warn("cannot set up the connection engine");
		return -1;
	}
	if (srv->hs_app->thread_init != NULL && srv->hs_app->thread_init(t) == -1)
		return -1;
	return 0;
}

/* Frees what http_thread_setup made, after the thread's loop has ended. */
static void
http_thread_teardown(struct http_server *srv, struct http_thread *t, int inited)
{
	if (t->base == NULL)
		return;
	/* Results handed back by the workers after the loop stopped: answer them now. */
	event_base_loop(t->base, EVLOOP_NONBLOCK);
	if (inited && srv->hs_app->thread_fini != NULL)
		srv->hs_app->thread_fini(t);
	conn_engine_free(t);
	event_base_free(t->base);
}

int
http_serve(const struct http_config *cfg, const struct http_app *app)
{
	static struct http_server srv;
	static const struct timeval now = { 0, 0 };
	unsigned char rnd[4];
	char err[512];
	sigset_t stopset;
	pthread_t *tids = NULL;
	int i, sig, lfd = -1, ready = 0, started = 0, rc = 1;

	log_init(cli_prog, cfg->debug);
	srv.hs_cfg = cfg;
	srv.hs_app = app;
	srv.hs_started = time(NULL);
	signal(SIGPIPE, SIG_IGN);
	sock_raise_nofile();
	if (evthread_use_pthreads() == -1) {
		log_warnx("libevent has no thread support");
		return 1;
	}
	for (i = 0; app->routes[i].path != NULL; i++)
		if (i >= HTTP_MAX_ROUTES) {
			log_warnx("too many routes");
			return 1;
		}
	metrics_routes(app->routes);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	snprintf(srv.hs_idprefix, sizeof(srv.hs_idprefix), "%02x%02x%02x%02x", rnd[0], rnd[1],
	    rnd[2], rnd[3]);

	/* Start-up errors are fatal (log.h): the line says so, not "warning". */
	if ((srv.hs_users = users_load(cfg->users_path, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if (users_mixed_costs(srv.hs_users, cfg->users_path, err, sizeof(err)))
		log_warnx("%s", err);
	/* One socket for all threads: a second process on this address fails here. */
	if ((lfd = sock_listen(cfg->host, cfg->port)) == -1)
		fatal("cannot listen on %s:%u", cfg->host, cfg->port);
	/* Only this thread takes the stop signals; the loop and worker threads
	 * inherit the mask (a worker that did not would die of a SIGTERM sent before sigwait). */
	sigemptyset(&stopset);
	sigaddset(&stopset, SIGTERM);
	sigaddset(&stopset, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stopset, NULL);
	if ((srv.hs_pool = pool_new(cfg->workers)) == NULL ||
	    (srv.hs_threads = calloc((size_t)cfg->threads, sizeof(*srv.hs_threads))) == NULL ||
	    (tids = calloc((size_t)cfg->threads, sizeof(*tids))) == NULL) {
		log_warnx("cannot start the worker threads");
		goto done;
	}
	for (ready = 0; ready < cfg->threads; ready++) {
		srv.hs_threads[ready].index = ready;
		if (http_thread_setup(&srv, &srv.hs_threads[ready], lfd) == -1) {
			http_thread_teardown(&srv, &srv.hs_threads[ready], 0);
			goto done;
		}
	}
	close(lfd);
	lfd = -1;
	for (started = 0; started < cfg->threads; started++)
		if (pthread_create(&tids[started], NULL, http_thread_main,
		    &srv.hs_threads[started]) != 0) {
			log_warnx("cannot start thread %d", started);
			break;
		}
	if (started == cfg->threads) {
		log_info("%s listening on %s:%u as %s (%d threads, %zu users)", cli_prog, cfg->host,
		    cfg->port, cfg->id, cfg->threads, users_count(srv.hs_users));
		sigwait(&stopset, &sig);
		log_info("signal %d: stopping (waiting up to %d s for requests in flight)", sig,
		    HTTP_STOP_WAIT_S);
		rc = 0;
	}
done:
	/* First no more hand-overs between threads (conn_accept), then each thread stops. */
	atomic_store(&srv.hs_stopping, 1);
	for (i = 0; i < started; i++)
		event_base_once(srv.hs_threads[i].base, -1, EV_TIMEOUT, http_stop_begin,
		    &srv.hs_threads[i], &now);
	for (i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	pool_free(srv.hs_pool);
	for (i = 0; i < ready; i++)
		http_thread_teardown(&srv, &srv.hs_threads[i], 1);
	free(srv.hs_threads);
	free(tids);
	if (lfd != -1)
		close(lfd);
	users_free(srv.hs_users);
	if (rc == 0)
		log_info("stopped");
	return rc;
}

/* An embedded listener: its own server record around one thread record on the caller's loop. */
struct http_embedded {
	struct http_server	 he_srv;
	struct http_thread	 he_thr;
};

struct http_thread *
http_embed(struct event_base *base, int fd, const struct http_config *cfg,
    const struct http_app *app)
{
	struct http_embedded *em;

	if ((em = calloc(1, sizeof(*em))) == NULL) {
		close(fd);
		return NULL;
	}
	em->he_srv.hs_cfg = cfg;
	em->he_srv.hs_app = app;
	em->he_srv.hs_started = time(NULL);
	snprintf(em->he_srv.hs_idprefix, sizeof(em->he_srv.hs_idprefix), "%s", "embedded");
	em->he_thr.base = base;
	em->he_thr.srv = &em->he_srv;
	if (conn_engine_init(&em->he_thr, fd) == -1) {
		conn_engine_free(&em->he_thr);
		free(em);
		return NULL;
	}
	return &em->he_thr;
}

void
http_embed_free(struct http_thread *t)
{
	if (t == NULL)
		return;
	conn_engine_free(t);
	free((struct http_embedded *)((char *)t - offsetof(struct http_embedded, he_thr)));
}
