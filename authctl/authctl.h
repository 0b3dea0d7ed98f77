/* authctl's private header: the subcommands that live outside main.c. */
#ifndef AUTHCTL_H
#define AUTHCTL_H

/* Each gets argv starting at the subcommand's name ("token", "keygen") and returns the
 * process exit code: 0 on success, 1 when the work failed, 2 for bad usage. */
int token_run(int argc, char **argv);		/* token.c */
int keygen_run(int argc, char **argv);		/* keygen.c */

#endif
