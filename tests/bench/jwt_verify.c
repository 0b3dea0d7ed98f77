/*
 * Verifies one jwt_server-like HS256 token N times (argv[1], default 1000), for
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
	long i, n = argc > 1 ? atol(argv[1]) : 1000;
	char *tok;

	if ((v = jwt_verifier_new()) == NULL ||
	    (k = jwt_key_from_secret(secret, sizeof(secret) - 1, NULL, 0)) == NULL ||
	    jwt_verifier_add_key(v, k) == -1)
		return 1;
	jwt_verifier_set_issuer(v, JWT_DEFAULT_ISSUER);
	jwt_verifier_set_audience(v, JWT_DEFAULT_ISSUER);
	claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "sub", "alice",
	    "name", "Alice Example", "role", "admin", "iss", JWT_DEFAULT_ISSUER,
	    "aud", JWT_DEFAULT_ISSUER, "iat", (json_int_t)now, "exp", (json_int_t)now + 900,
	    "jti", "q8n2Yc0mJxvS3b1QeZlF4w");
	if (claims == NULL || (tok = jwt_sign(k, claims)) == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		if (jwt_verify(v, tok, strlen(tok), now, &why, &got) == -1 || why != JWT_VALID)
			return 1;
		json_decref(got);
	}
	printf("%ld verifications of a %zu-byte token\n", n, strlen(tok));
	free(tok);
	json_decref(claims);
	jwt_verifier_free(v);
	return 0;
}
