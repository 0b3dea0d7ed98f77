/* authctl token and keygen: decode and verify JWTs, make signing keys. (Being written.) */
#include <stdio.h>

int authctl_token(int argc, char **argv);
int authctl_keygen(int argc, char **argv);

int
authctl_token(int argc, char **argv)
{
	fprintf(stderr, "authctl token: not built yet\n");
	return 2;
}

int
authctl_keygen(int argc, char **argv)
{
	fprintf(stderr, "authctl keygen: not built yet\n");
	return 2;
}
