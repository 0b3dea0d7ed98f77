/* authctl: the administration tool. Adds users to the users file and prints password hashes
 * here; token lives in token.c, keygen in keygen.c. Passwords come from standard input or a
 * terminal prompt, never from argv, where any local user could read them with ps. */
#include "authctl.h"
#include "body.h"
#include "cli.h"
#include "passwd.h"
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#define AUTHCTL_NAME_MAX	64	/* longest username useradd writes */
#define AUTHCTL_LN_MAX		20	/* 2^20 * 8 * 128 bytes = 1 GiB per verification */

static const char authctl_usage[] =
    "usage: authctl COMMAND [FLAGS] [ARGS]\n"
    "\n"
    "commands:\n"
    "  useradd --users FILE [--name N] [--email E] [--role R] [--ln N] USERNAME\n"
    "                      add a user to the users file (created when missing)\n"
    "  hash [--ln N]       print the scrypt hash string of a password\n"
    "  token ...           decode, verify or make JWTs (authctl token --help)\n"
    "  keygen ...          make signing keys (authctl keygen --help)\n"
    "\n"
    "Passwords are read from standard input, or prompted for on a terminal; never from the\n"
    "command line. 'authctl COMMAND --help' describes a command's flags.\n";

static const char authctl_useradd_usage[] =
    "usage: authctl useradd --users FILE [--name N] [--email E] [--role R] [--ln N] USERNAME\n"
    "\n"
    "Adds USERNAME to the users file FILE, creating it (mode 0600) when missing. The file is\n"
    "rewritten atomically. The password is read from standard input (first line), or\n"
    "prompted for twice when standard input is a terminal.\n"
    "\n"
    "  --users FILE   the users file (required)\n"
    "  --name N       full name (default: USERNAME)\n"
    "  --email E      e-mail address (default: empty)\n"
    "  --role R       role (default: user)\n"
    "  --ln N         scrypt cost N = 2^ln, r = 8, p = 1 (default 17, 1 to 20)\n"
    "\n"
    "USERNAME: 1 to 64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit.\n"
    "Exit status: 0 added, 1 failed (user exists, bad file, ...), 2 bad usage.\n";

static const char authctl_hash_usage[] =
    "usage: authctl hash [--ln N]\n"
    "\n"
    "Reads a password from standard input (or a terminal prompt) and prints its hash string,\n"
    "$scrypt$ln=N,r=8,p=1$<salt>$<hash>, as passlib writes it.\n"
    "\n"
    "  --ln N   scrypt cost N = 2^ln (default 17, 1 to 20)\n";

/* The terminal settings to restore if a signal arrives while echo is off. */
static struct termios authctl_tty;
static volatile sig_atomic_t authctl_echo_off;

static void
authctl_restore_tty(int sig)
{
	if (authctl_echo_off)
		tcsetattr(STDIN_FILENO, TCSANOW, &authctl_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Reads one line from standard input into buf (BODY_MAX_FIELD + 2 bytes: room for a CR and
 * the NUL), without the line ending. Returns its length, or -1 after printing why. The servers
 * refuse longer passwords, so we never store one nobody could log in with. */
static int
authctl_read_line(char *buf, size_t size)
{
	size_t n = 0;
	int c;

	while ((c = getc(stdin)) != EOF && c != '\n') {
		if (c == '\0') {
			fprintf(stderr, "%s: the password contains a NUL byte\n", cli_prog);
			return -1;
		}
		if (n == size - 1) {
			fprintf(stderr, "%s: the password is longer than %d bytes\n", cli_prog,
			    BODY_MAX_FIELD);
			return -1;
		}
		buf[n++] = (char)c;
	}
	if (ferror(stdin)) {
		fprintf(stderr, "%s: cannot read the password: %s\n", cli_prog, strerror(errno));
		return -1;
	}
	if (n == 0 && c == EOF) {
		fprintf(stderr, "%s: no password on standard input\n", cli_prog);
		return -1;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	if (n > BODY_MAX_FIELD) {
		fprintf(stderr, "%s: the password is longer than %d bytes\n", cli_prog,
		    BODY_MAX_FIELD);
		return -1;
	}
	if (n == 0) {
		fprintf(stderr, "%s: the password must not be empty\n", cli_prog);
		return -1;
	}
	return (int)n;
}

/* Prompts on the terminal with echo off and reads one line into buf. Returns its length or -1. */
static int
authctl_prompt(const char *prompt, char *buf, size_t size)
{
	struct termios quiet;
	int n;

	if (tcgetattr(STDIN_FILENO, &authctl_tty) == -1) {
		fprintf(stderr, "%s: cannot read the terminal settings: %s\n", cli_prog,
		    strerror(errno));
		return -1;
	}
	quiet = authctl_tty;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	signal(SIGINT, authctl_restore_tty);
	signal(SIGTERM, authctl_restore_tty);
	signal(SIGQUIT, authctl_restore_tty);
	authctl_echo_off = 1;
	/* Echo goes off before the prompt shows, so nothing typed after it is ever echoed. */
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	fprintf(stderr, "%s", prompt);
	n = authctl_read_line(buf, size);
	tcsetattr(STDIN_FILENO, TCSANOW, &authctl_tty);
	authctl_echo_off = 0;
	fputc('\n', stderr);
	return n;
}

/* Gets the password into buf (BODY_MAX_FIELD + 2 bytes): the first line of standard input, or
 * a terminal prompt, twice when confirm is set. Returns its length or -1. */
static int
authctl_password(char *buf, size_t size, const char *who, int confirm)
{
	char prompt[128], again[BODY_MAX_FIELD + 2];
	int n, m;

	if (!isatty(STDIN_FILENO))
		return authctl_read_line(buf, size);
	snprintf(prompt, sizeof(prompt), "Password%s%s: ", who ? " for " : "", who ? who : "");
	if ((n = authctl_prompt(prompt, buf, size)) == -1 || !confirm)
		return n;
	m = authctl_prompt("Again: ", again, sizeof(again));
	if (m != -1 && (m != n || strcmp(again, buf) != 0)) {
		fprintf(stderr, "%s: the passwords differ\n", cli_prog);
		m = -1;
	}
	OPENSSL_cleanse(again, sizeof(again));
	return m == -1 ? -1 : n;
}

/* Usernames we write are plain: no spaces, quotes or controls that would confuse logs,
 * cookies or the credentials file of loadgen ("user:password"). */
static int
authctl_valid_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > AUTHCTL_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || strchr("._-@", c) == NULL))
			return 0;
	}
	return 1;
}

