// SPDX-License-Identifier: Apache-2.0
/*
 * jsonrpc: framing over partial reads (every split of a stream gives the same lines), lines
 * too long to keep, and classification of hostile messages: duplicate keys, escapes, NUL,
 * invalid UTF-8, wrong types.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "jsonrpc.h"
#include "text.h"

/* Feed stream in pieces of step bytes; collect whole lines joined by '|'. */
static void frame(const char *stream, size_t len, size_t step, char *out, size_t outsz)
{
	struct jr_reader r;
	const char *line;
	size_t n, used = 0;
	enum jr_line k;

	jsonrpc__reader_init(&r, 64);
	out[0] = 0;
	for (size_t off = 0; off <= len; off += step) {
		size_t take = off + step > len ? len - off : step;
		bool eof = off + step > len;

		assert_int_equal(jsonrpc__reader_feed(&r, stream + off, take), 0);
		while ((k = jsonrpc__next_line(&r, eof, &line, &n)) != JR_LINE_NONE) {
			used += snprintf(out + used, outsz - used, "%s%.*s",
					 k == JR_LINE_WHOLE ? "|" :
					 k == JR_LINE_PART  ? "<" :
							      ">",
					 (int)n, line);
		}
		if (eof)
			break;
	}
	jsonrpc__reader_free(&r);
}

static void test_framing_any_split(void **state)
{
	const char s[] = "{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}";
	char want[256], got[256];

	frame(s, strlen(s), strlen(s), want, sizeof(want));
	assert_string_equal(want, "|{\"a\":1}||{\"b\":2}\r|{\"c\":3}");
	for (size_t step = 1; step < sizeof(s); step++) {
		frame(s, strlen(s), step, got, sizeof(got));
		assert_string_equal(got, want);
	}
}

static void test_framing_oversize(void **state)
{
	char s[400], got[1024];

	memset(s, 'x', 200);
	strcpy(s + 200, "\n{\"ok\":1}\n");
	frame(s, strlen(s), 50, got, sizeof(got));
	/* parts of the long line come out marked, then the next line whole */
	assert_non_null(strstr(got, "|{\"ok\":1}"));
	assert_int_equal(got[0], '<');
	assert_non_null(strchr(got, '>'));
	assert_null(strstr(got, "|xxx"));
	size_t xs = 0;
	for (char *p = got; *p; p++)
		xs += *p == 'x';
	assert_int_equal(xs, 200);
}

static void test_reader_fill_pipe(void **state)
{
	struct jr_reader r;
	const char *line;
	size_t n;
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "{\"x\":1}\n{\"y\"", 12), 12);
	close(p[1]);
	jsonrpc__reader_init(&r, 0);
	assert_int_equal(jsonrpc__reader_fill(&r, p[0]), 12);
	assert_int_equal(jsonrpc__next_line(&r, false, &line, &n), JR_LINE_WHOLE);
	assert_int_equal(n, 7);
	assert_int_equal(jsonrpc__next_line(&r, false, &line, &n), JR_LINE_NONE);
	assert_int_equal(jsonrpc__reader_fill(&r, p[0]), 0);
	assert_int_equal(jsonrpc__next_line(&r, true, &line, &n), JR_LINE_WHOLE);
	assert_int_equal(n, 4);
	assert_int_equal(jsonrpc__next_line(&r, true, &line, &n), JR_LINE_NONE);
	close(p[0]);
	jsonrpc__reader_free(&r);
}

struct parse_case {
	const char *line;
	int rc; /* 0 or -EINVAL (not JSON) */
	enum jr_kind kind;
	const char *method;
	const char *err_has;
};

