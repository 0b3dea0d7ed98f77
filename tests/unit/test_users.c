/* Unit tests for common/users.c: a good users file, every kind of broken entry (the message must
 * name the file and the entry), unreadable files, and the timing of unknown users. */
#include "unit.h"
#include "passwd.h"
#include "users.h"

#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

static char dir[] = "/tmp/test_users.XXXXXX";
static char hash4[PASSWD_MAX];	/* "pw" at ln=4 */

static int
rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static void
rm_dir(void)
{
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Makes the temp dir (removed at exit) and the test hash, once. */
static void
init(void)
{
	if (hash4[0] != '\0')
		return;
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	atexit(rm_dir);
	if (passwd_hash("pw", 2, 4, hash4, sizeof(hash4)) == -1)
		exit(1);
}

/* Writes the printf-formatted content into dir/name; returns the path (static buffer). */
static const char *
file(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *
file(const char *name, const char *fmt, ...)
{
	static char path[256];
	va_list ap;
	FILE *fp;

	init();
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fp = fopen(path, "w")) == NULL) {
		perror(path);
		exit(1);
	}
	va_start(ap, fmt);
	vfprintf(fp, fmt, ap);
	va_end(ap);
	fclose(fp);
	return path;
}

/* One user entry as JSON, with the test hash. */
static const char *
entry(const char *username)
{
	static char buf[4][512];
	static int k;

	init();
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "{\"username\": \"%s\", \"name\": \"N\", \"email\": "
	    "\"%s@example.com\", \"role\": \"user\", \"password_hash\": \"%s\"}", username,
	    username, hash4);
	return buf[k];
}

/* Loads path expecting failure; checks the error holds every string in the NULL-ended list. */
static void
load_fails(const char *path, ...)
{
	char err[512] = "";
	const char *want;
	va_list ap;

	CHECK(users_load(path, err, sizeof(err)) == NULL);
	CHECK(strstr(err, path) != NULL);
	va_start(ap, path);
	while ((want = va_arg(ap, const char *)) != NULL)
		if (!CHECK(strstr(err, want) != NULL))
			fprintf(stderr, "    \"%s\" not in: %s\n", want, err);
	va_end(ap);
}

static void
loads_and_finds(void)
{
	const struct user *u;
	struct users *set;
	char err[256] = "";
	const char *path;

	path = file("ok.json", "{\"users\": [%s, %s, %s], \"comment\": \"extra keys are fine\"}",
	    entry("carol"), entry("alice"), entry("bob"));
	set = users_load(path, err, sizeof(err));
	CHECK(set != NULL);
	if (set == NULL) {
		fprintf(stderr, "    %s\n", err);
		return;
	}
	CHECK_INT(users_count(set), 3);
	CHECK((u = users_find(set, "alice")) != NULL);
	CHECK_STR(u->username, "alice");
	CHECK_STR(u->email, "alice@example.com");
	CHECK_STR(u->role, "user");
	CHECK_STR(u->name, "N");
	CHECK_STR(u->password_hash, hash4);
	CHECK(users_find(set, "carol") != NULL);
	CHECK(users_find(set, "bob") != NULL);
	CHECK(users_find(set, "dave") == NULL);
	CHECK(users_find(set, "Alice") == NULL);
	CHECK(users_find(set, "") == NULL);
	CHECK(users_authenticate(set, "bob", "pw") == users_find(set, "bob"));
	CHECK(users_authenticate(set, "bob", "pw2") == NULL);
	CHECK(users_authenticate(set, "bob", "") == NULL);
	CHECK(users_authenticate(set, "dave", "pw") == NULL);
	users_free(set);

	path = file("empty.json", "{\"users\": []}");
	CHECK((set = users_load(path, err, sizeof(err))) != NULL);
	CHECK_INT(users_count(set), 0);
	CHECK(users_authenticate(set, "alice", "pw") == NULL);
	users_free(set);
}

static void
missing_fields(void)
{
	static const char *fields[] = { "name", "email", "role", "password_hash" };
	char e[512];
	size_t i;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		json_t *o = json_loads(entry("bob"), 0, NULL);
		char *s;

		json_object_del(o, fields[i]);
		s = json_dumps(o, 0);
		snprintf(e, sizeof(e), "\"%s\" is missing", fields[i]);
		load_fails(file("missing.json", "{\"users\": [%s, %s]}", entry("alice"), s),
		    "users[1] (bob)", e, NULL);
		free(s);
		json_decref(o);
	}
	load_fails(file("nouser.json", "{\"users\": [{\"name\": \"x\"}]}"), "users[0]",
	    "\"username\" is missing", NULL);
	load_fails(file("nolist.json", "{\"people\": []}"), "\"users\" array", NULL);
}

