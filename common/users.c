/* The users file (SPEC.md "Users file"): loaded once at start-up, validated entry by entry so
 * a mistake is reported with the file and the entry instead of surfacing as failed logins,
 * then read-only, which makes look-ups safe from any thread. */
#include "users.h"
#include "base64.h"
#include "passwd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/rand.h>

#define USERS_NAME_MAX	256	/* the longest username a login body can carry */

struct users {
	struct user	*u_list;	/* sorted by username for bsearch */
	size_t		 u_count;
	/* A hash nobody's password matches, with the cost of the most expensive hash in the
	 * file: an unknown name then costs what the slowest wrong password costs. */
	char		 u_dummy[PASSWD_MAX];
	struct passwd_cost u_dummy_cost;
};

static void __attribute__((format(printf, 3, 4)))
users_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
users_cmp(const void *a, const void *b)
{
	return strcmp(((const struct user *)a)->username, ((const struct user *)b)->username);
}

/* Copies the string member field of entry into *out (a new string, freed by users_free).
 * Empty strings are refused when nonempty is set. Returns 0, or -1 with err set. */
static int
users_field(json_t *entry, const char *field, int nonempty, char **out, const char *path,
    size_t i, const char *who, char *err, size_t errlen)
{
	json_t *v = json_object_get(entry, field);

	if (v == NULL) {
		users_err(err, errlen, "%s: users[%zu]%s: \"%s\" is missing", path, i, who, field);
		return -1;
	}
	if (!json_is_string(v)) {
		users_err(err, errlen, "%s: users[%zu]%s: \"%s\" must be a string", path, i, who,
		    field);
		return -1;
	}
	if (nonempty && json_string_length(v) == 0) {
		users_err(err, errlen, "%s: users[%zu]%s: \"%s\" must not be empty", path, i, who,
		    field);
		return -1;
	}
	if ((*out = strdup(json_string_value(v))) == NULL) {
		users_err(err, errlen, "%s: out of memory", path);
		return -1;
	}
	return 0;
}

/* Reads entry i of the users array into u. Returns 0, or -1 with err naming the entry. */
static int
users_entry(json_t *entry, size_t i, struct user *u, const char *path, char *err,
    size_t errlen)
{
	char who[USERS_NAME_MAX + 8] = "";
	struct passwd_cost c;

	if (!json_is_object(entry)) {
		users_err(err, errlen, "%s: users[%zu] must be an object", path, i);
		return -1;
	}
	if (users_field(entry, "username", 1, &u->username, path, i, "", err, errlen) == -1)
		return -1;
	if (strlen(u->username) > USERS_NAME_MAX) {
		users_err(err, errlen, "%s: users[%zu]: \"username\" is longer than %d bytes",
		    path, i, USERS_NAME_MAX);
		return -1;
	}
	snprintf(who, sizeof(who), " (%s)", u->username);
	if (users_field(entry, "name", 0, &u->name, path, i, who, err, errlen) == -1 ||
	    users_field(entry, "email", 0, &u->email, path, i, who, err, errlen) == -1 ||
	    users_field(entry, "role", 1, &u->role, path, i, who, err, errlen) == -1 ||
	    users_field(entry, "password_hash", 1, &u->password_hash, path, i, who, err,
	    errlen) == -1)
		return -1;
	if (passwd_cost(u->password_hash, &c) == -1) {
		users_err(err, errlen, "%s: users[%zu]%s: \"password_hash\" is not a valid "
		    "$scrypt$ln=..,r=..,p=..$salt$hash string", path, i, who);
		return -1;
	}
	if (passwd_check(u->password_hash) == -1) {
		users_err(err, errlen, "%s: users[%zu]%s: \"password_hash\" costs too much: "
		    "ln=%d,r=%u,p=%u is N*r*p = %llu, the limit is %llu (ln=20,r=8,p=1); hash the "
		    "password again with authctl", path, i, who, c.ln, c.r, c.p,
		    (unsigned long long)passwd_work(&c), (unsigned long long)PASSWD_MAX_WORK);
		return -1;
	}
	return 0;
}

/* The user whose hash costs the most (the first of them on a tie), or NULL when there are no
 * users. Every hash has been checked by users_entry. */
static const struct user *
users_costliest(const struct users *set, struct passwd_cost *cost)
{
	const struct user *best = NULL;
	struct passwd_cost c;
	size_t i;

	for (i = 0; i < set->u_count; i++)
		if (passwd_cost(set->u_list[i].password_hash, &c) == 0 &&
		    (best == NULL || passwd_work(&c) > passwd_work(cost))) {
			best = &set->u_list[i];
			*cost = c;
		}
	return best;
}

/* Builds the dummy hash with the cost of the most expensive hash (the default cost when there
 * are no users). The most common cost would not do: with the demo users at ln=14 and one added
 * at ln=17, a wrong password for that one took 8 times as long as an unknown name, which
 * tells that the name exists. Its salt and hash are random: no password can match it.
 * Returns 0 or -1. */