static void test_parse_table(void **state)
{
	static const struct parse_case cases[] = {
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}", 0,
		  JR_REQUEST, "tools/call" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"ping\"}", 0, JR_REQUEST, "ping" },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", 0,
		  JR_NOTIFICATION, "notifications/initialized" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}", 0, JR_RESPONSE },
		{ "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-1,\"message\":\"x\"}}", 0,
		  JR_RESPONSE },
		{ "[{\"jsonrpc\":\"2.0\",\"method\":\"x\"}]", 0, JR_BATCH },
		/* escapes are decoded: the method is what the server reads */
		{ "{\"\\u006aso\\u006erpc\":\"2.0\",\"id\":1,\"\\u006dethod\":\"tools\\/\\u0063all\"}",
		  0, JR_REQUEST, "tools/call" },
		{ "[]", 0, JR_INVALID, NULL, "empty batch" },
		{ "42", 0, JR_INVALID, NULL, "object" },
		{ "{\"id\":1,\"method\":\"x\"}", 0, JR_INVALID, NULL, "jsonrpc" },
		{ "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"x\"}", 0, JR_INVALID, NULL,
		  "jsonrpc" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", 0, JR_INVALID, NULL, "method" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"x\"}", 0, JR_INVALID, NULL, "id" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"x\"}", 0, JR_INVALID, NULL, "id" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"x\"}", 0, JR_INVALID, NULL, "id" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"result\":1}", 0, JR_INVALID,
		  NULL, "result" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":3}", 0, JR_INVALID,
		  NULL, "params" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":{}}", 0, JR_INVALID },
		{ "{\"jsonrpc\":\"2.0\",\"result\":1}", 0, JR_INVALID, NULL, "id" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"no\"}", 0, JR_INVALID, NULL, "error" },
		/* not JSON at all, or not JSON the server would read the same way */
		{ "", -EINVAL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/c", -EINVAL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"} {}", -EINVAL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\\u0000y\"}", -EINVAL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}", -EINVAL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xc0\xaf\"}", -EINVAL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\\ud800\"}", -EINVAL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":123456789012345678901234,\"method\":\"x\"}",
		  -EINVAL },
		{ "\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"method\":\"x\"}", -EINVAL },
		{ "{'jsonrpc':'2.0'}", -EINVAL },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"x\",}", -EINVAL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *c = &cases[i];
		struct jr_msg m;
		int rc = jsonrpc__parse(c->line, strlen(c->line), JR_STRICT, &m);

		if (rc != c->rc || (!rc && m.kind != c->kind))
			fail_msg("case %zu (%s): rc %d kind %d, err %s", i, c->line, rc, m.kind,
				 m.err);
		if (c->method)
			assert_string_equal(m.method, c->method);
		if (c->err_has && !strstr(m.err, c->err_has))
			fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, m.err, c->err_has);
		if (rc)
			assert_true(m.err[0]);
		jsonrpc__msg_free(&m);
	}
}

/* The parse builds what jansson builds from the line, and refuses what jansson refuses. */
static void load_agrees(const char *line, size_t len, unsigned flags)
{
	size_t jflags = JSON_DECODE_ANY | (flags & JR_STRICT ? JSON_REJECT_DUPLICATES : 0);
	json_t *j = json_loadb(line, len, jflags, NULL);
	struct jr_msg m;
	int rc = jsonrpc__parse(line, len, flags, &m);
	char *a, *b;

	/* a strict refusal for what servers could read otherwise is not a refusal of the JSON */
	if (j && !m.root && !strncmp(m.err, "not JSON", 8))
		fail_msg("jansson reads, the parse refuses (%s): %.*s", m.err, (int)len, line);
	if (j && m.root) {
		a = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		b = json_dumps(m.root, JSON_COMPACT | JSON_ENCODE_ANY);
		if (strcmp(a, b))
			fail_msg("jansson reads %s, the parse %s", a, b);
		free(a);
		free(b);
	}
	if (!j && !rc)
		fail_msg("jansson refuses, the parse reads: %.*s", (int)len, line);
	json_decref(j);
	jsonrpc__msg_free(&m);
}

/* The plain reading never says another kind than the parse (not strict) gives; 1: it is sure. */
static int plain_agrees(const char *line, size_t len)
{
	enum jr_kind k = jsonrpc__plain_kind(line, len);
	struct jr_msg m;
	int rc;

	load_agrees(line, len, 0);
	load_agrees(line, len, JR_STRICT);
	rc = jsonrpc__parse(line, len, 0, &m);

	jsonrpc__msg_free(&m);
	if (k == JR_INVALID)
		return 0;
	if (rc || m.kind != k)
		fail_msg("plain reading says kind %d, the parse rc %d kind %d: %.*s", k, rc, m.kind,
			 (int)len, line);
	return 1;
}

