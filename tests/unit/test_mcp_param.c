// SPDX-License-Identifier: Apache-2.0
/*
 * Mcp-Param-* headers against the body (mcp_param.h): the schemas the proxy learns from
 * tools/list, and each rule of the check, with the values a client sends (plain, or
 * =?base64?...?= built here with OpenSSL's encoder) and the ones a hostile client might.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include "log.h"
#include "mcp_param.h"

static const char *ECHO =
	"[{\"name\":\"echo\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"message\":"
	"{\"type\":\"string\",\"x-mcp-header\":\"Message\"}},\"required\":[\"message\"]}}]";

/* one tool, t, with a header of each type, one of them nested */
static const char *TYPED =
	"[{\"name\":\"t\",\"inputSchema\":{\"type\":\"object\",\"properties\":{"
	"\"s\":{\"type\":\"string\",\"x-mcp-header\":\"S\"},"
	"\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"N\"},"
	"\"b\":{\"type\":\"boolean\",\"x-mcp-header\":\"B\"},"
	"\"o\":{\"type\":\"object\",\"properties\":{\"deep\":{\"type\":\"object\",\"properties\":"
	"{\"id\":{\"type\":\"string\",\"x-mcp-header\":\"Deep-Id\"}}}}}}}}]";

static void learn(struct mcp_param *s, const char *tools)
{
	json_error_t e;
	json_t *t = json_loads(tools, 0, &e);

	if (!t)
		fail_msg("%s: %s", tools, e.text);
	assert_int_equal(mcp_param__learn(s, t), 0);
	json_decref(t);
}

static char why[MCP_PARAM_WHY_LEN];

/*
 * The check of a call of tool with args (JSON text) and the headers (name, value pairs, then
 * NULL) as the proxy gathers them. Its message, when there is one, is one a JSON-RPC error can
 * carry: valid UTF-8, naming the header.
 */
static const char *check(const struct mcp_param *s, const char *tool, const char *args, ...)
{
	struct mcp_param_hdrs h = { .n = 0 };
	json_t *a = args ? json_loads(args, 0, NULL) : NULL;
	const char *r, *name;
	json_t *text;
	va_list ap;

	assert_true(!args || a);
	va_start(ap, args);
	while ((name = va_arg(ap, const char *)))
		mcp_param__add_header(&h, name, va_arg(ap, const char *));
	va_end(ap);
	memset(why, 'x', sizeof(why));
	r = mcp_param__check(s, tool, a, &h, why, sizeof(why));
	json_decref(a);
	if (!r)
		return NULL;
	assert_ptr_equal(r, why);
	assert_true(strlen(r) < sizeof(why));
	assert_true(!strncmp(r, "Mcp-Param-", 10));
	text = json_string(r);
	assert_non_null(text);
	json_decref(text);
	return r;
}

#define OK(...) assert_null(check(__VA_ARGS__, NULL))
#define REFUSED(re, ...)                                                               \
	do {                                                                           \
		const char *m_ = check(__VA_ARGS__, NULL);                             \
		if (!m_ || !strstr(m_, re))                                            \
			fail_msg("wanted \"%s\", got \"%s\"", re, m_ ? m_ : "(none)"); \
	} while (0)

/* "=?base64?...?=" of the n bytes at s, as a client builds it; free()d by the caller */
static char *b64(const char *s, size_t n)
{
	char *out = malloc(4 * (n / 3 + 1) + 12);

	assert_non_null(out);
	memcpy(out, "=?base64?", 9);
	EVP_EncodeBlock((unsigned char *)out + 9, (const unsigned char *)s, (int)n);
	strcat(out, "?=");
	return out;
}

