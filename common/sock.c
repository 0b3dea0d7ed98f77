/* Listening sockets and the descriptor limit (see sock.h). */
#include "sock.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

int
sock_listen(const char *host, unsigned short port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char portstr[8];
	int fd = -1, one = 1, err;

	snprintf(portstr, sizeof(portstr), "%u", port);
	if ((err = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		errno = err == EAI_SYSTEM ? errno : EADDRNOTAVAIL;
		return -1;
	}
	if ((fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	/* SO_REUSEADDR only lets us bind over connections in TIME_WAIT; it never shares a port
	 * with a listening socket of another process (SO_REUSEPORT would). */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 || listen(fd, 1024) == -1)
		goto fail;
	freeaddrinfo(res);
	return fd;
 fail:
	err = errno;
	if (fd != -1)
		close(fd);
	freeaddrinfo(res);
	errno = err;
	return -1;
}

void
sock_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("setrlimit");
	}
}