/*
 * Server lines that need no parse are read plainly: the plain reading is sure of simple
 * messages, and never of a line the parse reads otherwise. The parse's fast load builds what
 * jansson builds, or leaves the line to jansson. Each seed, then each seed with
 * every byte replaced by (or with inserted before it) each byte of a set that turns JSON into
 * something else, or deleted.
 */
static void test_plain_kind(void **state)
{
	static const char *const seeds[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\","
		"\"text\":\"ok \\\"\\n\xc3\xa9\"}]}}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"error\":{\"code\":-32601,\"message\":\"x\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":1}}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"l\":[1,"
		"-2.5,true,false,null]}}",
		" {\"jsonrpc\" : \"2.0\", \"id\":7,\"method\":\"ping\",\"params\":[]}\r",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":\"x\",\"result\":0}",
		"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"a\\/b\","
		"\"arguments\":{\"k\":{\"x\":1,\"y\":[0,-7]},\"x\\\"\":\"\\t\"}}}",
	};
	static const char *const unsure[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"\\u0041\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1e2,\"result\":1}",
		"[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1}]",
		"{\"jsonrpc\":\"2.0\",\"id\":1234567890123456,\"result\":1}",
	};
	static const char set[] = "{}[]\":,\\ 0.-eEtnu/\t\x01\x80\xff";
	char buf[256];
	int sure = 0;

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		size_t n = strlen(seeds[i]);

		if (!plain_agrees(seeds[i], n))
			fail_msg("not sure of seed %zu: %s", i, seeds[i]);
		for (size_t at = 0; at < n; at++) {
			for (size_t c = 0; c < sizeof(set) - 1; c++) {
				memcpy(buf, seeds[i], n);
				buf[at] = set[c];
				sure += plain_agrees(buf, n);
				memcpy(buf, seeds[i], at);
				buf[at] = set[c];
				memcpy(buf + at + 1, seeds[i] + at, n - at);
				sure += plain_agrees(buf, n + 1);
			}
			memcpy(buf, seeds[i], at);
			memcpy(buf + at, seeds[i] + at + 1, n - at - 1);
			sure += plain_agrees(buf, n - 1);
		}
	}
	assert_true(sure > 0);
	/* what it is not sure of, the parse reads */
	for (size_t i = 0; i < sizeof(unsure) / sizeof(unsure[0]); i++)
		assert_int_equal(jsonrpc__plain_kind(unsure[i], strlen(unsure[i])), JR_INVALID);
}

static void test_duplicate_keys(void **state)
{
	static const char *const dups[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"name\":\"b\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"method\":\"ping\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"},\"params\":{\"name\":\"b\"}}",
		/* an escaped spelling of the same key is the same key */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"n\\u0061me\":\"b\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"x\"}",
		/* inside arguments too: a check judges one value, the server may read the other */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"w\",\"arguments\":{\"path\":\"/ok\",\"path\":\"/etc/shadow\"}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"w\",\"arguments\":{\"o\":[{\"p\":1,\"\\u0070\":2}]}}}",
	};

	for (size_t i = 0; i < sizeof(dups) / sizeof(dups[0]); i++) {
		struct jr_msg m;

		assert_int_equal(jsonrpc__parse(dups[i], strlen(dups[i]), JR_STRICT, &m), -EINVAL);
		assert_non_null(strstr(m.err, "duplicate"));
		jsonrpc__msg_free(&m);
		/* without JR_STRICT (the server side) it parses: lines pass unchanged there */
		assert_int_equal(jsonrpc__parse(dups[i], strlen(dups[i]), 0, &m), 0);
		jsonrpc__msg_free(&m);
	}
}