static void test_no_header_is_fine(void **state)
{
	struct mcp_param s = { .tools = NULL };
	struct mcp_param_hdrs h = { .n = 0 };

	/* nothing listed yet, and no header: nothing disagrees */
	OK(&s, "echo", "{\"message\":\"hi\"}");
	learn(&s, ECHO);
	/* a declared header that is missing is the server's to refuse */
	OK(&s, "echo", "{\"message\":\"hi\"}");
	OK(&s, NULL, NULL);
	/* only Mcp-Param-* headers are gathered */
	mcp_param__add_header(&h, "Mcp-Name", "echo");
	mcp_param__add_header(&h, "Mcp-Paramx", "a");
	mcp_param__add_header(&h, "Mcp-Param", "a");
	mcp_param__add_header(&h, "X-Mcp-Param-Message", "a");
	mcp_param__add_header(&h, "Mcp-Parameter-Message", "a");
	assert_int_equal(h.n, 0);
	mcp_param__add_header(&h, "mCP_pARAM-Message", "a");
	assert_int_equal(h.n, 1);
	assert_string_equal(h.h[0].name, "Message");
	mcp_param__free(&s);
}

static void test_not_listed_refused(void **state)
{
	struct mcp_param s = { .tools = NULL };

	REFUSED("was not listed through mcpfence: list the tools (tools/list)", &s, "echo",
		"{\"message\":\"hi\"}", "Mcp-Param-Message", "hi");
	learn(&s, ECHO);
	REFUSED("was not listed", &s, "other", "{\"message\":\"hi\"}", "Mcp-Param-Message", "hi");
	REFUSED("was not listed", &s, NULL, "{\"message\":\"hi\"}", "Mcp-Param-Message", "hi");
	/* names are matched exactly, as the server matches them */
	REFUSED("was not listed", &s, "Echo", "{\"message\":\"hi\"}", "Mcp-Param-Message", "hi");
	OK(&s, "echo", "{\"message\":\"hi\"}", "Mcp-Param-Message", "hi");
	mcp_param__free(&s);
}

static void test_plain_values(void **state)
{
	struct mcp_param s = { .tools = NULL };

	learn(&s, ECHO);
	OK(&s, "echo", "{\"message\":\"hello world\"}", "Mcp-Param-Message", "hello world");
	OK(&s, "echo", "{\"message\":\"a\\tb\"}", "Mcp-Param-Message", "a\tb");
	OK(&s, "echo", "{\"message\":\"\"}", "Mcp-Param-Message", "");
	REFUSED("Mcp-Param-Message disagrees with the body's value", &s, "echo",
		"{\"message\":\"hello\"}", "Mcp-Param-Message", "evil");
	REFUSED("disagrees", &s, "echo", "{\"message\":\"hello\"}", "Mcp-Param-Message", "Hello");
	REFUSED("disagrees", &s, "echo", "{\"message\":\"hello\"}", "Mcp-Param-Message", "hello!");
	REFUSED("disagrees", &s, "echo", "{\"message\":\"hello\"}", "Mcp-Param-Message", "hell");
	/* the header's name in any case, and '_' for '-': checked the same */
	OK(&s, "echo", "{\"message\":\"hi\"}", "mcp-param-message", "hi");
	REFUSED("Mcp-Param-MESSAGE disagrees", &s, "echo", "{\"message\":\"hi\"}",
		"MCP-PARAM-MESSAGE", "evil");
	REFUSED("disagrees", &s, "echo", "{\"message\":\"hi\"}", "Mcp_Param_Message", "evil");
	/* what HTTP strips, or reads otherwise, is sent in base64: plainly it is refused */
	REFUSED("not printable ASCII without surrounding spaces", &s, "echo",
		"{\"message\":\" hi\"}", "Mcp-Param-Message", " hi");
	REFUSED("not printable ASCII", &s, "echo", "{\"message\":\"hi\\t\"}", "Mcp-Param-Message",
		"hi\t");
	REFUSED("not printable ASCII", &s, "echo", "{\"message\":\"h\\u00e9\"}",
		"Mcp-Param-Message", "h\xc3\xa9");
	REFUSED("not printable ASCII", &s, "echo", "{\"message\":\"a\\u007fb\"}",
		"Mcp-Param-Message",
		"a\x7f"
		"b");
	REFUSED("not printable ASCII", &s, "echo", "{\"message\":\"a\\u0001b\"}",
		"Mcp-Param-Message",
		"a\x01"
		"b");
	mcp_param__free(&s);
}

