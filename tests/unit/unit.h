/*
 * A very small unit-test harness. Each test binary lists its cases with UNIT_MAIN(CASE(a), ...):
 *   test_x            runs every case, ends with "N passed, N failed"
 *   test_x --list     prints the case names (pytest runs each as its own item)
 *   test_x NAME       runs one case; exit status 0 when it passed
 * A failed CHECK reports file:line and the case goes on, so one run shows every failure.
 */
#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct unit_case {
	const char	*name;
	void		(*fn)(void);
};

static int unit_failures;

static int
unit_check(int ok, const char *what, const char *file, int line)
{
	if (!ok) {
		fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
		unit_failures++;
	}
	return ok;
}

#define CHECK(cond)	unit_check(!!(cond), #cond, __FILE__, __LINE__)
#define CHECK_INT(a, b) do {						\
	long long a_ = (long long)(a), b_ = (long long)(b);		\
	if (!unit_check(a_ == b_, #a " == " #b, __FILE__, __LINE__))	\
		fprintf(stderr, "    got %lld, want %lld\n", a_, b_);	\
} while (0)
#define CHECK_STR(a, b) do {						\
	const char *a_ = (a), *b_ = (b);				\
	if (!unit_check(a_ != NULL && b_ != NULL && strcmp(a_, b_) == 0,\
	    #a " equals " #b, __FILE__, __LINE__))			\
		fprintf(stderr, "    got \"%s\", want \"%s\"\n",	\
		    a_ ? a_ : "(null)", b_ ? b_ : "(null)");		\
} while (0)
#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

#define CASE(fn)	{ #fn, fn }

static int
unit_run(int argc, char **argv, const struct unit_case *cases, size_t n)
{
	size_t i, passed = 0, failed = 0;
	int before;

	if (argc > 1 && strcmp(argv[1], "--list") == 0) {
		for (i = 0; i < n; i++)
			printf("%s\n", cases[i].name);
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
			continue;
		before = unit_failures;
		cases[i].fn();
		if (unit_failures == before) {
			passed++;
		} else {
			failed++;
			fprintf(stderr, "FAIL %s\n", cases[i].name);
		}
	}
	if (argc > 1 && passed + failed == 0) {
		fprintf(stderr, "no case named %s\n", argv[1]);
		return 2;
	}
	printf("%zu passed, %zu failed\n", passed, failed);
	return failed ? 1 : 0;
}

#define UNIT_MAIN(...)							\
int main(int argc, char **argv)						\
{									\
	static const struct unit_case cases_[] = { __VA_ARGS__ };	\
	return unit_run(argc, argv, cases_, sizeof(cases_) / sizeof(cases_[0])); \
}

#endif