/* Keys some server reads as a key that matters, though they are not it; bare CRs. */
static void test_folded_keys(void **state)
{
	static const struct {
		const char *line, *err_has;
	} bad[] = {
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"NAME\":\"b\"}}",
		  "\"NAME\" is \"name\"" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"Name\":\"b\"}}",
		  "\"Name\" is \"name\"" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"METHOD\":\"ping\"}",
		  "\"METHOD\" is \"method\"" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"param\u017f\":{\"name\":\"b\"}}",
		  "is \"params\"" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"param\xc5\xbf\":{}}",
		  "is \"params\"" },
		{ "{\"jsonrpc\":\"2.0\",\"\u0131d\":7,\"method\":\"ping\"}", "is \"id\"" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"Method\":\"tools/call\"}",
		  "is \"method\"" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":{\"ARGUMENTS\":{}}}",
		  "is \"arguments\"" },
		{ "{\"JSONRPC\":\"1.0\",\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}",
		  "is \"jsonrpc\"" },
		{ "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"},{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"nAme\":\"b\"}}]",
		  "\"nAme\"" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\r\"method\":\"x\"}", "bare CR" },
	};
	static const char *const good[] = {
		/* the same key spelled with an escape is the key itself (and a duplicate if twice) */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"n\\u0061me\":\"a\"}}",
		/* keys deeper down are the arguments' own business */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"arguments\":{\"NAME\":1,\"Method\":2}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"_meta\":{\"Name\":1}}}",
		/* a CRLF line */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}\r",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"namespace\":1,\"ids\":2}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct jr_msg m;

		if (jsonrpc__parse(bad[i].line, strlen(bad[i].line), JR_STRICT, &m) != -EINVAL)
			fail_msg("bad %zu: parsed", i);
		if (bad[i].err_has && !strstr(m.err, bad[i].err_has))
			fail_msg("bad %zu: error \"%s\" lacks \"%s\"", i, m.err, bad[i].err_has);
		jsonrpc__msg_free(&m);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct jr_msg m;

		if (jsonrpc__parse(good[i], strlen(good[i]), JR_STRICT, &m))
			fail_msg("good %zu: refused: %s", i, m.err);
		jsonrpc__msg_free(&m);
	}
	assert_true(jsonrpc__key_folds_to("NAME", 4, "name", 4));
	assert_true(jsonrpc__key_folds_to("\xc5\xbftatus", 7, "status", 6)); /* long s */
	assert_true(jsonrpc__key_folds_to("\xe2\x84\xaa"
					  "ey",
					  5, "key", 3)); /* Kelvin */
	assert_true(jsonrpc__key_folds_to("\xc3\xa9t\xc3\xa9", 6, "\xc3\x89t\xc3\x89", 6));
	assert_false(jsonrpc__key_folds_to("name", 4, "name", 4));
	assert_false(jsonrpc__key_folds_to("names", 5, "name", 4));
	assert_false(jsonrpc__key_folds_to("n\xc3\xa1me", 5, "name", 4));
}

/*
 * Strings are read eight bytes at a time while no byte needs a look: every byte that does, at
 * every offset of a word, reads as jansson reads it (the same value, or refused alike).
 */
static void test_string_bytes_at_every_offset(void **state)
{
	static const char *const special[] = { "\\\"", "\\\\", "\\n",  "\\u0041",  "\\x",
					       "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x80\xae",
					       "\xff", "\xc3", " ",    "~",	   "\"" };

	for (size_t k = 0; k < sizeof(special) / sizeof(special[0]); k++)
		for (size_t at = 0; at < 20; at++) {
			char value[64], line[160];
			json_t *want;
			struct jr_msg m;
			int rc;

			memset(value, 'a', sizeof(value));
			memcpy(value + at, special[k], strlen(special[k]));
			value[20 + strlen(special[k])] = 0;
			snprintf(line, sizeof(line),
				 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\"}", value);
			want = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
			rc = jsonrpc__parse(line, strlen(line), JR_STRICT, &m);
			if (!want != (rc != 0))
				fail_msg("byte %zu of %zu: %s by jansson, %s here: %s", at, k,
					 want ? "read" : "refused", rc ? "refused" : "read", line);
			if (want && !json_equal(want, m.root))
				fail_msg("byte %zu of %zu: another value: %s", at, k, line);
			json_decref(want);
			jsonrpc__msg_free(&m);
		}
}

