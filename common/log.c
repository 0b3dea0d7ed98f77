/* Logging to stderr, one line per event; see log.h. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "auth";
static int log_verbose;

void
log_init(const char *progname, int debug)
{
	log_prog = progname;
	log_verbose = debug;
}

static void log_vemit(const char *, int, const char *, va_list) __attribute__((format(printf, 3, 0)));

/* Formats "<time> <prog>: <level><message>[: <errno text>]\n" and writes it at once. */
static void
log_vemit(const char *level, int err, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s: %s", ts.tv_nsec / 1000000,
	    log_prog, level);
	if (r > 0)
		n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r > 0)
		n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
	if (err && n < sizeof(line) - 1) {
		r = snprintf(line + n, sizeof(line) - n, ": %s", strerror(err));
		if (r > 0)
			n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* A short or failed write of a log line has nowhere better to be reported. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

#define LOG_BODY(level, err) do {		\
	va_list ap;				\
	va_start(ap, fmt);			\
	log_vemit(level, err, fmt, ap);		\
	va_end(ap);				\
} while (0)

void log_warn(const char *fmt, ...) { int e = errno; LOG_BODY("warning: ", e); }
void log_warnx(const char *fmt, ...) { LOG_BODY("warning: ", 0); }
void log_info(const char *fmt, ...) { LOG_BODY("", 0); }

void
log_debug(const char *fmt, ...)
{
	if (log_verbose)
		LOG_BODY("debug: ", 0);
}

void
fatal(const char *fmt, ...)
{
	int e = errno;

	LOG_BODY("fatal: ", e);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY("fatal: ", 0);
	exit(1);
}

static void
log_put(char *out, size_t outsz, size_t *o, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len && *o < outsz - 1; i++)
		out[(*o)++] = (s[i] < 0x21 || s[i] > 0x7e) ? '?' : s[i];
	out[*o] = '\0';
}

/* See log.h. */
void
log_target(const char *t, size_t n, char *out, size_t outsz)
{
	const char *end = t + n, *p = memchr(t, '?', n), *stop, *eq;
	size_t o = 0;

	log_put(out, outsz, &o, t, p != NULL ? (size_t)(p - t) : n);
	for (; p != NULL; p = stop < end ? stop : NULL) {
		if ((stop = memchr(p + 1, '&', (size_t)(end - p - 1))) == NULL)
			stop = end;
		eq = memchr(p + 1, '=', (size_t)(stop - p - 1));
		log_put(out, outsz, &o, p, eq != NULL ? (size_t)(eq + 1 - p) : 1);
		if (stop > (eq != NULL ? eq + 1 : p + 1))
			log_put(out, outsz, &o, "<redacted>", 10);
	}
}