/* Writes root to path atomically: a temp file in the same directory, fsync, rename, fsync of
 * the directory, so readers see the old file or the new one, never half of either.
 * Returns 0, or -1 after printing why. */
static int
authctl_write(const char *path, json_t *root, mode_t mode)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	FILE *fp = NULL;
	int fd = -1, dfd;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp)) {
		fprintf(stderr, "%s: %s: path too long\n", cli_prog, path);
		return -1;
	}
	if ((fd = mkstemp(tmp)) == -1) {
		fprintf(stderr, "%s: cannot create a temporary file next to %s: %s\n", cli_prog,
		    path, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) == -1 || (fp = fdopen(fd, "w")) == NULL)
		goto fail;
	fd = -1;	/* closed with fp from now on */
	if (json_dumpf(root, fp, JSON_INDENT(2)) == -1 || fputc('\n', fp) == EOF ||
	    fflush(fp) == EOF || fsync(fileno(fp)) == -1)
		goto fail;
	if (fclose(fp) == EOF) {
		fp = NULL;
		goto fail;
	}
	fp = NULL;
	if (rename(tmp, path) == -1)
		goto fail;
	/* The rename itself is durable only once the directory is synced. */
	snprintf(dir, sizeof(dir), "%s", path);
	if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY)) != -1) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
 fail:
	fprintf(stderr, "%s: cannot write %s: %s\n", cli_prog, tmp, strerror(errno));
	if (fp != NULL)
		fclose(fp);
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return -1;
}

/* Reads the users file at path for rewriting, after checking it the way the servers will load
 * it. A missing file gives a new empty one with *mode 0600; otherwise *mode is the file's.
 * Returns a new reference, or NULL after printing why. *exists tells whether the user is
 * already in it. */