/* A line the quick reading takes must be read the same by the whole strict one. */
static void assert_agrees(const char *line, size_t len, const struct jr_call_view *v)
{
	struct jr_msg m;

	if (jsonrpc__parse(line, len, JR_STRICT, &m))
		fail_msg("taken quickly, refused by the strict reading (%s): %.*s", m.err, (int)len,
			 line);
	if (m.kind != JR_REQUEST || strcmp(m.method, "tools/call"))
		fail_msg("taken quickly, not a tools/call request: %.*s", (int)len, line);
	if (!json_is_string(json_object_get(m.params, "name")) ||
	    json_string_length(json_object_get(m.params, "name")) != v->tool_len ||
	    memcmp(json_string_value(json_object_get(m.params, "name")), v->tool, v->tool_len))
		fail_msg("taken quickly with another name: %.*s", (int)len, line);
	jsonrpc__msg_free(&m);
}

/* jsonrpc__plain_call: what it takes, what it leaves to the whole reading. */
static void test_plain_call(void **state)
{
	static const struct {
		const char *line, *tool; /* tool NULL: not taken */
	} cases[] = {
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"hi\"}}}",
		  "echo" },
		{ " { \"params\" : { \"arguments\" : { } , \"name\" : \"a b\" } , \"method\" : \"tools/call\" , \"id\" : \"x-1\" , \"jsonrpc\" : \"2.0\" } \r",
		  "a b" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":-7,\"method\":\"tools/call\",\"params\":{\"name\":\"\xc3\xa9t\xc3\xa9\",\"_meta\":{\"io.modelcontextprotocol/clientInfo\":{\"name\":\"c\"}},\"arguments\":{\"a\":[1,2.5,true,null,{\"a\":1}],\"b\":\"\\n\\\"\"}}}",
		  "\xc3\xa9t\xc3\xa9" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"e\"}}",
		  "e" },
		/* left to the whole reading */
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"name\":\"b\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"w\",\"arguments\":{\"path\":\"/ok\",\"path\":\"/etc/shadow\"}}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"w\",\"arguments\":{\"o\":[{\"p\":1,\"q\":{\"r\":1,\"r\":2}}]}}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"w\",\"arguments\":{\"p\":1,\"\\u0070\":2}}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"w\",\"arguments\":{\"p\\n\":1}}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"NAME\":\"b\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"METHOD\":\"ping\",\"params\":{\"name\":\"a\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"},\"param\xc5\xbf\":{}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"requestState\":\"s\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"},\"result\":{}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\r\"params\":{\"name\":\"a\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\\u0062\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\\\"b\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools\\/call\",\"params\":{\"name\":\"a\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"name\":\"a\"}}" },
		{ "{\"jsonrpc\":\"2.0 \",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":\"a\\u0000\",\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"arguments\":{}}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"arguments\":[]}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"_meta\":\"m\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}} {}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}x" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"\xff\"}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"arguments\":{\"n\":1e5}}}" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"arguments\":{\"n\":1234567890123456789}}}" },
		{ "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}]" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *line = cases[i].line;
		struct jr_call_view v;
		bool taken = jsonrpc__plain_call(line, strlen(line), &v);

		if (taken != !!cases[i].tool)
			fail_msg("case %zu: %s: %s", i, taken ? "taken" : "not taken", line);
		if (!taken)
			continue;
		if (v.tool_len != strlen(cases[i].tool) ||
		    memcmp(v.tool, cases[i].tool, v.tool_len))
			fail_msg("case %zu: tool \"%.*s\"", i, (int)v.tool_len, v.tool);
		assert_agrees(line, strlen(line), &v);
	}
}

/*
 * Lines a byte away from taken ones, each of 256 values at each offset, and two bytes away at
 * random: whatever the quick reading takes, the strict one reads as the same call.
 */
