/* authctl's private header: the subcommands that live outside main.c. */
#ifndef AUTHCTL_H
#define AUTHCTL_H

/* Each gets argv starting at the subcommand's name ("token", "keygen") and returns the
 * process exit code: 0 on success, 1 when the work failed, 2 for bad usage. */
int authctl_token(int argc, char **argv);	/* token.c */
int authctl_keygen(int argc, char **argv);	/* token.c */

#endif
