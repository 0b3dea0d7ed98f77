/*
 * The one table of HTTP status codes every program answers with: the reason phrase (RFC 9110)
 * and the "error" code of the contract's JSON error body.
 */
#ifndef STATUS_H
#define STATUS_H

/* The reason phrase for status ("Content Too Large" for 413), "Error" when unknown. Static. */
const char *status_reason(int status);
/* The JSON error code for an error status ("payload_too_large" for 413), "error" when unknown.
 * Static. */
const char *status_error(int status);

#endif