static void test_plain_call_agrees(void **state)
{
	static const char *const seeds[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"tools/call\",\"params\":{\"name\":\"ab\",\"arguments\":{\"k\":[1,{\"x\":\"y\"}],\"l\":true}}}",
		"{\"params\":{\"_meta\":{\"p\":\"2026\"},\"name\":\"\xc3\xa9\"},\"id\":\"i\",\"method\":\"tools/call\",\"jsonrpc\":\"2.0\"}",
	};
	unsigned seed = 12345;
	size_t taken = 0;

	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		size_t len = strlen(seeds[s]);
		char line[256];

		for (size_t at = 0; at < len; at++)
			for (int c = 0; c < 256; c++) {
				struct jr_call_view v;

				memcpy(line, seeds[s], len);
				line[at] = (char)c;
				if (jsonrpc__plain_call(line, len, &v)) {
					taken++;
					assert_agrees(line, len, &v);
				}
			}
		for (int r = 0; r < 100000; r++) {
			struct jr_call_view v;

			memcpy(line, seeds[s], len);
			for (int k = 0; k < 2; k++) {
				seed = seed * 1103515245 + 12345;
				line[(seed >> 8) % len] = (char)(seed >> 20);
			}
			if (jsonrpc__plain_call(line, len, &v)) {
				taken++;
				assert_agrees(line, len, &v);
			}
		}
	}
	/* the seeds themselves and their harmless variants were taken */
	assert_true(taken > 1000);
}

static void test_builders(void **state)
{
	json_t *id = json_string("r1"), *e, *r;
	char buf[64], *line;
	size_t len;

	e = jsonrpc__error(NULL, JSONRPC_PARSE_ERROR, "bad");
	line = jsonrpc__dump_line(e, &len);
	assert_string_equal(
		line,
		"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"bad\"}}\n");
	assert_int_equal(len, strlen(line));
	free(line);
	json_decref(e);
	r = jsonrpc__result(id, json_pack("{s:b}", "ok", 1));
	assert_true(json_equal(json_object_get(r, "id"), id));
	json_decref(r);
	jsonrpc__id_text(id, buf, sizeof(buf));
	assert_string_equal(buf, "\"r1\"");
	jsonrpc__id_text(NULL, buf, sizeof(buf));
	assert_string_equal(buf, "null");
	json_decref(id);
	id = json_string("0123456789012345678901234567890123456789012345678901234567890123456789");
	jsonrpc__id_text(id, buf, sizeof(buf));
	assert_string_equal(buf, "\"(id too long)\"");
	json_decref(id);
	assert_true(jsonrpc__blank(" \t\r", 3));
	assert_false(jsonrpc__blank(" x", 2));
}

/*
 * A server line that is not UTF-8 is judged as the client's decoder reads it: each maximal
 * ill-formed part one U+FFFD (the Unicode standard's example, section 3.9, and the WHATWG
 * decoder's), well-formed text left alone.
 */
static void test_utf8_repair(void **state)
{
	static const char std_in[] = "\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64";
	static const char std_out[] = "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
				      "b\xef\xbf\xbd"
				      "c\xef\xbf\xbd\xef\xbf\xbd"
				      "d";
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "caf\xe9", "caf\xef\xbf\xbd" },
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* a surrogate */
		{ "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },		    /* overlong */
		{ "\xf0\x9f\x98", "\xef\xbf\xbd" },			    /* cut short */
		{ "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xe0\x80", "\xef\xbf\xbd\xef\xbf\xbd" },
	};
	size_t n;
	char *out;

	out = text__utf8_repair(std_in, sizeof(std_in) - 1, &n);
	assert_non_null(out);
	assert_int_equal(n, sizeof(std_out) - 1);
	assert_memory_equal(out, std_out, n);
	free(out);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		out = text__utf8_repair(cases[i].in, strlen(cases[i].in), &n);
		assert_non_null(out);
		assert_string_equal(out, cases[i].out);
		assert_int_equal(n, strlen(cases[i].out));
		free(out);
	}
	/* well-formed: nothing to repair */
	assert_null(text__utf8_repair("caf\xc3\xa9 \xf0\x9f\x98\x80", 10, &n));
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_framing_any_split),
		cmocka_unit_test(test_framing_oversize),
		cmocka_unit_test(test_reader_fill_pipe),
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_folded_keys),
		cmocka_unit_test(test_string_bytes_at_every_offset),
		cmocka_unit_test(test_plain_call),
		cmocka_unit_test(test_plain_call_agrees),
		cmocka_unit_test(test_builders),
		cmocka_unit_test(test_plain_kind),
		cmocka_unit_test(test_utf8_repair),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
