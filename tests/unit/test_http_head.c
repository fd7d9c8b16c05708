// SPDX-License-Identifier: Apache-2.0
/*
 * The request head parser of the TCP hook (bpf/http_head.bpf.h, built for userspace) against a
 * byte-at-a-time reading with the same rules (tests/unit/head_ref.h): hostile heads with the
 * outcome a server's reading demands, every prefix of them (a head arriving in pieces), and
 * mutations of them at every offset of the 8-byte runs the parser reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include "head_ref.h"

static struct mcpf_scan_buf buf;
static struct http_head h;

/* Parse d[0..n) both ways; fail naming the input when they differ. Returns the reference. */
static struct head_ref both(const char *d, size_t n)
{
	struct head_ref r;
	bool same;

	memcpy(buf.data, d, n);
	/* bytes past the head must never matter: make them look like a line end and more */
	memset(buf.data + n, '\r', 64);
	memset(buf.data + n + 64, ':', 64);
	http_head_parse(&buf, n, &h);
	head_ref_parse((const unsigned char *)d, n, &r);
	same = head_ref_agrees(&h, &buf, &r);
	if (!same)
		fail_msg(
			"parsers differ on %zu bytes \"%.*s\": bpf error %u end %u cl %llu seen %x "
			"method \"%s\" name \"%s\"; reference error %d end %u cl %llu seen %x "
			"method \"%s\" name \"%s\"",
			n, (int)n, d, h.hc.error, h.hc.end, (unsigned long long)h.hc.cl, h.hc.seen,
			h.h_method, h.h_name, r.error, r.end, (unsigned long long)r.cl, r.seen,
			r.method, r.name);
	return r;
}

enum want { OK, BAD };

struct head_case {
	const char *head;
	enum want want;
	long cl; /* for OK: the Content-Length read, -1 none */
};

static const struct head_case cases[] = {
	{ "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n", OK, 12 },
	{ "POST /mcp HTTP/1.1\r\ncOnTeNt-LeNgTh:\t 7 \t\r\n\r\n", OK, 7 },
	{ "POST /mcp HTTP/1.1\r\nContent-Length:0012\r\n\r\n", OK, 12 },
	{ "POST /mcp HTTP/1.1\r\nX-A: \xc3\xa9t\xc3\xa9\r\n\r\n", OK, -1 },
	{ "POST /mcp HTTP/1.1\r\nX_A.b~c!#$%&'*+^`|: 1\r\n\r\n", OK, -1 },
	{ "POST /mcp HTTP/1.1\r\nContent-Length-And-More-Still: 3\r\n\r\n", OK, -1 },
	{ "POST /mcp HTTP/1.1\r\nContent-Length : 5\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nContent-Length: +5\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nContent-Length:\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nX-A: a\rb\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nX-A: a\nContent-Length: 5\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\nHost: x\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nX-A: a\001b\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nX-A: a\177b\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nX-\177A: b\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nX(A): b\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nX-\xc3\xa9: b\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\n: b\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", OK, -1 },
	{ "POST /mcp HTTP/1.1\r\nMcp-Name: a\r\nMcp-Name: b\r\n\r\n", BAD, 0 },
	{ "post /mcp HTTP/1.1\r\n\r\n", BAD, 0 },
	{ "POST /m\tcp HTTP/1.1\r\n\r\n", BAD, 0 },
	{ "POST /mcp HTTP/1.1\r\nMcp-Method: tools/call\r\nMcp-Name: get-env  \r\n"
	  "Mcp-Session-Id: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefXYZ\r\n"
	  "\r\n",
	  OK, -1 },
	/* 47 bytes of method (MCPF_METHOD_MAX - 1) are read, 48 are longer than any method */
	{ "POST /mcp HTTP/1.1\r\nMcp-Method: "
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
	  OK, -1 },
	{ "POST /mcp HTTP/1.1\r\nMcp-Method: "
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
	  OK, -1 },
	/* an Mcp-Name of 127 bytes is read, a longer one (a resource's URI) is not an error */
	{ "POST /mcp HTTP/1.1\r\nMcp-Name: file:///"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "\r\n\r\n",
	  OK, -1 },
	/* a method longer than 16 bytes with a tab in it, and trailing whitespace cut */
	{ "POST /mcp HTTP/1.1\r\nMcp-Method: notifications/initialized\t \r\n"
	  "Mcp-Name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\tbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb \r\n\r\n",
	  OK, -1 },
};