static void test_base64_values(void **state)
{
	static const char *const values[] = {
		"h\xc3\xa9llo w\xc3\xb6rld", " padded ", "tab\t",	"\xe2\x9c\x93",
		"=?base64?aGk=?=",	     "",	 "plain enough"
	};
	struct mcp_param s = { .tools = NULL };
	char args[200];

	learn(&s, ECHO);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char *h = b64(values[i], strlen(values[i]));
		json_t *v = json_pack("{s:s}", "message", values[i]);
		char *text = json_dumps(v, JSON_COMPACT);

		snprintf(args, sizeof(args), "%s", text);
		OK(&s, "echo", args, "Mcp-Param-Message", h);
		REFUSED("disagrees", &s, "echo", "{\"message\":\"other\"}", "Mcp-Param-Message", h);
		free(text);
		json_decref(v);
		free(h);
	}
	/* a value that looks like the sentinel is decoded: the body must say what it decodes to */
	OK(&s, "echo", "{\"message\":\"hi\"}", "Mcp-Param-Message", "=?base64?aGk=?=");
	REFUSED("disagrees", &s, "echo", "{\"message\":\"=?base64?aGk=?=\"}", "Mcp-Param-Message",
		"=?base64?aGk=?=");
	/* half of the sentinel is plain text */
	OK(&s, "echo", "{\"message\":\"=?base64?aGk=\"}", "Mcp-Param-Message", "=?base64?aGk=");
	OK(&s, "echo", "{\"message\":\"aGk=?=\"}", "Mcp-Param-Message", "aGk=?=");
	/* not canonical base64, or not UTF-8 text without NUL */
	static const char *const bad[] = {
		"=?base64?=",	       /* the prefix and the suffix overlap */
		"=?base64?aGk?=",      /* not a multiple of 4 */
		"=?base64?aG k=?=",    /* a space */
		"=?base64?a!k=?=",     /* not of the alphabet */
		"=?base64?aGk-?=",     /* base64url */
		"=?base64?aGl=?=",     /* a spare bit set */
		"=?base64?aG==?=",     /* a spare bit set */
		"=?base64?a=k=?=",     /* padding inside */
		"=?base64?aGk=aGk=?=", /* padding inside */
		"=?base64?====?=",     /* nothing but padding */
		"=?base64?aB==?=",     /* 'h', then a spare bit */
		"=?base64?AA==?=",     /* a NUL */
		"=?base64?aABp?=",     /* a NUL inside */
		"=?base64?/w==?=",     /* 0xff: not UTF-8 */
		"=?base64?wKA=?=",     /* an overlong ' ' */
		"=?base64?7aCA?=",     /* a surrogate, U+D800 */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *m = check(&s, "echo", "{\"message\":\"hi\"}", "Mcp-Param-Message",
				      bad[i], NULL);

		if (!m || !strstr(m, "is not =?base64?...?= of UTF-8 text without NUL"))
			fail_msg("%s: got \"%s\"", bad[i], m ? m : "(none)");
	}
	mcp_param__free(&s);
}

static void test_undeclared_and_twice(void **state)
{
	struct mcp_param s = { .tools = NULL };

	learn(&s, ECHO);
	learn(&s,
	      "[{\"name\":\"bare\",\"inputSchema\":{\"type\":\"object\"}},{\"name\":\"none\"}]");
	REFUSED("Mcp-Param-Other: the tool's inputSchema declares no such header", &s, "echo",
		"{\"message\":\"hi\",\"other\":\"x\"}", "Mcp-Param-Other", "x");
	/* the declared one right, then one not declared */
	REFUSED("Mcp-Param-Other: the tool's inputSchema declares no such header", &s, "echo",
		"{\"message\":\"hi\"}", "Mcp-Param-Message", "hi", "Mcp-Param-Other", "x");
	REFUSED("declares no such header", &s, "echo", "{\"message\":\"hi\"}", "Mcp-Param-", "hi");
	REFUSED("declares no such header", &s, "echo", "{\"message\":\"hi\"}", "Mcp-Param-Messages",
		"hi");
	REFUSED("declares no such header", &s, "bare", "{}", "Mcp-Param-Message", "hi");
	REFUSED("declares no such header", &s, "none", "{}", "Mcp-Param-Message", "hi");
	/* twice, even saying the same, in another case, or with '_' */
	REFUSED("Mcp-Param-Message is sent twice", &s, "echo", "{\"message\":\"hi\"}",
		"Mcp-Param-Message", "hi", "Mcp-Param-Message", "hi");
	REFUSED("Mcp-Param-message is sent twice", &s, "echo", "{\"message\":\"hi\"}",
		"Mcp-Param-Message", "hi", "mcp-param-message", "evil");
	REFUSED("is sent twice", &s, "echo", "{\"message\":\"hi\"}", "Mcp-Param-Message", "hi",
		"Mcp_Param_Message", "hi");
	mcp_param__free(&s);
}

