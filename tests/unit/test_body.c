/* Unit tests for common/body.c: strict JSON objects (duplicates, depth, NUL, non-objects,
 * wrong types), HTML forms (escapes, duplicates, junk) and the choice by Content-Type. */
#include "unit.h"
#include "body.h"

/* Parses a C-string JSON body; returns the object or NULL, with *why set. */
static json_t *
js(const char *s, const char **why)
{
	return body_json(s, strlen(s), why);
}

static json_t *
form(const char *s, const char **why)
{
	return body_form(s, strlen(s), why);
}

static void
json_credentials(void)
{
	const char *why = NULL, *u, *p;
	json_t *o;

	o = js("{\"username\": \"alice\", \"password\": \"s3cr\\u00e9t\", \"extra\": [1, {}]}", &why);
	CHECK(o != NULL);
	CHECK_INT(body_credentials(o, &u, &p, &why), 0);
	CHECK_STR(u, "alice");
	CHECK_STR(p, "s3cr\xc3\xa9t");
	json_decref(o);
}

static void
json_duplicates(void)
{
	const char *why = NULL;
	json_t *o;

	CHECK(js("{\"username\": \"a\", \"username\": \"b\"}", &why) == NULL);
	CHECK_STR(why, "the JSON body has a duplicate key");
	why = NULL;
	CHECK(js("{\"x\": {\"k\": 1, \"k\": 2}}", &why) == NULL);
	CHECK_STR(why, "the JSON body has a duplicate key");
	/* The same key in different objects is fine. */
	CHECK((o = js("{\"k\": {\"k\": 1}}", &why)) != NULL);
	json_decref(o);
}

/* A JSON object nested n deep: {"a":{"a":...{}...}} */
static void
nest(char *buf, int n)
{
	int i;

	buf[0] = '\0';
	for (i = 0; i < n - 1; i++)
		strcat(buf, "{\"a\":");
	strcat(buf, "{}");
	for (i = 0; i < n - 1; i++)
		strcat(buf, "}");
}

static void
json_depth(void)
{
	const char *why = NULL;
	char buf[1024];
	json_t *o;

	nest(buf, BODY_MAX_DEPTH);
	CHECK((o = js(buf, &why)) != NULL);
	json_decref(o);
	nest(buf, BODY_MAX_DEPTH + 1);
	CHECK(js(buf, &why) == NULL);
	CHECK_STR(why, "the JSON body is nested too deeply");
	CHECK(js("{\"a\": [[[[[[[[[[[[1]]]]]]]]]]]]}", &why) == NULL);
	/* Brackets inside strings, even after escaped quotes, are not nesting. */
	CHECK((o = js("{\"a\": \"[[[[[[[[[[{{{{{{{{{{\"}", &why)) != NULL);
	json_decref(o);
	CHECK((o = js("{\"a\": \"\\\"[[[[[[[[[[[[\\\\\"}", &why)) != NULL);
	json_decref(o);
	/* An escaped backslash ends the escape: the brackets after the string do count. */
	CHECK(js("{\"a\": \"\\\\\", \"b\": [[[[[[[[[1]]]]]]]]]}", &why) == NULL);
	CHECK_STR(why, "the JSON body is nested too deeply");
	/* A very deep body is refused without a deep recursion. */
	{
		static char deep[200001];

		memset(deep, '[', sizeof(deep) - 1);
		CHECK(js(deep, &why) == NULL);
	}
}

static void
json_nul(void)
{
	const char *why = NULL;
	static const char raw[] = "{\"username\": \"a\0b\", \"password\": \"x\"}";

	CHECK(body_json(raw, sizeof(raw) - 1, &why) == NULL);
	CHECK_STR(why, "the body contains a NUL byte");
	CHECK(js("{\"username\": \"a\\u0000b\", \"password\": \"x\"}", &why) == NULL);
	CHECK(js("{\"a\\u0000\": 1}", &why) == NULL);
}

static void
json_not_object(void)
{
	static const char *bad[] = { "[]", "[{\"username\": \"a\"}]", "\"alice\"", "1", "null",
	    "true" };
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		CHECK(js(bad[i], &why) == NULL);
		CHECK_STR(why, "the JSON body must be an object");
	}
}

static void
json_invalid(void)
{
	static const char *bad[] = { "", "{", "{}}", "{} {}", "{}x", "{'a': 1}", "{\"a\": 1,}",
	    "{\"a\" 1}", "{\"a\": \"\xff\"}", "{\"a\": \"\\ud800\"}", "{\"a\": tru}" };
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		CHECK(js(bad[i], &why) == NULL);
		CHECK(why != NULL);
	}
}

static void
credentials_wrong_types(void)
{
	static const struct {
		const char	*body;
		const char	*why;
	} t[] = {
		{ "{\"password\": \"x\"}", "username is missing" },
		{ "{\"username\": \"a\"}", "password is missing" },
		{ "{\"username\": 1, \"password\": \"x\"}", "username must be a string" },
		{ "{\"username\": null, \"password\": \"x\"}", "username must be a string" },
		{ "{\"username\": \"a\", \"password\": [\"x\"]}", "password must be a string" },
		{ "{\"username\": \"a\", \"password\": {}}", "password must be a string" },
		{ "{\"username\": \"a\", \"password\": true}", "password must be a string" },
		{ "{\"username\": \"\", \"password\": \"x\"}", "username must be 1 to 256 bytes long" },
		{ "{\"username\": \"a\", \"password\": \"\"}", "password must be 1 to 256 bytes long" },
	};
	const char *why, *u, *p;
	json_t *o;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		why = NULL;
		CHECK((o = js(t[i].body, &why)) != NULL);
		CHECK_INT(body_credentials(o, &u, &p, &why), -1);
		CHECK_STR(why, t[i].why);
		json_decref(o);
	}
	CHECK_INT(body_credentials(NULL, &u, &p, &why), -1);
}