static json_t *
authctl_load(const char *path, const char *username, mode_t *mode, int *exists)
{
	struct users *set;
	struct stat st;
	json_error_t jerr;
	json_t *root;
	char err[512];

	*exists = 0;
	if (stat(path, &st) == -1) {
		if (errno == ENOENT) {
			*mode = 0600;
			return json_pack("{s:[]}", "users");
		}
		fprintf(stderr, "%s: %s: %s\n", cli_prog, path, strerror(errno));
		return NULL;
	}
	*mode = st.st_mode & 0777;
	if ((set = users_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s: %s\n", cli_prog, err);
		return NULL;
	}
	*exists = users_find(set, username) != NULL;
	users_free(set);
	if ((root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		fprintf(stderr, "%s: %s: %s\n", cli_prog, path, jerr.text);
	return root;
}

static int
authctl_useradd(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "users", required_argument, NULL, 'u' },
		{ "name", required_argument, NULL, 'n' },
		{ "email", required_argument, NULL, 'e' },
		{ "role", required_argument, NULL, 'r' },
		{ "ln", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = NULL, *username, *name = NULL, *email = "", *role = "user";
	char pw[BODY_MAX_FIELD + 2], hash[PASSWD_MAX], err[1024];
	struct users *set;
	json_t *root = NULL, *entry;
	int c, ln = PASSWD_DEFAULT_LN, pwlen, exists, ret = 1;
	mode_t mode;

	cli_init("authctl useradd", authctl_useradd_usage);
	while ((c = cli_next(argc, argv, opts)) != -1) {
		switch (c) {
		case 'u':
			path = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'e':
			email = optarg;
			break;
		case 'r':
			role = optarg;
			break;
		case 'l':
			ln = (int)cli_num("--ln", optarg, 1, AUTHCTL_LN_MAX);
			break;
		}
	}
	if (path == NULL)
		cli_bad("--users FILE is required");
	if (argc - optind != 1)
		cli_bad("wants exactly one USERNAME after the flags");
	username = argv[optind];
	if (!authctl_valid_name(username))
		cli_bad("USERNAME '%s' must be 1 to %d letters, digits, '.', '_', '-' or '@', "
		    "starting with a letter or digit", username, AUTHCTL_NAME_MAX);
	if (name == NULL)
		name = username;
	if (*role == '\0')
		cli_bad("--role must not be empty");
	/* Jansson refuses strings that are not UTF-8; better now than after the prompt. */
	entry = json_pack("{s:s, s:s, s:s, s:s}", "username", username, "name", name, "email",
	    email, "role", role);
	if (entry == NULL)
		cli_bad("--name, --email and --role must be UTF-8 text");

	if ((root = authctl_load(path, username, &mode, &exists)) == NULL)
		goto fail;
	if (exists) {
		fprintf(stderr, "%s: user '%s' already exists in %s\n", cli_prog, username, path);
		goto fail;
	}
	if ((pwlen = authctl_password(pw, sizeof(pw), username, 1)) == -1)
		goto fail;
	if (passwd_hash(pw, (size_t)pwlen, ln, hash, sizeof(hash)) == -1) {
		fprintf(stderr, "%s: cannot hash the password\n", cli_prog);
		goto fail;
	}
	if (json_object_set_new(entry, "password_hash", json_string(hash)) == -1 ||
	    json_array_append(json_object_get(root, "users"), entry) == -1) {
		fprintf(stderr, "%s: out of memory\n", cli_prog);
		goto fail;
	}
	if (authctl_write(path, root, mode) == -1)
		goto fail;
	fprintf(stderr, "%s: added '%s' to %s\n", cli_prog, username, path);
	/* The servers warn about a file of mixed costs when they start; say it here first. */
	if ((set = users_load(path, err, sizeof(err))) != NULL &&
	    users_mixed_costs(set, path, err, sizeof(err)))
		fprintf(stderr, "%s: warning: %s\n", cli_prog, err);
	users_free(set);
	ret = 0;
 fail:
	OPENSSL_cleanse(pw, sizeof(pw));
	json_decref(entry);
	json_decref(root);
	return ret;
}

static int
authctl_hash(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ln", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 }
	};
	char pw[BODY_MAX_FIELD + 2], hash[PASSWD_MAX];
	int c, ln = PASSWD_DEFAULT_LN, pwlen, ret = 1;

	cli_init("authctl hash", authctl_hash_usage);
	while ((c = cli_next(argc, argv, opts)) != -1)
		if (c == 'l')
			ln = (int)cli_num("--ln", optarg, 1, AUTHCTL_LN_MAX);
	if (optind != argc)
		cli_bad("takes no arguments: the password is read from standard input");
	if ((pwlen = authctl_password(pw, sizeof(pw), NULL, 0)) == -1)
		goto fail;
	if (passwd_hash(pw, (size_t)pwlen, ln, hash, sizeof(hash)) == -1) {
		fprintf(stderr, "%s: cannot hash the password\n", cli_prog);
		goto fail;
	}
	printf("%s\n", hash);
	ret = fflush(stdout) == EOF ? 1 : 0;
 fail:
	OPENSSL_cleanse(pw, sizeof(pw));
	return ret;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char	*name;
		int		(*run)(int, char **);
	} cmds[] = {
		{ "useradd", authctl_useradd },
		{ "hash", authctl_hash },
		{ "token", token_run },
		{ "keygen", keygen_run },
	};
	size_t i;

	/* The subcommands parse their own flags with cli_next(), so the command name is taken
	 * by hand here. */
	cli_init("authctl", authctl_usage);
	if (argc < 2)
		cli_bad("missing COMMAND");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(authctl_usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("authctl %s\n", AUTH_VERSION);
		return 0;
	}
	if (argv[1][0] == '-')
		cli_bad("unknown option %s", argv[1]);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].run(argc - 1, argv + 1);
	cli_bad("unknown command '%s'", argv[1]);
}