static void test_absent_null_and_not_primitive(void **state)
{
	struct mcp_param s = { .tools = NULL };

	learn(&s, TYPED);
	REFUSED("Mcp-Param-S is sent, but the body has no value there", &s, "t", "{}",
		"Mcp-Param-S", "x");
	REFUSED("the body has no value there", &s, "t", "{\"s\":null}", "Mcp-Param-S", "x");
	REFUSED("the body has no value there", &s, "t", "{\"s\":null}", "Mcp-Param-S", "null");
	REFUSED("the body has no value there", &s, "t", NULL, "Mcp-Param-S", "x");
	REFUSED("the body has no value there", &s, "t", "[\"x\"]", "Mcp-Param-S", "x");
	REFUSED("the body has no value there", &s, "t", "{\"o\":\"x\"}", "Mcp-Param-Deep-Id", "x");
	REFUSED("the body has no value there", &s, "t", "{\"o\":{\"deep\":[\"x\"]}}",
		"Mcp-Param-Deep-Id", "x");
	REFUSED("the body has no value there", &s, "t", "{\"o\":{\"id\":\"x\"}}",
		"Mcp-Param-Deep-Id", "x");
	REFUSED("the body's value is not a string, integer or boolean", &s, "t",
		"{\"s\":{\"a\":1}}", "Mcp-Param-S", "{\"a\":1}");
	REFUSED("not a string, integer or boolean", &s, "t", "{\"s\":[\"x\"]}", "Mcp-Param-S", "x");
	REFUSED("not a string, integer or boolean", &s, "t", "{\"s\":[]}", "Mcp-Param-S", "");
	mcp_param__free(&s);
}

static void test_integers(void **state)
{
	struct mcp_param s = { .tools = NULL };

	learn(&s, TYPED);
	OK(&s, "t", "{\"n\":42}", "Mcp-Param-N", "42");
	OK(&s, "t", "{\"n\":-7}", "Mcp-Param-N", "-7");
	OK(&s, "t", "{\"n\":0}", "Mcp-Param-N", "0");
	OK(&s, "t", "{\"n\":9223372036854775807}", "Mcp-Param-N", "9223372036854775807");
	OK(&s, "t", "{\"n\":-9223372036854775808}", "Mcp-Param-N", "-9223372036854775808");
	OK(&s, "t", "{\"n\":42}", "Mcp-Param-N", "=?base64?NDI=?=");
	/* a number the body writes otherwise, with no fraction: its decimal */
	OK(&s, "t", "{\"n\":1e3}", "Mcp-Param-N", "1000");
	OK(&s, "t", "{\"n\":42.0}", "Mcp-Param-N", "42");
	OK(&s, "t", "{\"n\":-0.0}", "Mcp-Param-N", "0");
	/* a decimal read otherwise by some reader (octal, float, signed) is not the body's */
	static const char *const other[] = { "042", "+42", "42.0", "4.2e1", "0x2a", "42 ",
					     "4 2", "",	   "-",	   "--42",  "42a" };
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		const char *m = check(&s, "t", "{\"n\":42}", "Mcp-Param-N", other[i], NULL);

		if (!m)
			fail_msg("\"%s\" was taken for 42", other[i]);
	}
	REFUSED("disagrees", &s, "t", "{\"n\":0}", "Mcp-Param-N", "-0");
	REFUSED("disagrees", &s, "t", "{\"n\":1e3}", "Mcp-Param-N", "1e3");
	REFUSED("disagrees", &s, "t", "{\"n\":42}", "Mcp-Param-N", "43");
	REFUSED("disagrees", &s, "t", "{\"n\":9223372036854775807}", "Mcp-Param-N",
		"9223372036854775808");
	REFUSED("disagrees", &s, "t", "{\"n\":9223372036854775807}", "Mcp-Param-N",
		"92233720368547758070");
	REFUSED("the body's value is a number but not an integer up to 2^53", &s, "t",
		"{\"n\":42.5}", "Mcp-Param-N", "42.5");
	REFUSED("not an integer", &s, "t", "{\"n\":1e300}", "Mcp-Param-N", "1e300");
	/* a string body is read as a string */
	OK(&s, "t", "{\"n\":\"042\"}", "Mcp-Param-N", "042");
	REFUSED("disagrees", &s, "t", "{\"n\":\"42\"}", "Mcp-Param-N", "042");
	mcp_param__free(&s);
}

