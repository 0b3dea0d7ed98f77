/* Command-line handling shared by every program, so that all of them answer --help, --version
 * and bad flags the same way (see SPEC.md "Common to every program"). */
#ifndef CLI_H
#define CLI_H

#include <getopt.h>
#include <stddef.h>

#define AUTH_VERSION "0.1.0"

/* The program's name, as set by cli_init(). */
extern const char *cli_prog;

/* Records the program name (for messages) and the usage text printed by --help. */
void cli_init(const char *prog, const char *usage);

/*
 * Returns the next flag like getopt_long() (the value in opts[i].val, optarg set), or -1 at the
 * end of the flags. Handles --help (usage on stdout, exit 0) and --version (exit 0) itself; an
 * unknown flag or a missing argument prints one line on stderr and exits 2. opts ends with a
 * zeroed entry and must not use the values 'h' or 'V'.
 */
int cli_next(int argc, char *argv[], const struct option *opts);

/* Prints "<prog>: <message>" on stderr and exits 2: for bad flag values. */
void cli_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Parses a decimal integer in [min, max] given to flag; exits 2 with a clear message otherwise. */
long cli_num(const char *flag, const char *s, long min, long max);

/* Splits "HOST:PORT" ("[::1]:8080" for IPv6) into host and port. Returns 0, or -1 if malformed. */
int cli_addr(const char *s, char *host, size_t hostlen, unsigned short *port);

/* Like cli_addr() but exits 2 naming the flag when the address is malformed. */
void cli_addr_or_die(const char *flag, const char *s, char *host, size_t hostlen,
    unsigned short *port);

#endif