static void
ill_typed_fields(void)
{
	load_fails(file("t1.json", "{\"users\": [%s, {\"username\": 7}]}", entry("a")), "users[1]",
	    "\"username\" must be a string", NULL);
	load_fails(file("t2.json", "{\"users\": [{\"username\": \"bob\", \"name\": null, \"email\": "
	    "\"\", \"role\": \"user\", \"password_hash\": \"%s\"}]}", hash4), "users[0] (bob)",
	    "\"name\" must be a string", NULL);
	load_fails(file("t3.json", "{\"users\": [{\"username\": \"bob\", \"name\": \"\", \"email\": "
	    "[\"b@x\"], \"role\": \"user\", \"password_hash\": \"%s\"}]}", hash4),
	    "\"email\" must be a string", NULL);
	load_fails(file("t4.json", "{\"users\": [{\"username\": \"bob\", \"name\": \"\", \"email\": "
	    "\"\", \"role\": \"\", \"password_hash\": \"%s\"}]}", hash4), "users[0] (bob)",
	    "\"role\" must not be empty", NULL);
	load_fails(file("t5.json", "{\"users\": [%s, \"carol\"]}", entry("a")), "users[1]",
	    "must be an object", NULL);
	load_fails(file("t6.json", "{\"users\": {\"alice\": %s}}", entry("alice")),
	    "\"users\" array", NULL);
	load_fails(file("t7.json", "[%s]", entry("alice")), "\"users\" array", NULL);
	load_fails(file("t8.json", "{\"users\": [{\"username\": \"\", \"name\": \"\", \"email\": "
	    "\"\", \"role\": \"user\", \"password_hash\": \"%s\"}]}", hash4),
	    "\"username\" must not be empty", NULL);
}

static void
bad_hashes(void)
{
	static const char *bad[] = { "", "pw", "$2b$12$abcdefghijklmnopqrstuv",
	    "$scrypt$ln=4,r=8,p=1$c2FsdHNhbHRzYWx0$", "$scrypt$ln=40,r=8,p=1$x$y" };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		load_fails(file("hash.json", "{\"users\": [%s, {\"username\": \"eve\", \"name\": \"\", "
		    "\"email\": \"\", \"role\": \"user\", \"password_hash\": \"%s\"}]}", entry("a"),
		    bad[i]), "users[1] (eve)", "password_hash", NULL);
}

static void
duplicate_usernames(void)
{
	load_fails(file("dup.json", "{\"users\": [%s, %s, %s]}", entry("alice"), entry("bob"),
	    entry("alice")), "users[2]", "\"alice\"", "users[0]", NULL);
	/* Duplicate keys inside an entry are refused by the JSON parser. */
	load_fails(file("dupkey.json", "{\"users\": [{\"username\": \"a\", \"username\": \"b\"}]}"),
	    "duplicate", NULL);
}