static void test_cases(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct head_case *c = &cases[i];
		struct head_ref r = both(c->head, strlen(c->head));

		if (c->want == BAD) {
			if (!r.error)
				fail_msg("not refused: %s", c->head);
			continue;
		}
		if (r.error || r.end != strlen(c->head))
			fail_msg("not read whole (error %d, end %u): %s", r.error, r.end, c->head);
		if (c->cl >= 0 && (r.cl != (uint64_t)c->cl || !(r.seen & 1u << HDR_CONTENT_LENGTH)))
			fail_msg("Content-Length %llu, not %ld: %s", (unsigned long long)r.cl,
				 c->cl, c->head);
	}
	/* the values that are kept */
	both(cases[27].head, strlen(cases[27].head));
	assert_string_equal(h.h_method, "tools/call");
	assert_string_equal(h.h_name, "get-env");
	assert_int_equal(h.h_session_len, MCPF_TCP_SESSION_MAX - 1);
	assert_memory_equal(h.h_session, "0123456789abcdef", 16);
	both(cases[28].head, strlen(cases[28].head));
	assert_int_equal(h.h_method_len, MCPF_METHOD_MAX);
	assert_int_equal(strlen(h.h_method), MCPF_METHOD_MAX - 1);
	both(cases[30].head, strlen(cases[30].head));
	assert_int_equal(h.h_name_len, 188);
	assert_int_equal(strlen(h.h_name), MCPF_NAME_MAX - 1);
	assert_memory_equal(h.h_name, "file:///aaaa", 12);
	both(cases[31].head, strlen(cases[31].head));
	assert_string_equal(h.h_method, "notifications/initialized");
	assert_int_equal(h.h_method_len, 25);
	assert_string_equal(
		h.h_name,
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\tbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
}

/*
 * Which bodies are read: a server decodes the body by the Content-Type's charset (UTF-7 makes
 * "tools+AC8-call" tools/call), so only UTF-8 JSON as the SDKs declare it is.
 */