static void test_booleans_and_nested(void **state)
{
	struct mcp_param s = { .tools = NULL };

	learn(&s, TYPED);
	OK(&s, "t", "{\"b\":true}", "Mcp-Param-B", "true");
	OK(&s, "t", "{\"b\":false}", "Mcp-Param-B", "false");
	OK(&s, "t", "{\"b\":\"true\"}", "Mcp-Param-B", "true");
	REFUSED("disagrees", &s, "t", "{\"b\":true}", "Mcp-Param-B", "false");
	REFUSED("disagrees", &s, "t", "{\"b\":true}", "Mcp-Param-B", "True");
	REFUSED("disagrees", &s, "t", "{\"b\":true}", "Mcp-Param-B", "1");
	REFUSED("disagrees", &s, "t", "{\"b\":false}", "Mcp-Param-B", "");
	OK(&s, "t", "{\"o\":{\"deep\":{\"id\":\"x-1\"}}}", "Mcp-Param-Deep-Id", "x-1");
	REFUSED("Mcp-Param-Deep-Id disagrees", &s, "t", "{\"o\":{\"deep\":{\"id\":\"x-1\"}}}",
		"Mcp-Param-Deep-Id", "x-2");
	/* all four at once, and one of them wrong */
	OK(&s, "t", "{\"s\":\"a\",\"n\":1,\"b\":true,\"o\":{\"deep\":{\"id\":\"d\"}}}",
	   "Mcp-Param-S", "a", "Mcp-Param-N", "1", "Mcp-Param-B", "true", "Mcp-Param-Deep-Id", "d");
	REFUSED("Mcp-Param-B disagrees", &s, "t",
		"{\"s\":\"a\",\"n\":1,\"b\":true,\"o\":{\"deep\":{\"id\":\"d\"}}}", "Mcp-Param-S",
		"a", "Mcp-Param-N", "1", "Mcp-Param-B", "false", "Mcp-Param-Deep-Id", "d");
	mcp_param__free(&s);
}

