/* A small pool of worker threads for slow work (password hashing) that must stay off the
 * event loops. Results go back to the submitting loop with event_base_once(), which libevent's
 * pthreads support makes safe from another thread. */
#ifndef POOL_H
#define POOL_H

#include <event2/event.h>

#define POOL_MAX_QUEUED	256

struct pool;

/* Starts n worker threads. Returns NULL on failure. */
struct pool *pool_new(int n);
/* Queues work(arg) for a worker; done(arg) then runs on base's loop. Returns 0, or -1 when
 * POOL_MAX_QUEUED jobs are already waiting. arg stays the caller's. */
int pool_submit(struct pool *, struct event_base *base, void (*work)(void *),
    void (*done)(void *), void *arg);
/* Finishes the queued jobs, joins the threads and frees the pool. */
void pool_free(struct pool *);

#endif
