/* Worker threads for slow work (password hashing); see pool.h. */
#include "pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"

struct pool_job {
	void			(*pj_work)(void *);
	void			(*pj_done)(void *);
	void			*pj_arg;
	struct event_base	*pj_base;
	struct pool_job		*pj_next;
};

struct pool {
	pthread_mutex_t	 pl_mu;
	pthread_cond_t	 pl_cv;
	struct pool_job	*pl_head;
	struct pool_job	*pl_tail;
	int		 pl_queued;
	int		 pl_stopping;
	int		 pl_n;
	pthread_t	*pl_threads;
};

/* Runs on the submitting loop: hands the result back and frees the job. */
static void
pool_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct pool_job *job = arg;

	job->pj_done(job->pj_arg);
	free(job);
}

static void *
pool_worker(void *arg)
{
	static const struct timeval now = { 0, 0 };
	struct pool *p = arg;
	struct pool_job *job;

	/* Hashing is slow on purpose; at a lower priority it cannot starve the event loops of CPU
	 * on a small machine (Linux applies nice values per thread). */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), 10) == -1)
		log_warn("%s: setpriority", __func__);

	for (;;) {
		pthread_mutex_lock(&p->pl_mu);
		while (p->pl_head == NULL && !p->pl_stopping)
			pthread_cond_wait(&p->pl_cv, &p->pl_mu);
		job = p->pl_head;
		if (job == NULL) {	/* stopping and nothing left */
			pthread_mutex_unlock(&p->pl_mu);
			return NULL;
		}
		p->pl_head = job->pj_next;
		if (p->pl_head == NULL)
			p->pl_tail = NULL;
		p->pl_queued--;
		pthread_mutex_unlock(&p->pl_mu);

		job->pj_work(job->pj_arg);
		if (event_base_once(job->pj_base, -1, EV_TIMEOUT, pool_deliver, job, &now) == -1) {
			/* Only on allocation failure; the waiting request then times out. */
			log_warnx("%s: cannot hand a result back to its loop", __func__);
			free(job);
		}
	}
}

struct pool *
pool_new(int n)
{
	struct pool *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if ((p->pl_threads = calloc((size_t)n, sizeof(pthread_t))) == NULL) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->pl_mu, NULL);
	pthread_cond_init(&p->pl_cv, NULL);
	for (p->pl_n = 0; p->pl_n < n; p->pl_n++) {
		if (pthread_create(&p->pl_threads[p->pl_n], NULL, pool_worker, p) != 0) {
			pool_free(p);
			return NULL;
		}
	}
	return p;
}

int
pool_submit(struct pool *p, struct event_base *base, void (*work)(void *),
    void (*done)(void *), void *arg)
{
	struct pool_job *job;

	if ((job = calloc(1, sizeof(*job))) == NULL)
		return -1;
	job->pj_work = work;
	job->pj_done = done;
	job->pj_arg = arg;
	job->pj_base = base;
	pthread_mutex_lock(&p->pl_mu);
	if (p->pl_queued >= POOL_MAX_QUEUED || p->pl_stopping) {
		pthread_mutex_unlock(&p->pl_mu);
		free(job);
		return -1;
	}
	if (p->pl_tail != NULL)
		p->pl_tail->pj_next = job;
	else
		p->pl_head = job;
	p->pl_tail = job;
	p->pl_queued++;
	pthread_cond_signal(&p->pl_cv);
	pthread_mutex_unlock(&p->pl_mu);
	return 0;
}

void
pool_free(struct pool *p)
{
	int i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->pl_mu);
	p->pl_stopping = 1;
	pthread_cond_broadcast(&p->pl_cv);
	pthread_mutex_unlock(&p->pl_mu);
	for (i = 0; i < p->pl_n; i++)
		pthread_join(p->pl_threads[i], NULL);
	pthread_mutex_destroy(&p->pl_mu);
	pthread_cond_destroy(&p->pl_cv);
	free(p->pl_threads);
	free(p);
}