/* A tool whose schema declares Message rightly, and also what fault says, is refused whole. */
static void test_invalid_schemas(void **state)
{
	static const char *const faults[] = {
		"\"other\":{\"type\":\"string\",\"x-mcp-header\":7}",
		"\"other\":{\"type\":\"string\",\"x-mcp-header\":\"\"}",
		"\"other\":{\"type\":\"string\",\"x-mcp-header\":null}",
		"\"other\":{\"type\":\"string\",\"x-mcp-header\":\"Bad Name\"}",
		"\"other\":{\"type\":\"string\",\"x-mcp-header\":\"a:b\"}",
		"\"other\":{\"type\":\"string\",\"x-mcp-header\":\"a\\r\\nX-Evil: 1\"}",
		"\"other\":{\"type\":\"string\",\"x-mcp-header\":\"Mess\\u00e4ge\"}",
		"\"other\":{\"type\":\"number\",\"x-mcp-header\":\"Other\"}",
		"\"other\":{\"type\":\"object\",\"x-mcp-header\":\"Other\"}",
		"\"other\":{\"type\":\"array\",\"x-mcp-header\":\"Other\"}",
		"\"other\":{\"x-mcp-header\":\"Other\"}",
		"\"other\":{\"type\":[\"string\",\"null\"],\"x-mcp-header\":\"Other\"}",
		"\"other\":{\"type\":\"string\",\"x-mcp-header\":\"MESSAGE\"}",
		"\"other\":{\"type\":\"string\",\"x-mcp-header\":\"message\"}",
		"\"x\":{\"type\":\"string\",\"x-mcp-header\":\"A-B\"},"
		"\"y\":{\"type\":\"string\",\"x-mcp-header\":\"a_b\"}",
		"\"other\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"x-mcp-header\":"
		"\"Item\"}}",
		"\"other\":{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\","
		"\"x-mcp-header\":\"Item\"}]}",
		"\"other\":{\"anyOf\":[{\"type\":\"string\",\"x-mcp-header\":\"Other\"}]}",
		"\"other\":{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"string\",\"x-mcp-header\":"
		"\"Other\"}]}",
		"\"other\":{\"not\":{\"type\":\"string\",\"x-mcp-header\":\"Other\"}}",
		"\"other\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\","
		"\"x-mcp-header\":\"Other\"}}",
		"\"other\":{\"type\":\"object\",\"patternProperties\":{\"^a\":{\"type\":\"string\","
		"\"x-mcp-header\":\"Other\"}}}",
		"\"other\":{\"$defs\":{\"d\":{\"type\":\"string\",\"x-mcp-header\":\"Other\"}}}",
		"\"other\":{\"if\":{\"type\":\"string\",\"x-mcp-header\":\"Other\"}}",
		/* deeper inside what is not a properties chain */
		"\"other\":{\"type\":\"object\",\"properties\":{\"x\":{\"allOf\":[{\"properties\":"
		"{\"y\":{\"type\":\"string\",\"x-mcp-header\":\"Other\"}}}]}}}",
	};
	struct mcp_param s = { .tools = NULL };
	char tools[600];

	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		const char *m;

		snprintf(tools, sizeof(tools),
			 "[{\"name\":\"bad\",\"inputSchema\":{\"type\":\"object\",\"properties\":{"
			 "\"message\":{\"type\":\"string\",\"x-mcp-header\":\"Message\"},%s}}}]",
			 faults[i]);
		learn(&s, tools);
		m = check(&s, "bad", "{\"message\":\"hi\"}", "Mcp-Param-Message", "hi", NULL);
		if (!m || !strstr(m, "Mcp-Param-Message: the tool's inputSchema is invalid ("))
			fail_msg("%s: got \"%s\"", faults[i], m ? m : "(none)");
		/* no header: nothing to refuse */
		OK(&s, "bad", "{\"message\":\"hi\"}");
	}
	/* nested deeper than any schema is: refused, not recursed into without end */
	{
		json_t *deep = json_pack("{s:s, s:s}", "type", "string", "x-mcp-header", "Deep");
		json_t *tools;

		for (int i = 0; i < 1000; i++)
			deep = json_pack("{s:s, s:{s:o}}", "type", "object", "properties", "p",
					 deep);
		json_object_set_new(
			json_object_get(deep, "properties"), "message",
			json_pack("{s:s, s:s}", "type", "string", "x-mcp-header", "Message"));
		tools = json_pack("[{s:s, s:o}]", "name", "bad", "inputSchema", deep);
		assert_int_equal(mcp_param__learn(&s, tools), 0);
		json_decref(tools);
		REFUSED("inputSchema is invalid (nested too deep)", &s, "bad",
			"{\"message\":\"hi\"}", "Mcp-Param-Message", "hi");
	}
	/* on the root itself */
	learn(&s, "[{\"name\":\"bad\",\"inputSchema\":{\"type\":\"object\",\"x-mcp-header\":\"R\","
		  "\"properties\":{\"message\":{\"type\":\"string\",\"x-mcp-header\":"
		  "\"Message\"}}}}]");
	REFUSED("outside a chain of properties", &s, "bad", "{\"message\":\"hi\"}",
		"Mcp-Param-Message", "hi");
	mcp_param__free(&s);
}