static int
users_dummy(struct users *set)
{
	unsigned char salt[16], hash[32];
	char salt64[32], hash64[48];
	struct passwd_cost c = { PASSWD_DEFAULT_LN, 8, 1 };

	users_costliest(set, &c);
	if (RAND_bytes(salt, sizeof(salt)) != 1 || RAND_bytes(hash, sizeof(hash)) != 1)
		return -1;
	base64_encode(BASE64_STD, salt, sizeof(salt), salt64);
	base64_encode(BASE64_STD, hash, sizeof(hash), hash64);
	snprintf(set->u_dummy, sizeof(set->u_dummy), "$scrypt$ln=%d,r=%u,p=%u$%s$%s", c.ln, c.r,
	    c.p, salt64, hash64);
	set->u_dummy_cost = c;
	return passwd_check(set->u_dummy);
}

int
users_mixed_costs(const struct users *set, const char *path, char *msg, size_t msglen)
{
	const struct user *top;
	struct passwd_cost max, c;
	size_t i, cheaper = 0, first = 0;

	if ((top = users_costliest(set, &max)) == NULL)
		return 0;
	for (i = 0; i < set->u_count; i++)
		if (passwd_cost(set->u_list[i].password_hash, &c) == 0 &&
		    passwd_work(&c) < passwd_work(&max) && cheaper++ == 0)
			first = i;
	if (cheaper == 0)
		return 0;
	passwd_cost(set->u_list[first].password_hash, &c);
	users_err(msg, msglen, "%s: password hashes of different costs: %zu of %zu users (%s: "
	    "ln=%d,r=%u,p=%u, ...) cost less than %s (ln=%d,r=%u,p=%u). Unknown names cost the "
	    "most, so a wrong password for a cheaper user is answered sooner and shows that the "
	    "name exists: hash every password at one cost", path, cheaper, set->u_count,
	    set->u_list[first].username, c.ln, c.r, c.p, top->username, max.ln, max.r, max.p);
	return 1;
}

void
users_unknown_cost(const struct users *set, struct passwd_cost *c)
{
	*c = set->u_dummy_cost;
}

struct users *
users_load(const char *path, char *err, size_t errlen)
{
	struct users *set = NULL;
	json_t *root = NULL, *list, *seen = NULL, *prev;
	json_error_t jerr;
	FILE *fp;
	size_t i;

	if ((fp = fopen(path, "r")) == NULL) {
		users_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
	fclose(fp);
	if (root == NULL) {
		users_err(err, errlen, "%s: line %d, column %d: %s", path, jerr.line, jerr.column,
		    jerr.text);
		goto fail;
	}
	if (!json_is_object(root) || !json_is_array(list = json_object_get(root, "users"))) {
		users_err(err, errlen, "%s: must be an object with a \"users\" array", path);
		goto fail;
	}
	if ((set = calloc(1, sizeof(*set))) == NULL || (seen = json_object()) == NULL ||
	    (set->u_list = calloc(json_array_size(list) + 1, sizeof(struct user))) == NULL) {
		users_err(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	for (i = 0; i < json_array_size(list); i++) {
		/* Counted first so users_free() also frees a half-read entry. */
		set->u_count++;
		if (users_entry(json_array_get(list, i), i, &set->u_list[i], path, err,
		    errlen) == -1)
			goto fail;
		if ((prev = json_object_get(seen, set->u_list[i].username)) != NULL) {
			users_err(err, errlen, "%s: users[%zu]: username \"%s\" is already used "
			    "by users[%lld]", path, i, set->u_list[i].username,
			    (long long)json_integer_value(prev));
			goto fail;
		}
		if (json_object_set_new(seen, set->u_list[i].username,
		    json_integer((json_int_t)i)) == -1) {
			users_err(err, errlen, "%s: out of memory", path);
			goto fail;
		}
	}
	qsort(set->u_list, set->u_count, sizeof(struct user), users_cmp);
	if (users_dummy(set) == -1) {
		users_err(err, errlen, "%s: cannot make the dummy hash for unknown users", path);
		goto fail;
	}
	json_decref(seen);
	json_decref(root);
	return set;
 fail:
	users_free(set);
	json_decref(seen);
	json_decref(root);
	return NULL;
}

void
users_free(struct users *set)
{
	size_t i;

	if (set == NULL)
		return;
	for (i = 0; i < set->u_count; i++) {
		free(set->u_list[i].username);
		free(set->u_list[i].name);
		free(set->u_list[i].email);
		free(set->u_list[i].role);
		free(set->u_list[i].password_hash);
	}
	free(set->u_list);
	free(set);
}

size_t
users_count(const struct users *set)
{
	return set->u_count;
}

const struct user *
users_find(const struct users *set, const char *username)
{
	struct user key = { .username = (char *)username };

	return bsearch(&key, set->u_list, set->u_count, sizeof(struct user), users_cmp);
}

const struct user *
users_authenticate(const struct users *set, const char *username, const char *password)
{
	const struct user *u = users_find(set, username);

	if (u == NULL) {
		passwd_verify(password, strlen(password), set->u_dummy);
		return NULL;
	}
	return passwd_verify(password, strlen(password), u->password_hash) == 1 ? u : NULL;
}
