/*
 * Verifies one jwt_server-like HS256 token N times (argv[1], default 1000), or with argv[2]
 * "fresh" N tokens that differ in their jti, each once (no cache hit), for
 * scripts/bench_jwt.sh, which counts the instructions spent inside jwt_verify() with callgrind:
 * a deterministic measure of the hot path that a busy machine does not disturb.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jwt.h"

int
main(int argc, char **argv)
{
	static const char secret[] = "bench-secret-bench-secret-bench-secret!";
	struct jwt_verifier *v;
	struct jwt_key *k;
	enum jwt_reason why;
	json_t *claims, *got;
	time_t now = time(NULL);
	long i, n = argc > 1 ? atol(argv[1]) : 1000, ntoks;
	int fresh = argc > 2 && strcmp(argv[2], "fresh") == 0;
	char **toks, jti[48];

	if ((v = jwt_verifier_new()) == NULL ||
	    (k = jwt_key_from_secret(secret, sizeof(secret) - 1, NULL, 0)) == NULL ||
	    jwt_verifier_add_key(v, k) == -1)
		return 1;
	jwt_verifier_set_issuer(v, JWT_DEFAULT_ISSUER);
	jwt_verifier_set_audience(v, JWT_DEFAULT_ISSUER);
	ntoks = fresh ? n : 1;
	if (n < 1 || (toks = calloc((size_t)ntoks, sizeof(*toks))) == NULL)
		return 1;
	/* Signed before the loop: only jwt_verify() is counted. */
	for (i = 0; i < ntoks; i++) {
		snprintf(jti, sizeof(jti), "q8n2Yc0mJxvS3b1Q%06ld", i);
		claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "sub", "alice",
		    "name", "Alice Example", "role", "admin", "iss", JWT_DEFAULT_ISSUER,
		    "aud", JWT_DEFAULT_ISSUER, "iat", (json_int_t)now, "exp", (json_int_t)now + 900,
		    "jti", jti);
		if (claims == NULL || (toks[i] = jwt_sign(k, claims)) == NULL)
			return 1;
		json_decref(claims);
	}
	for (i = 0; i < n; i++) {
		if (jwt_verify(v, toks[i % ntoks], strlen(toks[i % ntoks]), now, &why, &got) == -1 ||
		    why != JWT_VALID)
			return 1;
		json_decref(got);
	}
	printf("%ld verifications of %s %zu-byte token%s\n", n, fresh ? "distinct" : "one",
	    strlen(toks[0]), fresh ? "s" : "");
	for (i = 0; i < ntoks; i++)
		free(toks[i]);
	free(toks);
	jwt_verifier_free(v);
	return 0;
}