static void
unreadable_or_invalid_file(void)
{
	char path[300];

	init();
	snprintf(path, sizeof(path), "%s/does-not-exist.json", dir);
	load_fails(path, "cannot open", "No such file", NULL);
	load_fails(dir, NULL);	/* a directory opens but does not read */
	load_fails(file("bad.json", "{\"users\": [%s,\n]}", entry("a")), "line 2", NULL);
	load_fails(file("empty.json", "%s", ""), "line", NULL);
	load_fails(file("nul.json", "{\"users\": [{\"username\": \"a\\u0000b\"}]}"), "line 1", NULL);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
sort_times(double *t, int n)
{
	double x;
	int i, j;

	for (i = 1; i < n; i++)
		for (j = i; j > 0 && t[j] < t[j - 1]; j--) {
			x = t[j];
			t[j] = t[j - 1];
			t[j - 1] = x;
		}
}

/* Median wall times of 9 wrong-password authentications of known and of unknown, taken
 * in turns so that the machine's load hits both alike. */
static void
auth_times(const struct users *set, const char *known, const char *unknown, double *tk,
    double *tu)
{
	double k[9], u[9], x;
	int i;

	for (i = 0; i < 9; i++) {
		x = now();
		CHECK(users_authenticate(set, known, "wrong") == NULL);
		k[i] = now() - x;
		x = now();
		CHECK(users_authenticate(set, unknown, "wrong") == NULL);
		u[i] = now() - x;
	}
	sort_times(k, 9);
	sort_times(u, 9);
	*tk = k[4];
	*tu = u[4];
}

/* A users file of five users "a".."e" whose hashes ("pw") have the given costs. */
static struct users *
load_costs(const char *name, const int ln[5])
{
	char h[5][PASSWD_MAX], err[256];
	struct users *set;
	int i;

	for (i = 0; i < 5; i++)
		CHECK_INT(passwd_hash("pw", 2, ln[i], h[i], sizeof(h[i])), 0);
	set = users_load(file(name, "{\"users\": ["
#define U(n) "{\"username\": \"" n "\", \"name\": \"\", \"email\": \"\", \"role\": \"user\", " \
	    "\"password_hash\": \"%s\"}"
	    U("a") "," U("b") "," U("c") "," U("d") "," U("e")
#undef U
	    "]}", h[0], h[1], h[2], h[3], h[4]), err, sizeof(err));
	if (!CHECK(set != NULL))
		fprintf(stderr, "    %s\n", err);
	return set;
}

static void
unknown_user_costs_the_costliest(void)
{
	/* Most hashes are cheap, one is dear (the demo users plus one `authctl useradd`): the
	 * dummy must take the dear one's cost, not the most common one's. */
	static const int mixed[5] = { 4, 6, 4, 4, 4 }, same[5] = { 5, 5, 5, 5, 5 };
	struct passwd_cost c;
	struct users *set;
	char msg[512];

	if ((set = load_costs("mixed.json", mixed)) == NULL)
		return;
	users_unknown_cost(set, &c);
	CHECK_INT(c.ln, 6);
	CHECK_INT(c.r, 8);
	CHECK_INT(c.p, 1);
	CHECK_INT(users_mixed_costs(set, "mixed.json", msg, sizeof(msg)), 1);
	CHECK(strstr(msg, "mixed.json") != NULL && strstr(msg, "4 of 5") != NULL &&
	    strstr(msg, "b (ln=6,r=8,p=1)") != NULL);
	users_free(set);

	if ((set = load_costs("same.json", same)) == NULL)
		return;
	users_unknown_cost(set, &c);
	CHECK_INT(c.ln, 5);
	CHECK_INT(users_mixed_costs(set, "same.json", msg, sizeof(msg)), 0);
	users_free(set);
}

static void
unknown_user_costs_the_same(void)
{
	/* Four users at ln=10, one at ln=12 (scrypt time grows with N: 4 times as long). */
	static const int ln[5] = { 10, 10, 12, 10, 10 };
	struct users *set;
	double known, unknown;

	if ((set = load_costs("cost.json", ln)) == NULL)
		return;
	auth_times(set, "c", "nobody", &known, &unknown);
	fprintf(stderr, "    wrong password at ln=12 %.2f ms, unknown user %.2f ms\n", known * 1e3,
	    unknown * 1e3);
	/* Loose bounds for a busy machine (and a sanitizer build): a dummy of the common ln=10
	 * would be 4 times faster, the default ln=17 32 times slower, and no dummy at all nearly
	 * free. unknown_user_costs_the_costliest checks the dummy's cost itself. */
	CHECK(unknown > known * 0.4 && unknown < known * 2.5);
	users_free(set);
}

static void
too_costly_hash_is_refused(void)
{
	/* ln=20, r=15, p=16: within scrypt's memory cap but 240 times OWASP's work. */
	load_fails(file("dear.json", "{\"users\": [%s, {\"username\": \"eve\", \"name\": \"\", "
	    "\"email\": \"\", \"role\": \"user\", \"password_hash\": \"$scrypt$ln=20,r=15,p=16$"
	    "AAECAwQFBgcICQoLDA0ODw$22tmw7TO8hLX4foyTe+1G4BqDUFxxBmYej5x8fpaxI8\"}]}", entry("a")),
	    "users[1] (eve)", "costs too much", "ln=20,r=15,p=16", NULL);
}

/* Each thread authenticates right and wrong passwords of known and unknown users; the set is
 * shared read-only. Returns the number of wrong answers. */
static void *
auth_worker(void *arg)
{
	const struct users *set = arg;
	long bad = 0;
	int i;

	for (i = 0; i < 20; i++) {
		bad += users_authenticate(set, "alice", "pw") != users_find(set, "alice");
		bad += users_authenticate(set, "bob", "nope") != NULL;
		bad += users_authenticate(set, "zed", "pw") != NULL;
	}
	return (void *)bad;
}

static void
authenticate_from_threads(void)
{
	pthread_t t[4];
	struct users *set;
	char err[256];
	void *bad;
	int i;

	set = users_load(file("threads.json", "{\"users\": [%s, %s]}", entry("alice"),
	    entry("bob")), err, sizeof(err));
	CHECK(set != NULL);
	if (set == NULL)
		return;
	for (i = 0; i < 4; i++)
		CHECK_INT(pthread_create(&t[i], NULL, auth_worker, set), 0);
	for (i = 0; i < 4; i++) {
		CHECK_INT(pthread_join(t[i], &bad), 0);
		CHECK_INT((long)bad, 0);
	}
	users_free(set);
}

UNIT_MAIN(CASE(loads_and_finds), CASE(authenticate_from_threads), CASE(missing_fields), CASE(ill_typed_fields), CASE(bad_hashes),
    CASE(duplicate_usernames), CASE(unreadable_or_invalid_file), CASE(unknown_user_costs_the_same),
    CASE(unknown_user_costs_the_costliest), CASE(too_costly_hash_is_refused))