/* More declarations than are read: invalid; as many: each one checked. */
static void test_many_declarations_and_headers(void **state)
{
	struct mcp_param s = { .tools = NULL };
	json_t *tools = json_array(), *props = json_object(), *args = json_object();
	struct mcp_param_hdrs h = { .n = 0 };
	static char names[MCP_PARAM_MAX_DECLS + 1][24], values[MCP_PARAM_MAX_DECLS + 1][8];
	char buf[MCP_PARAM_WHY_LEN];

	for (int i = 0; i < MCP_PARAM_MAX_DECLS; i++) {
		char key[8];

		snprintf(key, sizeof(key), "p%d", i);
		snprintf(names[i], sizeof(names[i]), "Mcp-Param-P%d", i);
		snprintf(values[i], sizeof(values[i]), "v%d", i);
		json_object_set_new(
			props, key,
			json_pack("{s:s, s:s}", "type", "string", "x-mcp-header", names[i] + 10));
		json_object_set_new(args, key, json_string(values[i]));
		mcp_param__add_header(&h, names[i], values[i]);
	}
	json_array_append_new(tools, json_pack("{s:s, s:{s:s, s:O}}", "name", "many", "inputSchema",
					       "type", "object", "properties", props));
	assert_int_equal(mcp_param__learn(&s, tools), 0);
	assert_null(mcp_param__check(&s, "many", args, &h, buf, sizeof(buf)));
	/* one header too many */
	mcp_param__add_header(&h, "Mcp-Param-P0", "v0");
	assert_true(h.more);
	assert_non_null(mcp_param__check(&s, "many", args, &h, buf, sizeof(buf)));
	assert_non_null(strstr(buf, "more than 64 such headers"));
	/* one declaration too many */
	json_object_set_new(props, "extra",
			    json_pack("{s:s, s:s}", "type", "string", "x-mcp-header", "Extra"));
	json_decref(tools);
	tools = json_pack("[{s:s, s:{s:s, s:O}}]", "name", "many", "inputSchema", "type", "object",
			  "properties", props);
	assert_int_equal(mcp_param__learn(&s, tools), 0);
	h.n = 1;
	h.more = false;
	assert_non_null(mcp_param__check(&s, "many", args, &h, buf, sizeof(buf)));
	assert_non_null(strstr(buf, "inputSchema is invalid (more x-mcp-header"));
	json_decref(tools);
	json_decref(props);
	json_decref(args);
	mcp_param__free(&s);
}

