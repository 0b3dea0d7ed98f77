/* The users file of the contract: loading, look-up and password verification. */
#ifndef USERS_H
#define USERS_H

#include <stddef.h>

#include "passwd.h"

struct user {
	char	*username;
	char	*name;
	char	*email;
	char	*role;
	char	*password_hash;
};

struct users;

/* Loads and validates path. Returns a new set (free with users_free), or NULL with a message
 * naming the file and the offending entry written into err. */
struct users *users_load(const char *path, char *err, size_t errlen);
void users_free(struct users *);
size_t users_count(const struct users *);
/* The user called username, or NULL. Owned by the set. */
const struct user *users_find(const struct users *, const char *username);
/* Returns the user when password matches, NULL otherwise. An unknown user costs one scrypt of
 * the cost of the file's most expensive hash, so that no wrong password takes longer than an
 * unknown name. Slow: call it on a worker thread. Safe from several threads at once. */
const struct user *users_authenticate(const struct users *, const char *username,
    const char *password);

/* The cost an unknown name pays (see users_authenticate). */
void users_unknown_cost(const struct users *, struct passwd_cost *);

/* When the hashes do not all cost the same, writes a warning naming path and the cheaper
 * users into msg and returns 1 (cheaper users can then be told from unknown names by
 * timing); returns 0 otherwise. Meant to be logged once after users_load. */
int users_mixed_costs(const struct users *, const char *path, char *msg, size_t msglen);

#endif
