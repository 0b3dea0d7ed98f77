/* The status-code table shared by the login servers, the balancer and loadgen (see status.h). */
#include "status.h"

#include <stddef.h>

static const struct {
	int		 code;
	const char	*reason;
	const char	*error;
} status_table[] = {
	{ 200, "OK", NULL },
	{ 204, "No Content", NULL },
	{ 400, "Bad Request", "bad_request" },
	{ 401, "Unauthorized", "unauthorized" },
	{ 403, "Forbidden", "forbidden" },
	{ 404, "Not Found", "not_found" },
	{ 405, "Method Not Allowed", "method_not_allowed" },
	{ 408, "Request Timeout", "request_timeout" },
	{ 413, "Content Too Large", "payload_too_large" },
	{ 415, "Unsupported Media Type", "unsupported_media_type" },
	{ 429, "Too Many Requests", "too_many_requests" },
	{ 431, "Request Header Fields Too Large", "request_header_fields_too_large" },
	{ 500, "Internal Server Error", "internal_error" },
	{ 502, "Bad Gateway", "bad_gateway" },
	{ 503, "Service Unavailable", "service_unavailable" },
	{ 504, "Gateway Timeout", "gateway_timeout" },
	{ 505, "HTTP Version Not Supported", "http_version_not_supported" },
};

static size_t
status_find(int status)
{
	size_t i;

	for (i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++)
		if (status_table[i].code == status)
			break;
	return i;
}

const char *
status_reason(int status)
{
	size_t i = status_find(status);

	return i < sizeof(status_table) / sizeof(status_table[0]) ? status_table[i].reason :
	    "Error";
}

const char *
status_error(int status)
{
	size_t i = status_find(status);

	return i < sizeof(status_table) / sizeof(status_table[0]) &&
	    status_table[i].error != NULL ? status_table[i].error : "error";
}