static void
credentials_length_limit(void)
{
	char body[BODY_MAX_FIELD + 64];
	const char *why = NULL, *u, *p;
	json_t *o;
	int n;

	n = snprintf(body, sizeof(body), "{\"username\": \"a\", \"password\": \"%0*d\"}",
	    BODY_MAX_FIELD, 0);
	CHECK((o = body_json(body, (size_t)n, &why)) != NULL);
	CHECK_INT(body_credentials(o, &u, &p, &why), 0);
	CHECK_INT(strlen(p), BODY_MAX_FIELD);
	json_decref(o);
	n = snprintf(body, sizeof(body), "{\"username\": \"%0*d\", \"password\": \"x\"}",
	    BODY_MAX_FIELD + 1, 0);
	CHECK((o = body_json(body, (size_t)n, &why)) != NULL);
	CHECK_INT(body_credentials(o, &u, &p, &why), -1);
	CHECK_STR(why, "username must be 1 to 256 bytes long");
	json_decref(o);
}

static void
form_decoding(void)
{
	const char *why = NULL, *u, *p;
	json_t *o;

	CHECK((o = form("username=alice&password=p%40ss+w%C3%A9rd%2B", &why)) != NULL);
	CHECK_INT(body_credentials(o, &u, &p, &why), 0);
	CHECK_STR(u, "alice");
	CHECK_STR(p, "p@ss w\xc3\xa9rd+");
	json_decref(o);
	/* Keys are decoded too; a key without '=' has an empty value. */
	CHECK((o = form("user%6Eame=bob&flag", &why)) != NULL);
	CHECK_STR(json_string_value(json_object_get(o, "username")), "bob");
	CHECK_STR(json_string_value(json_object_get(o, "flag")), "");
	json_decref(o);
	/* An empty form is an empty object, whose credentials are missing. */
	CHECK((o = form("", &why)) != NULL);
	CHECK_INT(json_object_size(o), 0);
	CHECK_INT(body_credentials(o, &u, &p, &why), -1);
	CHECK_STR(why, "username is missing");
	json_decref(o);
}

static void
form_rejects(void)
{
	static const struct {
		const char	*body;
		const char	*why;
	} t[] = {
		{ "username=a&username=b", "the form body has a duplicate key" },
		{ "username=a&user%6eame=b", "the form body has a duplicate key" },
		{ "a=%4", "the form body has a truncated %-escape" },
		{ "a=%", "the form body has a truncated %-escape" },
		{ "a=%zz", "the form body has a bad %-escape" },
		{ "a=%4g&b=1", "the form body has a bad %-escape" },
		{ "a=x%00y", "the form body contains a NUL byte" },
		{ "a=x\ty", "the form body contains a control character" },
		{ "a=x\ny", "the form body contains a control character" },
		{ "a=1&&b=2", "the form body has an empty field" },
		{ "a=1&", "the form body has an empty field" },
		{ "&a=1", "the form body has an empty field" },
		{ "=x", "the form body has a field without a name" },
		{ "a=%ff", "the form body is not valid UTF-8" },
		{ "%c3=1", "the form body is not valid UTF-8" },
	};
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		why = NULL;
		CHECK(form(t[i].body, &why) == NULL);
		CHECK_STR(why, t[i].why);
	}
	why = NULL;
	CHECK(body_form("a=b\0c", 5, &why) == NULL);
	CHECK_STR(why, "the form body contains a control character");
}

static void
parse_by_content_type(void)
{
	static const char jbody[] = "{\"username\": \"a\", \"password\": \"b\"}";
	static const char fbody[] = "username=a&password=b";
	const char *why = NULL;
	int unsup = -1;
	json_t *o;

	CHECK((o = body_parse(NULL, jbody, strlen(jbody), &why, &unsup)) != NULL);
	CHECK_INT(unsup, 0);
	json_decref(o);
	CHECK((o = body_parse("application/json", jbody, strlen(jbody), &why, &unsup)) != NULL);
	json_decref(o);
	CHECK((o = body_parse("Application/JSON; charset=utf-8", jbody, strlen(jbody), &why,
	    &unsup)) != NULL);
	json_decref(o);
	CHECK((o = body_parse("application/x-www-form-urlencoded", fbody, strlen(fbody), &why,
	    &unsup)) != NULL);
	CHECK_STR(json_string_value(json_object_get(o, "password")), "b");
	json_decref(o);
	CHECK((o = body_parse(" application/x-www-form-urlencoded ;charset=UTF-8", fbody,
	    strlen(fbody), &why, &unsup)) != NULL);
	json_decref(o);
	/* A form body sent as JSON is bad JSON, not an unsupported type. */
	CHECK(body_parse("application/json", fbody, strlen(fbody), &why, &unsup) == NULL);
	CHECK_INT(unsup, 0);
	static const char *types[] = { "text/plain", "application/jsonx", "application/js",
	    "multipart/form-data; boundary=x", "", "application/json-patch+json" };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		unsup = 0;
		why = NULL;
		CHECK(body_parse(types[i], jbody, strlen(jbody), &why, &unsup) == NULL);
		CHECK_INT(unsup, 1);
		CHECK(why != NULL);
	}
}

UNIT_MAIN(CASE(json_credentials), CASE(json_duplicates), CASE(json_depth), CASE(json_nul),
    CASE(json_not_object), CASE(json_invalid), CASE(credentials_wrong_types),
    CASE(credentials_length_limit), CASE(form_decoding), CASE(form_rejects),
    CASE(parse_by_content_type))
