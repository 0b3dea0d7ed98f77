/* Listening sockets and descriptor limits for every server program. */
#ifndef SOCK_H
#define SOCK_H

/*
 * A non-blocking listening TCP socket on host:port, owned by the caller. Without SO_REUSEPORT:
 * an address another process listens on is refused (EADDRINUSE), never shared; threads of one
 * process share the one socket instead. Returns -1 with errno set on failure.
 */
int sock_listen(const char *host, unsigned short port);
/* Lets the process use as many descriptors as it is allowed: each client costs one. */
void sock_raise_nofile(void);

#endif