/* A tool listed again replaces its schema; the store keeps MCP_PARAM_MAX_TOOLS tools. */
static void test_relisted_and_bound(void **state)
{
	struct mcp_param s = { .tools = NULL };
	enum log_level old = log_level;
	json_t *tools = json_array();
	char name[32];

	learn(&s, ECHO);
	OK(&s, "echo", "{\"message\":\"hi\"}", "Mcp-Param-Message", "hi");
	learn(&s, "[{\"name\":\"echo\",\"inputSchema\":{\"type\":\"object\",\"properties\":{"
		  "\"message\":{\"type\":\"string\",\"x-mcp-header\":\"Text\"}}}}]");
	REFUSED("declares no such header", &s, "echo", "{\"message\":\"hi\"}", "Mcp-Param-Message",
		"hi");
	OK(&s, "echo", "{\"message\":\"hi\"}", "Mcp-Param-Text", "hi");
	/* a listing without tools, or not a listing, changes nothing */
	learn(&s, "[]");
	learn(&s, "[1, \"echo\", {\"inputSchema\":{}}, {\"name\":7}]");
	assert_int_equal(mcp_param__learn(&s, NULL), 0);
	OK(&s, "echo", "{\"message\":\"hi\"}", "Mcp-Param-Text", "hi");
	mcp_param__free(&s);

	/* 4097 tools: the last is not kept, and its headers are refused */
	for (int i = 0; i <= MCP_PARAM_MAX_TOOLS; i++) {
		snprintf(name, sizeof(name), "tool-%d", i);
		json_array_append_new(tools, json_pack("{s:s, s:{s:s, s:{s:{s:s, s:s}}}}", "name",
						       name, "inputSchema", "type", "object",
						       "properties", "message", "type", "string",
						       "x-mcp-header", "Message"));
	}
	log_level = LOG_LVL_NONE;
	assert_int_equal(mcp_param__learn(&s, tools), 0);
	log_level = old;
	assert_int_equal(json_object_size(s.tools), MCP_PARAM_MAX_TOOLS);
	OK(&s, "tool-0", "{\"message\":\"hi\"}", "Mcp-Param-Message", "hi");
	OK(&s, "tool-4095", "{\"message\":\"hi\"}", "Mcp-Param-Message", "hi");
	REFUSED("was not listed", &s, "tool-4096", "{\"message\":\"hi\"}", "Mcp-Param-Message",
		"hi");
	/* full: a tool it holds is still replaced */
	learn(&s, "[{\"name\":\"tool-0\",\"inputSchema\":{\"type\":\"object\"}}]");
	REFUSED("declares no such header", &s, "tool-0", "{\"message\":\"hi\"}",
		"Mcp-Param-Message", "hi");
	json_decref(tools);
	mcp_param__free(&s);
}

/* A megabyte each way; names no terminal or JSON string should take as they are. */
static void test_hostile_sizes_and_names(void **state)
{
	struct mcp_param s = { .tools = NULL };
	size_t n = 1 << 20;
	char *big = malloc(n + 1), *enc, want[64];
	json_t *args;
	char *text;

	assert_non_null(big);
	memset(big, 'a', n);
	big[n] = 0;
	learn(&s, ECHO);
	args = json_pack("{s:s}", "message", big);
	text = json_dumps(args, JSON_COMPACT);
	OK(&s, "echo", text, "Mcp-Param-Message", big);
	enc = b64(big, n);
	OK(&s, "echo", text, "Mcp-Param-Message", enc);
	free(enc);
	big[n - 1] = 'b';
	REFUSED("disagrees", &s, "echo", text, "Mcp-Param-Message", big);
	enc = b64(big, n);
	REFUSED("disagrees", &s, "echo", text, "Mcp-Param-Message", enc);
	free(enc);
	/* a huge header name, and names with control bytes and bytes that are not UTF-8 */
	memcpy(big, "Mcp-Param-", 10);
	snprintf(want, sizeof(want), "Mcp-Param-%.32s...: the tool's", big + 10);
	REFUSED(want, &s, "echo", "{\"message\":\"hi\"}", big, "hi");
	REFUSED("Mcp-Param-a\\x1b[31m\xef\xbf\xbd: the tool's", &s, "echo", "{\"message\":\"hi\"}",
		"Mcp-Param-a\x1b[31m\xff", "hi");
	REFUSED("was not listed", &s, big + 10, "{\"message\":\"hi\"}", "Mcp-Param-Message", "hi");
	free(text);
	json_decref(args);
	free(big);
	mcp_param__free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_header_is_fine),
		cmocka_unit_test(test_not_listed_refused),
		cmocka_unit_test(test_plain_values),
		cmocka_unit_test(test_base64_values),
		cmocka_unit_test(test_undeclared_and_twice),
		cmocka_unit_test(test_absent_null_and_not_primitive),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_booleans_and_nested),
		cmocka_unit_test(test_invalid_schemas),
		cmocka_unit_test(test_many_declarations_and_headers),
		cmocka_unit_test(test_relisted_and_bound),
		cmocka_unit_test(test_hostile_sizes_and_names),
	};

	return cmocka_run_group_tests_name("Mcp-Param-* headers against the body", tests, NULL,
					   NULL);
}