static void test_body_charset(void **state)
{
	static const struct {
		const char *ctype; /* NULL: no Content-Type */
		uint32_t why;
	} cases[] = {
		{ NULL, MCPF_WHY_NONE },
		{ "application/json", MCPF_WHY_NONE },
		{ "Application/JSON", MCPF_WHY_NONE },
		{ "application/json; charset=utf-8", MCPF_WHY_NONE },
		{ "application/json;charset=UTF-8", MCPF_WHY_NONE },
		{ "application/json; charset=\"utf-8\"", MCPF_WHY_NONE },
		{ "application/json; charset=utf-8  ", MCPF_WHY_NONE },
		{ "application/json; charset=utf-7", MCPF_WHY_CHARSET },
		{ "application/json;charset=UTF-7", MCPF_WHY_CHARSET },
		{ "application/json; charset=\"utf-7\"", MCPF_WHY_CHARSET },
		{ "application/json; charset=utf8", MCPF_WHY_CHARSET },
		{ "application/json; charset=utf-16le", MCPF_WHY_CHARSET },
		{ "application/json; charset=latin1", MCPF_WHY_CHARSET },
		{ "application/json; charset=utf-8; charset=utf-7", MCPF_WHY_CHARSET },
		{ "application/json; charset=", MCPF_WHY_CHARSET },
		{ "application/json; charset", MCPF_WHY_MEDIA_TYPE },
		{ "application/json;  charset=utf-8", MCPF_WHY_MEDIA_TYPE },
		{ "application/json; x=\"a; charset=utf-7\"", MCPF_WHY_MEDIA_TYPE },
		{ "application/json; profile=x", MCPF_WHY_MEDIA_TYPE },
		{ "application/json, text/plain", MCPF_WHY_MEDIA_TYPE },
		{ "text/plain; x=application/json", MCPF_WHY_MEDIA_TYPE },
		{ "text/plain", MCPF_WHY_MEDIA_TYPE },
		{ "application/jsonx", MCPF_WHY_MEDIA_TYPE },
		{ "application/json-seq", MCPF_WHY_MEDIA_TYPE },
		{ "application/vnd.api+json", MCPF_WHY_MEDIA_TYPE },
		{ "", MCPF_WHY_MEDIA_TYPE },
		{ "application/json; charset=utf-8; charset=utf-8; charset=utf-8; x=1",
		  MCPF_WHY_MEDIA_TYPE },
	};
	char head[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t why;

		snprintf(head, sizeof(head),
			 "POST /mcp HTTP/1.1\r\n%s%s%sContent-Length: 2\r\n\r\n",
			 cases[i].ctype ? "Content-Type: " : "", cases[i].ctype ?: "",
			 cases[i].ctype ? "\r\n" : "");
		both(head, strlen(head));
		assert_false(h.hc.error);
		why = http_head_body_why(&h, &buf);
		if (why != cases[i].why)
			fail_msg("Content-Type \"%s\": why %u, expected %u",
				 cases[i].ctype ?: "(none)", why, cases[i].why);
	}
	/* and a Content-Encoding is never read */
	snprintf(head, sizeof(head),
		 "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\n"
		 "Content-Encoding: gzip\r\nContent-Length: 2\r\n\r\n");
	both(head, strlen(head));
	assert_int_equal(http_head_body_why(&h, &buf), MCPF_WHY_ENCODING);
	/* two Content-Types: the head is refused */
	snprintf(head, sizeof(head),
		 "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\n"
		 "content-type: application/json; charset=utf-7\r\n\r\n");
	both(head, strlen(head));
	assert_true(h.hc.error);
}

/* A head that arrives in pieces: every prefix is incomplete, or wrong as the whole is. */
static void test_every_prefix(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (size_t n = 0; n <= strlen(cases[i].head); n++)
			both(cases[i].head, n);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng >> 32;
}

/* Mutations of the heads, with the bytes that matter to the parser, at every offset. */
static void test_mutations(void **state)
{
	static const char alphabet[] = "\r\n:  \t\001\177\200\xc3-_(aZ09";
	static const char *const inserts[] = { "\r\n",
					       "Content-Length: 3\r\n",
					       "Transfer-Encoding: chunked\r\n",
					       "Mcp-Name: x\r\n",
					       "\r\n\r\n",
					       ":",
					       "mcp-method" };
	int rounds = getenv("VALGRIND") ? 3000 : 200000;
	char m[1024];

	for (int k = 0; k < rounds; k++) {
		const char *base = cases[next() % (sizeof(cases) / sizeof(cases[0]))].head;
		size_t n = strlen(base), edits = 1 + next() % 3;

		memcpy(m, base, n);
		for (size_t e = 0; e < edits && n > 0; e++) {
			size_t at = next() % n;
			uint32_t op = next() % 4;

			if (op == 0) {
				m[at] = alphabet[next() % (sizeof(alphabet) - 1)];
			} else if (op == 1 && n < sizeof(m) - 1) {
				memmove(m + at + 1, m + at, n - at);
				m[at] = alphabet[next() % (sizeof(alphabet) - 1)];
				n++;
			} else if (op == 2) {
				memmove(m + at, m + at + 1, n - at - 1);
				n--;
			} else {
				const char *ins =
					inserts[next() % (sizeof(inserts) / sizeof(inserts[0]))];
				size_t il = strlen(ins);

				if (n + il < sizeof(m)) {
					memmove(m + at + il, m + at, n - at);
					memcpy(m + at, ins, il);
					n += il;
				}
			}
		}
		both(m, n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_body_charset),
		cmocka_unit_test(test_every_prefix),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
