/* libFuzzer harness for the users file loader (common/users.c) and the scrypt string parser
 * it relies on (common/passwd.c). users_load() takes a path, so each input is written to an
 * in-memory file reached as /proc/self/fd/N: no disk traffic, nothing left behind. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "passwd.h"
#include "users.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	fuzz_fd = -1;
static char	fuzz_path[64];

/* Replaces the in-memory file's contents with the input. */
static void
fuzz_write(const uint8_t *data, size_t size)
{
	if (fuzz_fd == -1) {
		if ((fuzz_fd = memfd_create("fuzz_users", 0)) == -1)
			abort();
		snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_fd);
	}
	if (ftruncate(fuzz_fd, 0) == -1 ||
	    (size > 0 && pwrite(fuzz_fd, data, size, 0) != (ssize_t)size))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct user *u;
	struct users *set;
	char err[512] = "", *s;

	fuzz_write(data, size);
	if ((set = users_load(fuzz_path, err, sizeof(err))) != NULL) {
		/* Whoever is found must be complete and be the one asked for. */
		if ((u = users_find(set, "alice")) != NULL &&
		    (strcmp(u->username, "alice") != 0 || u->password_hash == NULL ||
		    u->name == NULL || u->email == NULL || u->role == NULL ||
		    passwd_check(u->password_hash) != 0))
			abort();
		if (users_find(set, "") != NULL)
			abort();
		users_free(set);
	} else if (err[0] == '\0') {
		abort();	/* a refusal must say why */
	}

	/* The same bytes as a bare hash string. */
	if ((s = malloc(size + 1)) == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	passwd_check(s);
	free(s);
	return 0;
}
