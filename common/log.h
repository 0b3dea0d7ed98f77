/* Logging in the OpenBSD log.c manner: one line per event on stderr, written with one write(2)
 * so lines from several threads never interleave. fatal/fatalx are for start-up only. */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>
#include <stddef.h>

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Sets the program name shown on every line and whether log_debug prints. */
void log_init(const char *progname, int debug);
/* log_warn appends ": strerror(errno)"; log_warnx does not. */
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
void fatal(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
void fatalx(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));

/*
 * A request target (n bytes) as an access log shows it, NUL-terminated in out (outsz bytes, cut
 * there): the path, and of a query only the parameter names, so that a token put in a URL
 * (?access_token=, ?refresh_token=) never reaches a log: "/refresh?refresh_token=<redacted>".
 * A parameter without '=' is all value; bytes outside printable ASCII become '?'.
 */
void log_target(const char *t, size_t n, char *out, size_t outsz);

#endif
